"""EncoderRuntime: sentence embeddings (the bundled MiniLM, or any sentence-transformers folder)."""

from __future__ import annotations

from ...encoding import ContextEncoder
from ...limits import Limits
from ..base import Scorer, check_conversations, conversation_cost, split_conversations
from ..protocol import InferenceRequest, InferenceResponse, Tensor


class EncoderRuntime(Scorer):
    """Parameters: ``model`` (folder; default the bundled MiniLM). One encoder pass per batch."""

    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    outputs = [{"name": "embedding", "datatype": "FP32", "shape": [-1, -1]}]

    def load(self) -> None:
        model = self.settings.parameters.get("model")
        self.encoder = ContextEncoder(self.settings.path(model) if model else None)
        self.dim = self.encoder.dim

    def validate(self, request: InferenceRequest, limits: Limits) -> None:
        """Texts within the limits (docs/limits.md), before any work."""
        check_conversations(self, request, limits)

    def cost(self, request: InferenceRequest) -> int:
        return conversation_cost(request)

    def split(self, request: InferenceRequest, size: int) -> list[InferenceRequest] | None:
        return split_conversations(request, size)

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        texts = [self.texts(r) for r in requests]
        vectors = self.encoder.encode([t for ts in texts for t in ts])
        out, start = [], 0
        for r, ts in zip(requests, texts, strict=True):
            v = vectors[start : start + len(ts)]
            start += len(ts)
            out.append(
                self.response(
                    r, [Tensor("embedding", [len(ts), self.dim], "FP32", v.ravel().tolist())]
                )
            )
        return out
