"""RouterRuntime: channel and agent for each contact, from a trained router."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Scorer
from ..protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor


class RouterRuntime(Scorer):
    """Parameters: ``router`` (folder); exploration, one of ``epsilon`` (share of random
    pairs) or ``temperature`` (softmax over utilities), default none (propensity 1).
    Request parameters: ``contexts``, ``agents``, ``waits``.

    ``agents`` (the available agents: ids, ``{"agent_id", "load"}`` or full
    records) defaults to the whole roster. A batch is encoded in one pass;
    each request is then assigned jointly within its own agents' capacity.
    """

    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    outputs = [
        {"name": "channel", "datatype": "BYTES", "shape": [-1]},
        {"name": "agent_id", "datatype": "BYTES", "shape": [-1]},
        {"name": "expected_utility", "datatype": "FP64", "shape": [-1]},
        {"name": "propensity", "datatype": "FP64", "shape": [-1]},
    ]

    decision_task = "route"

    def load(self) -> None:
        from ...routing import Router

        p = self.settings.parameters
        self.epsilon, temperature = exploration(p)
        self.router = Router.load(
            self.settings.path(p["router"]),
            temperature=temperature,
            seed=int(p["seed"]) if "seed" in p else None,  # fresh draws per process by default
        )
        self.explore = (
            f"epsilon={self.epsilon}" if self.epsilon else
            f"temperature={temperature}" if temperature else "argmax"
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """What a decision log keeps of this version: channels, topics, the roster."""
        r = self.router
        return {
            "task": "route",
            "channels": r.channel_info,
            "topics": list(r.featurizer.topics),
            "agents": [a.to_json() for a in r.roster.values()],
            "explore": self.explore,
            "encoder_sha256": r.config.get("encoder_sha256"),
        }

    def predict(self, request: InferenceRequest) -> InferenceResponse:
        return self.predict_batch([request])[0]

    def predict_batch(self, requests: list[InferenceRequest]) -> list[InferenceResponse]:
        convs, spans = [], []
        for r in requests:
            batch = self.conversations(r)
            spans.append((len(convs), len(batch)))
            convs.extend(batch)
        encoded = self.router.encode(convs)  # one pass for the whole batch
        out = []
        for r, (start, n) in zip(requests, spans, strict=True):
            agents = r.parameters.get("agents", list(self.router.roster))
            waits = r.parameters.get("waits", [0.0] * n)
            if (
                not isinstance(agents, list)
                or not isinstance(waits, list)
                or len(waits) != n
                or not all(isinstance(w, int | float) and not isinstance(w, bool) for w in waits)
            ):
                raise ProtocolError(
                    "parameters.agents must be a list; parameters.waits one number per text"
                )
            decisions = self.router.route_many(
                convs[start : start + n],
                agents,
                encoded=encoded.take(range(start, start + n)),
                waits=np.asarray(waits, dtype=float),
                epsilon=self.epsilon,
            )
            res = self.response(r, self._tensors(decisions), waiting=[d is None for d in decisions])
            res.log = [
                {
                    "explore": self.explore,
                    **(
                        {
                            "eligible_channels": d.eligible_channels,
                            "eligible_agents": d.eligible_agents,
                            "eligible_propensities": d.eligible_propensities,
                            "predicted_topic": d.topic,
                        }
                        if d is not None
                        else {}
                    ),
                }
                for d in decisions
            ]
            out.append(res)
        return out

    @staticmethod
    def _tensors(decisions: list[Any]) -> list[Tensor]:
        n = len(decisions)
        return [
            Tensor("channel", [n], "BYTES", [d.channel if d else "" for d in decisions]),
            Tensor("agent_id", [n], "BYTES", [d.agent_id if d else "" for d in decisions]),
            Tensor(
                "expected_utility",
                [n],
                "FP64",
                [d.expected_utility if d else 0.0 for d in decisions],
            ),
            Tensor("propensity", [n], "FP64", [d.propensity if d else 0.0 for d in decisions]),
        ]


def exploration(params: dict[str, Any]) -> tuple[float, float]:
    """``(epsilon, temperature)`` from a version's parameters (at most one of them set)."""
    eps, temp = params.get("epsilon", 0.0), params.get("temperature", 0.0)
    for key, v in (("epsilon", eps), ("temperature", temp)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
            raise ValueError(f"parameters.{key} must be a number >= 0, not {v!r}")
    if eps > 1:
        raise ValueError(f"parameters.epsilon must be at most 1, not {eps!r}")
    if eps and temp:
        raise ValueError("parameters: give epsilon or temperature, not both")
    return float(eps), float(temp)
