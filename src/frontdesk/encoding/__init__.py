"""Turn texts and conversations into normalised float32 vectors."""

from .encoder import ContextEncoder, EncodedContexts, default_model_path

__all__ = ["ContextEncoder", "EncodedContexts", "default_model_path"]
