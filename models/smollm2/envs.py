"""Virtual environments for the recipe's two sides, and running a stage inside one.

optimum-onnx needs transformers < 4.58 and the genai builder transformers 5: each side runs in
its own environment under the cache, made from requirements-<side>.txt plus this project, and
the recipe re-invokes itself there (`recipe.py _stage NAME`)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
ENVS = ("optimum", "genai")


def cache_root() -> Path:
    return Path(os.environ.get("TMAC_ORT_CACHE", Path.home() / ".cache" / "tmac-ort"))


def log(message: str) -> None:
    print(f"[smollm2] {message}", file=sys.stderr, flush=True)


def run(cmd: list, **kwargs) -> None:
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def env_python(name: str) -> Path:
    return cache_root() / "envs" / name / "bin" / "python"


def ensure_env(name: str) -> Path:
    """A venv with requirements-<name>.txt and this project, each redone only when it changed."""
    python = env_python(name)
    root = python.parent.parent
    requirements = HERE / f"requirements-{name}.txt"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not python.exists() or read_stamp(root / ".requirements") != wanted:
        log(f"preparing the {name} environment (once; a few minutes)")
        run([sys.executable, "-m", "venv", "--clear", root], stdout=sys.stderr)
        run([*pip, "-r", requirements], stdout=sys.stderr)
        (root / ".requirements").write_text(wanted)
    wanted = project_fingerprint()
    if read_stamp(root / ".project") != wanted:
        run([*pip, PROJECT], stdout=sys.stderr)  # a local folder is always rebuilt and reinstalled
        (root / ".project").write_text(wanted)
    return python


def read_stamp(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


def fingerprint(patterns) -> str:
    """A digest of this project's files that match `patterns`."""
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(PROJECT.glob(pattern)):
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def project_fingerprint() -> str:
    """Sources of this project that end up in the environments (reinstall it when these change)."""
    return fingerprint(("pyproject.toml", "CMakeLists.txt", "tmac_ort/**/*.py", "rewriter/*.py", "custom_ops/**/*"))


def rewriter_fingerprint() -> str:
    """Sources that decide what `tmac-ort rewrite` writes (the packed layout, the quantisers, the
    rules): a model rewritten by other ones is rewritten again (its kernels come from the
    library, which the recipe refreshes on its own)."""
    return fingerprint(("rewriter/*.py", "tmac_ort/packing.py", "tmac_ort/quantize.py", "tmac_ort/nodes.py",
                        "tmac_ort/convert.py", "tmac_ort/matmul_nbits_format.py", "tmac_ort/schema.py"))


def in_env(name: str, stage: str, work: Path, *extra) -> None:
    # everything is local: no Hugging Face Hub calls, and no progress bars in logs
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}
    # stdout is kept for this script's own result (JSON, a table): stages report on stderr
    run([ensure_env(name), HERE / "recipe.py", "_stage", stage, "--work", work, *extra], env=env,
        stdout=sys.stderr)


def stage_result(env: str, stage: str, work: Path, *extra) -> dict:
    """Runs a stage that writes JSON (to --out) in `env` and returns what it wrote."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{stage}.json"
        in_env(env, stage, work, *extra, "--out", out)
        return json.loads(out.read_text())
