"""Scorer: the one class a new model type implements (``load``, ``predict``, metadata)."""

from __future__ import annotations

import importlib
from typing import Any

from .protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor
from .settings import ModelSettings


class Scorer:
    """A model runtime. Subclass it in one file and name it in ``model-settings.json``.

    ``load`` reads the artifacts (slow work belongs here); ``predict`` answers
    one request; ``predict_batch`` answers several at once and is what the
    server's micro-batcher calls (override it when a batch is cheaper than
    its parts, as for encoder-backed models). ``inputs``/``outputs`` describe
    the tensors for ``GET /v2/models/{name}``; ``warmup`` is the request
    answered once before the model is called ready.
    """

    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    # "suggest" or "route" for runtimes whose answers are decisions a decision log keeps
    decision_task: str | None = None

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def version(self) -> str:
        return self.settings.version

    def load(self) -> None:
        """Read artifacts; raise to mark this version failed (others keep serving)."""

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        raise NotImplementedError

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        return [self.predict(r) for r in requests]

    def warmup(self) -> InferenceRequest:
        return InferenceRequest(inputs=[Tensor("text", [1], "BYTES", ["hello"])])

    def describe(self) -> dict[str, Any]:
        """What a decision log records about this version once (``decision_task`` runtimes)."""
        return {}

    def metadata(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs}

    def response(
        self, request: InferenceRequest, outputs: list[Tensor], **params: Any
    ) -> InferenceResponse:
        return InferenceResponse(self.name, self.version, outputs, id=request.id, parameters=params)

    # -- helpers for runtimes that take text ---------------------------------------------------

    @staticmethod
    def texts(request: InferenceRequest, name: str = "text") -> list[str]:
        t = request.input(name)
        if t.datatype != "BYTES" or len(t.shape) != 1:
            raise ProtocolError(f"input {name!r} must be BYTES of shape [n]")
        return list(t.data)

    @staticmethod
    def contexts(request: InferenceRequest, n: int) -> list[dict[str, Any]]:
        """Per text, its structured context (turns, user) from ``parameters.contexts``."""
        ctx = request.parameters.get("contexts")
        if ctx is None:
            return [{} for _ in range(n)]
        if not isinstance(ctx, list) or len(ctx) != n or not all(isinstance(c, dict) for c in ctx):
            raise ProtocolError(f"parameters.contexts must be a list of {n} objects (one per text)")
        return ctx

    @classmethod
    def conversations(cls, request: InferenceRequest) -> list[Any]:
        """The request's texts with their contexts as Conversations (400 when a context is bad)."""
        from pydantic import ValidationError

        from ..schema import Conversation

        texts = cls.texts(request)
        out = []
        for i, (t, c) in enumerate(zip(texts, cls.contexts(request, len(texts)), strict=True)):
            try:
                out.append(Conversation(text=t, context=c))
            except ValidationError as exc:
                e = exc.errors()[0]
                loc = list(e["loc"])
                if loc and loc[0] == "context":  # the error is inside this text's context
                    loc = loc[1:]
                where = ".".join(str(x) for x in loc)
                raise ProtocolError(f"parameters.contexts[{i}].{where}: {e['msg']}") from None
        return out


def load_scorer_class(dotted: str) -> type[Scorer]:
    """The class named ``package.module.Class``; it must subclass Scorer."""
    module, _, cls = dotted.rpartition(".")
    if not module:
        raise ImportError(f"{dotted!r} is not a dotted path (package.module.Class)")
    obj = getattr(importlib.import_module(module), cls, None)
    if not (isinstance(obj, type) and issubclass(obj, Scorer)):
        raise ImportError(f"{dotted!r} is not a frontdesk.scoring.Scorer subclass")
    return obj
