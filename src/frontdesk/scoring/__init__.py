"""Scoring service: a versioned model repository, one runtime per model type, V2 REST."""

from .base import Scorer, load_scorer_class
from .protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor, parse_request
from .settings import ModelSettings

__all__ = [
    "InferenceRequest",
    "InferenceResponse",
    "ModelSettings",
    "ProtocolError",
    "Scorer",
    "Tensor",
    "load_scorer_class",
    "parse_request",
]
