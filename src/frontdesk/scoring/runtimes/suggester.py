"""SuggesterRuntime: workflow suggestions from an index (and optional ranker)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from ...limits import Limits, check_k
from ..base import (
    Scorer,
    check_conversations,
    conversation_cost,
    split_conversations,
    text_units,
)
from ..protocol import InferenceRequest, InferenceResponse, Tensor


class SuggesterRuntime(Scorer):
    """Parameters: ``index`` (folder), ``ranker`` (optional folder), ``k`` (5), ``mode``.

    A batch of requests is one ``suggest_many`` call: one encoder pass for all.
    """

    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    outputs = [
        {"name": "workflow_id", "datatype": "BYTES", "shape": [-1, -1]},
        {"name": "title", "datatype": "BYTES", "shape": [-1, -1]},
        {"name": "score", "datatype": "FP64", "shape": [-1, -1]},
        {"name": "abstained", "datatype": "BOOL", "shape": [-1]},
        {"name": "confidence", "datatype": "FP64", "shape": [-1]},
        {"name": "query_from", "datatype": "BYTES", "shape": [-1]},
    ]

    decision_task = "suggest"

    def describe(self) -> dict[str, Any]:
        """What a decision log keeps of this version (the index it suggests from)."""
        return {"task": "suggest", "index": self.settings.parameters.get("index")}

    def load(self) -> None:
        from ...suggester import Suggester

        p = self.settings.parameters
        ranker = p.get("ranker")
        self.suggester = Suggester.load(
            self.settings.path(p["index"]),
            mode=p.get("mode", "hybrid"),
            ranker=self.settings.path(ranker) if ranker else None,
        )
        self.k = int(p.get("k", 5))

    def _k(self, request: InferenceRequest, limits: Limits | None = None) -> int:
        """``parameters.k`` (default the version's ``k``): 1 to ``Limits.k``, capped at the
        catalog's size (a DataError, answered 422, past the limit)."""
        k = request.parameters.get("k", self.k)
        return check_k(k, len(self.suggester.index.workflows), "request", limits=limits)

    def validate(self, request: InferenceRequest, limits: Limits) -> None:
        """Texts, turns and ``k`` within the limits (docs/limits.md), before any work."""
        check_conversations(self, request, limits)
        self._k(request, limits)

    def cost(self, request: InferenceRequest) -> int:
        return conversation_cost(request)

    def split(self, request: InferenceRequest, size: int) -> list[InferenceRequest] | None:
        return split_conversations(request, size)  # each text is answered on its own

    def prepare(self, request: InferenceRequest, size: int) -> list[Callable[[], Any]]:
        """A conversation too large for one part: its texts encoded into the query cache
        in groups of at most ``size`` units (each one encoder batch on one thread), so
        answering it encodes nothing. Nothing to do when the cache could not hold them."""
        s = self.suggester
        convs = request.parsed.get("conversations") or []
        texts = list(dict.fromkeys(t for c in convs for t in (c.text, *(u.text for u in c.turns))))
        if s.dense is None or s.encoder is None or len(texts) > s.query_cache.maxsize // 2:
            return []
        groups: list[list[str]] = [[]]
        units = 0
        for t in texts:
            if groups[-1] and units + text_units(t) > size:
                groups.append([])
                units = 0
            groups[-1].append(t)
            units += text_units(t)
        return [partial(s.query_cache.encode, g, s.encoder.encode) for g in groups]

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        convs: list[Any] = []
        spans = []
        for r in requests:
            batch = self.conversations(r)
            spans.append((len(convs), len(batch), self._k(r)))
            convs.extend(batch)
        k_max = max(k for _, _, k in spans)
        results = self.suggester.suggest_many(convs, k=k_max)
        out = []
        for r, (start, n, k) in zip(requests, spans, strict=True):
            res = results[start : start + n]
            out.append(self.response(r, self._tensors(res, k)))
        return out

    def _tensors(self, results: list[Any], k: int) -> list[Tensor]:
        n = len(results)
        ids: list[str] = []
        titles: list[str] = []
        scores: list[float] = []
        for res in results:
            top = list(res)[:k]
            ids += [s.workflow_id for s in top] + [""] * (k - len(top))
            titles += [s.title for s in top] + [""] * (k - len(top))
            scores += [float(s.score) for s in top] + [0.0] * (k - len(top))
        tensors = [
            Tensor("workflow_id", [n, k], "BYTES", ids),
            Tensor("title", [n, k], "BYTES", titles),
            Tensor("score", [n, k], "FP64", scores),
            Tensor("abstained", [n], "BOOL", [bool(r.abstained) for r in results]),
        ]
        if all(r.confidence is not None for r in results):
            tensors.append(
                Tensor("confidence", [n], "FP64", [float(r.confidence) for r in results])
            )
        tensors.append(Tensor("query_from", [n], "BYTES", [str(r.query_from) for r in results]))
        return tensors
