"""Workflow indexes on disk: FAISS (dense) + bm25s (sparse), a manifest, atomic writes."""

from .builder import build_index
from .store import WorkflowIndex
from .tokenize import Tokenizer
from .update import update_index

__all__ = ["Tokenizer", "WorkflowIndex", "build_index", "update_index"]
