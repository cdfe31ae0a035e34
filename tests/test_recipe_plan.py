"""The SmolLM2 recipe's build plan (models/smollm2/building.py): a stage runs once, and a
`tmac-ort rewrite` stage runs again when the rewriter's sources change (so speed runs never
measure a folder an older packer wrote)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "models" / "smollm2"))
import building  # noqa: E402  (the recipe's modules are scripts beside recipe.py)
import envs  # noqa: E402


@pytest.fixture
def recorded_stages(monkeypatch):
    """Stages run by run_plan, recorded instead of run: each makes its folder with one file."""
    ran = []

    def fake_in_env(env, stage, folder, *extra):
        ran.append(stage)
        (folder / stage).mkdir()
        (folder / stage / "model.onnx").write_text(stage)

    monkeypatch.setattr(building, "in_env", fake_in_env)
    monkeypatch.setattr(building, "log", lambda message: None)
    return ran


PLAN = [("genai-int4", "genai", "genai-int4"), ("genai-lut4", "genai", "genai-lut4")]


def test_stages_run_once_and_rewrites_again_when_the_rewriter_changes(tmp_path, monkeypatch, recorded_stages):
    monkeypatch.setattr(building, "rewriter_fingerprint", lambda: "rewriter A")
    building.run_plan(tmp_path, PLAN)
    assert recorded_stages == ["genai-int4", "genai-lut4"]
    assert (tmp_path / "genai-lut4" / building.REWRITE_STAMP).read_text() == "rewriter A"
    assert not (tmp_path / "genai-int4" / building.REWRITE_STAMP).exists()

    building.run_plan(tmp_path, PLAN)  # nothing changed: nothing runs
    assert recorded_stages == ["genai-int4", "genai-lut4"]

    monkeypatch.setattr(building, "rewriter_fingerprint", lambda: "rewriter B")
    (tmp_path / "genai-lut4" / "left over").write_text("from the old folder")
    building.run_plan(tmp_path, PLAN)  # only the rewrite runs again, into a fresh folder
    assert recorded_stages == ["genai-int4", "genai-lut4", "genai-lut4"]
    assert (tmp_path / "genai-lut4" / building.REWRITE_STAMP).read_text() == "rewriter B"
    assert not (tmp_path / "genai-lut4" / "left over").exists()


def test_a_rewrite_folder_without_a_stamp_is_rewritten(tmp_path, monkeypatch, recorded_stages):
    """Folders written before the stamps existed (the cache of earlier versions)."""
    monkeypatch.setattr(building, "rewriter_fingerprint", lambda: "rewriter A")
    (tmp_path / "genai-int4").mkdir()
    (tmp_path / "genai-lut4").mkdir()
    building.run_plan(tmp_path, PLAN)
    assert recorded_stages == ["genai-lut4"]


def test_the_rewriter_fingerprint_follows_the_packer_not_the_kernels(tmp_path, monkeypatch):
    """The packer's source changes the fingerprint; a kernel source (the library, refreshed on
    its own) does not."""
    for name in ("rewriter/rules.py", "tmac_ort/packing.py", "custom_ops/src/kernel.cc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1")
    monkeypatch.setattr(envs, "PROJECT", tmp_path)
    first = envs.rewriter_fingerprint()
    (tmp_path / "custom_ops/src/kernel.cc").write_text("v2")
    assert envs.rewriter_fingerprint() == first
    (tmp_path / "tmac_ort/packing.py").write_text("v2")
    assert envs.rewriter_fingerprint() != first
