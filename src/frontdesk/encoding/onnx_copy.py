"""The ONNX copy of a sentence-transformers folder, which ContextEncoder runs on by default.

Loading torch and sentence-transformers takes seconds; onnxruntime loads the
same transformer in a fraction of one. So a sentence-transformers folder is
exported once to an fp32 ONNX graph (the same vectors: cosine > 0.9999), kept
in frontdesk's cache keyed by the folder's fingerprint, and encoded with from
then on. Torch is then only needed to build the copy and to train.

``FRONTDESK_ENCODER_RUNTIME=torch`` (or ``ContextEncoder(runtime="torch")``)
runs sentence-transformers itself; ``FRONTDESK_CACHE_DIR`` moves the cache
(default ``$XDG_CACHE_HOME/frontdesk``, else ``~/.cache/frontdesk``).
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..errors import FrontdeskError
from .backend import is_fast_encoder, read_manifest

RUNTIME_ENV = "FRONTDESK_ENCODER_RUNTIME"
RUNTIMES = ("onnx", "torch")

log = logging.getLogger(__name__)


def encoder_runtime(runtime: str | None = None) -> str:
    """``runtime``, else FRONTDESK_ENCODER_RUNTIME, else onnx; anything else is an error."""
    value = (runtime or os.environ.get(RUNTIME_ENV, "") or "onnx").strip().lower()
    if value not in RUNTIMES:
        raise FrontdeskError(f"{RUNTIME_ENV}={value!r}: must be one of {', '.join(RUNTIMES)}")
    return value


def cache_dir() -> Path:
    """Where frontdesk keeps what it can rebuild (the ONNX copies of encoders)."""
    if os.environ.get("FRONTDESK_CACHE_DIR"):
        return Path(os.environ["FRONTDESK_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "frontdesk"


def copy_folder(fingerprint: str) -> Path:
    return cache_dir() / "onnx" / fingerprint[:32]


def _usable(folder: Path, fingerprint: str) -> bool:
    if not is_fast_encoder(folder):
        return False
    try:
        manifest = read_manifest(folder)
    except FrontdeskError:
        return False
    return (
        manifest.get("backend") == "onnx"
        and manifest.get("source", {}).get("sha256") == fingerprint
    )


def onnx_copy(model_dir: Path, fingerprint: str, *, build: bool = True) -> Path | None:
    """The cached ONNX copy of ``model_dir``, built first if ``build``; None if there is none.

    A copy that cannot be built (no write access to the cache, a model layout
    the exporter does not take, another process building it) is not an error:
    the caller runs sentence-transformers instead.
    """
    folder = copy_folder(fingerprint)
    if _usable(folder, fingerprint):
        return folder
    if not build:
        return None
    from ..artifacts import folder_lock
    from .onnx_backend import export_onnx

    try:
        with folder_lock(folder):
            if not _usable(folder, fingerprint):
                if folder.exists():  # an older frontdesk's copy, or a damaged one: the cache's own
                    shutil.rmtree(folder)
                log.info("building the ONNX copy of %s in %s (once)", model_dir, folder)
                export_onnx(model_dir, folder, quantize=False)
    except Exception as exc:  # noqa: BLE001 - no copy means the slower runtime, not a failure
        log.info("no ONNX copy of %s: %s", model_dir, exc)
        return None
    return folder if _usable(folder, fingerprint) else None
