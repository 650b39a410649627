"""Fast encoders by kind: load the backend a folder's manifest names, or build one."""

from __future__ import annotations

import os
from typing import Any

from ..errors import FrontdeskError
from .backend import KINDS, FastBackend, StageProgress, read_manifest

__all__ = ["KINDS", "build_fast_encoder", "load_backend"]


def load_backend(folder: str | os.PathLike[str]) -> FastBackend:
    """The backend a fast-encoder folder's manifest names, loaded."""
    kind = read_manifest(folder)["backend"]
    if kind == "static":
        from .static_backend import StaticTextEncoder

        return StaticTextEncoder(folder)
    from .onnx_backend import OnnxTextEncoder

    return OnnxTextEncoder(folder)


def build_fast_encoder(
    source: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    kind: str = "onnx-int8",
    *,
    pca_dims: int = 256,
    progress: StageProgress | None = None,
) -> dict[str, Any]:
    """Build a fast encoder of ``kind`` from a sentence-transformers folder; returns its manifest."""
    if kind not in KINDS:
        raise FrontdeskError(f"kind {kind!r} is unknown (expected one of {', '.join(KINDS)})")
    if kind == "static":
        from .static_backend import distill_static

        return distill_static(source, out, pca_dims=pca_dims, progress=progress)
    from .onnx_backend import export_onnx

    return export_onnx(source, out, quantize=kind == "onnx-int8", progress=progress)
