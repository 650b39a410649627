"""Turn texts and conversations into normalised float32 vectors."""

from .backend import KINDS as FAST_KINDS
from .backend import is_fast_encoder, read_manifest
from .encoder import ContextEncoder, EncodedContexts
from .fast import build_fast_encoder
from .model_files import default_model_path
from .onnx_backend import OnnxTextEncoder, export_onnx
from .static_backend import StaticTextEncoder, distill_static

__all__ = [
    "FAST_KINDS",
    "ContextEncoder",
    "EncodedContexts",
    "OnnxTextEncoder",
    "StaticTextEncoder",
    "build_fast_encoder",
    "default_model_path",
    "distill_static",
    "export_onnx",
    "is_fast_encoder",
    "read_manifest",
]
