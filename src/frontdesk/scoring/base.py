"""Scorer: the one class a new model type implements (``load``, ``predict``, metadata)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..limits import Limits, check_count, check_text
from .protocol import (
    InferenceRequest,
    InferenceResponse,
    ProtocolError,
    Tensor,
    join_rows,
    split_rows,
)
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

    # -- what the server checks and schedules before any work starts -----------------------------

    def validate(self, request: InferenceRequest, limits: Limits) -> None:
        """Refuse what this runtime will not take, before the request is queued:
        :class:`~frontdesk.errors.DataError` for a value past a limit (answered 422),
        ProtocolError for a malformed request (400). The default checks nothing."""

    def cost(self, request: InferenceRequest) -> int:
        """The request's work in units (text runtimes: :func:`conversation_cost`; the
        default, its rows): a request over the server's chunk size runs on the lane for
        large requests, in parts."""
        return max((t.shape[0] if t.shape else 1 for t in request.inputs), default=1)

    def split(self, request: InferenceRequest, size: int) -> list[InferenceRequest] | None:
        """Parts of about ``size`` units whose answers :meth:`join` makes the request's
        answer; None (the default) when the request must be answered whole."""
        return None

    def prepare(self, request: InferenceRequest, size: int) -> list[Callable[[], Any]]:
        """Work of about ``size`` units each that makes answering ``request`` (a part that
        cannot be split further) cheap, run one at a time before it: say, encoding its
        texts into a cache. The default has none."""
        return []

    def join(self, request: InferenceRequest, parts: list[InferenceResponse]) -> InferenceResponse:
        """The answer to ``request`` from the answers to its :meth:`split` parts."""
        return join_rows(request, parts)

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

        if "conversations" in request.parsed:  # parsed when the request was checked
            return list(request.parsed["conversations"])
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


def check_conversations(scorer: Scorer, request: InferenceRequest, limits: Limits) -> list[Any]:
    """A text runtime's request within the limits, parsed (and kept for ``predict``).

    At most ``limits.texts`` texts, each not blank, without NUL, at most
    ``limits.text_chars`` long; at most ``limits.turns`` turns per text and
    ``limits.request_turns`` in all, each turn's text checked as a text; at most
    ``limits.request_units`` of encoding work in all (:func:`conversation_units`), so
    an accepted request can be answered within the server's deadline.
    """
    where = "request"
    texts = scorer.texts(request)
    check_count(len(texts), limits.texts, where, "inputs.text", "texts")
    for i, text in enumerate(texts):
        check_text(text, where, f"text[{i}]", limits=limits)
    ctx = request.parameters.get("contexts")
    if isinstance(ctx, list):  # counted before parsing: a huge context is refused unparsed
        turns = [c.get("turns") if isinstance(c, dict) else None for c in ctx]
        counts = [len(t) if isinstance(t, list) else 0 for t in turns]
        for i, n in enumerate(counts):
            check_count(n, limits.turns, where, f"parameters.contexts[{i}].turns", "turns")
        check_count(sum(counts), limits.request_turns, where, "parameters.contexts", "turns")
    convs = scorer.conversations(request)
    for i, conv in enumerate(convs):
        for j, turn in enumerate(conv.turns):
            check_text(turn.text, where, f"parameters.contexts[{i}].turns[{j}].text", limits=limits)
    units = sum(conversation_units(c) for c in convs)
    check_count(
        units, limits.request_units, where, "inputs",
        "units of encoding work, texts and turns together (a text: 1 unit plus 1 per full 80 "
        "characters, at most 17): send it in parts",
        limit="request_units",
    )  # fmt: skip
    request.parsed["conversations"] = convs
    return convs


UNIT_CHARS = 80  # a text costs 1 unit plus 1 per full 80 characters...
MAX_UNIT_CHARS = 1_280  # ...up to where the encoder stops reading (256 tokens)


def text_units(text: Any) -> int:
    """The work of encoding one text: 1 unit for a short one, at most 17 for a long one."""
    return 1 + min(len(text) if isinstance(text, str) else 0, MAX_UNIT_CHARS) // UNIT_CHARS


def conversation_units(conv: Any) -> int:
    """A conversation's text and turns, in units (:func:`text_units`)."""
    return text_units(conv.text) + sum(text_units(t.text) for t in conv.turns)


def conversation_cost(request: InferenceRequest) -> int:
    """The units of work of a text runtime's request: its texts and their turns."""
    convs = request.parsed.get("conversations")
    if convs is not None:
        return sum(conversation_units(c) for c in convs)
    first = request.inputs[0] if request.inputs else None  # unchecked: whatever the types are
    units = sum(text_units(t) for t in first.data) if first is not None else 0
    ctx = request.parameters.get("contexts")
    for c in ctx if isinstance(ctx, list) else []:
        turns = c.get("turns") if isinstance(c, dict) else None
        for t in turns if isinstance(turns, list) else []:
            units += text_units(t.get("text") if isinstance(t, dict) else None)
    return units


def split_conversations(request: InferenceRequest, size: int) -> list[InferenceRequest] | None:
    """A checked text request cut into runs of whole texts of at most ``size`` units each
    (a text with its turns is never cut); None when it is one part already."""
    convs = request.parsed.get("conversations")
    if convs is None:
        return None
    bounds: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, conv in enumerate(convs):
        cost = conversation_units(conv)
        if i > start and acc + cost > size:
            bounds.append((start, i))
            start, acc = i, 0
        acc += cost
    bounds.append((start, len(convs)))
    if len(bounds) == 1:
        return None
    return split_rows(request, bounds, per_row=("contexts", "contact_ids", "waits"))
