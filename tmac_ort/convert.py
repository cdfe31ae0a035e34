"""Rewriting model files and folders (the API behind `tmac-ort rewrite`).

Outputs are written atomically: everything goes to a temporary sibling first and is moved
into place only when complete, so a crash or Ctrl-C never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import onnx_ir as ir

from . import get_library_path

EXTERNAL_DATA_THRESHOLD = 1 << 30  # bytes of initializers above which weights go to a .data file
TEMPORARY_PREFIX = ".tmac-"


class NothingConverted(ValueError):
    """No node matched a supported pattern; `reports` says why each candidate was skipped."""

    def __init__(self, src: Path, reports: dict):
        super().__init__(f"{src}: no node matched a supported pattern; nothing written")
        self.reports = reports


def _temporary_dir(parent: Path) -> Path:
    """A hidden folder beside the output (same file system, so the final rename is atomic),
    named after this process so a later run can tell it is stale."""
    return Path(tempfile.mkdtemp(prefix=f"{TEMPORARY_PREFIX}{os.getpid()}-", dir=parent))


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Removes the temporary folders a killed rewrite left in `folder` (their process is
    gone); returns them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(TEMPORARY_PREFIX + "*"):
        pid = tmp.name[len(TEMPORARY_PREFIX):].split("-", 1)[0]
        if tmp.is_dir() and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def load_model(path: Path) -> ir.Model:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        model = ir.load(str(path))
    except Exception as e:  # onnx raises DecodeError, ValueError, ... on garbage
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    if len(model.graph) == 0 and not model.graph.outputs:
        raise ValueError(f"{path}: not an ONNX model (no graph)")
    return model


def initializer_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def has_external_tensors(model: ir.Model) -> bool:
    return any(isinstance(v.const_value, ir.ExternalTensor) for v in model.graph.initializers.values())


def save_model(model: ir.Model, path: Path) -> None:
    """Saves next to `path` under a temporary name, then renames.

    Weights go to `path.data` when they are large or when the source kept weights in external
    files: those references point into the source folder, so they must be written anew.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = _temporary_dir(path.parent)
    try:
        external = has_external_tensors(model) or initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
        data_name = path.name + ".data"
        ir.save(model, str(tmp / path.name), external_data=data_name if external else None)
        if external:
            os.replace(tmp / data_name, path.parent / data_name)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def external_data_files(path: Path) -> set[str]:
    """The files a model's initializers name as external data (any name an exporter chose:
    model.onnx.data, model.onnx_data, weights.bin, ...), relative to its folder."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = set()
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            names.update(e.value for e in tensor.external_data if e.key == "location")
    return names


def model_size(path: Path) -> int:
    """Bytes of a model file and its external data files."""
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in external_data_files(path)
                                     if (path.parent / name).is_file())


def _default_permissions(folder: Path) -> None:
    """mkdtemp makes folders 0700; an output folder gets what mkdir would give it."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


class Progress(Protocol):
    """What rewrite_file and rewrite_folder report progress to (the CLI's bar)."""

    def start(self, model_name: str, candidates: int) -> None: ...

    def advance(self, node_name: str) -> None: ...

    def finish(self) -> None: ...


def refuse_existing(dst: Path, overwrite: bool) -> None:
    """The one rule for outputs, files and folders alike: an existing one is replaced only when
    asked (--force)."""
    if dst.exists() and not overwrite:
        raise ValueError(f"{dst} exists; give another output path, or --force to replace it")


def rewrite_file(src: Path, dst: Path, options=None, dry_run: bool = False, progress: Progress | None = None,
                 allow_unchanged: bool = False, overwrite: bool = False):
    from tmac_ort.rewriter import count_candidates, rewrite_model

    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError("refusing to overwrite the input model; give another output path")
    if not dry_run:
        refuse_existing(dst, overwrite)
    model = load_model(src)
    if progress is not None:
        progress.start(src.name, count_candidates(model))
    try:
        report = rewrite_model(model, options, progress.advance if progress is not None else None)
    finally:
        if progress is not None:
            progress.finish()
    if not report.converted and not allow_unchanged:
        raise NothingConverted(src, {src.name: report})
    if not dry_run:
        save_model(model, dst)
    return report


def register_in_genai_config(folder: Path, library_name: str) -> None:
    """Points onnxruntime-genai's decoder at the op library copied into the model folder."""
    config_path = folder / "genai_config.json"
    config = json.loads(config_path.read_text())
    session_options = config.setdefault("model", {}).setdefault("decoder", {}).setdefault("session_options", {})
    session_options["custom_ops_library"] = library_name
    config_path.write_text(json.dumps(config, indent=4))


def _replace_folder(tmp: Path, dst: Path) -> None:
    """Moves the finished folder `tmp` to `dst`, replacing an existing `dst` (--force) only
    once the new one is complete."""
    if not dst.exists():
        os.replace(tmp, dst)
        return
    old = _temporary_dir(dst.parent)
    os.replace(dst, old / dst.name)
    try:
        os.replace(tmp, dst)
    except OSError:
        os.replace(old / dst.name, dst)  # the user's folder goes back where it was
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def rewrite_folder(src: Path, dst: Path, options=None, dry_run: bool = False, progress: Progress | None = None,
                   overwrite: bool = False):
    """Rewrites every .onnx model of a folder (genai or Optimum export) into a new folder."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise ValueError("refusing to overwrite the input folder; give another output path")
    if not dry_run:
        refuse_existing(dst, overwrite)
    if dst.exists() and not dst.is_dir():
        raise ValueError(f"{dst} is a file; the output of a folder is a folder")
    models = sorted(src.glob("*.onnx"))
    if not models:
        raise ValueError(f"{src}: no .onnx model in this folder")
    reports = {}
    parent = dst.parent if dst.parent.exists() else Path(tempfile.gettempdir())
    remove_stale_temporaries(parent)
    tmp = _temporary_dir(parent)
    try:
        data_files = {name for m in models for name in external_data_files(m)}
        for item in src.iterdir():
            if item.suffix != ".onnx" and item.name not in data_files:
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, tmp / item.name)
        for m in models:  # a folder may hold models without matmuls (e.g. an embedding model)
            reports[m.name] = rewrite_file(m, tmp / m.name, options, dry_run, progress, allow_unchanged=True)
        if not any(r.converted for r in reports.values()):
            raise NothingConverted(src, reports)
        if not dry_run:
            library = Path(get_library_path())
            shutil.copy2(library, tmp / library.name)
            if (tmp / "genai_config.json").is_file():
                # relative to the model folder (onnxruntime-genai 0.18 resolves it there): the
                # folder keeps working after a move
                register_in_genai_config(tmp, library.name)
            _default_permissions(tmp)
            _replace_folder(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return reports
