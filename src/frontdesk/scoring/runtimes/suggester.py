"""SuggesterRuntime: workflow suggestions from an index (and optional ranker)."""

from __future__ import annotations

from typing import Any

from ..base import Scorer
from ..protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor


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

    def _k(self, request: InferenceRequest) -> int:
        k = request.parameters.get("k", self.k)
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
            raise ProtocolError("parameters.k must be an integer in [1, 50]")
        return k

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
        return tensors
