"""RouterRuntime: channel and agent for each contact, from a trained router."""

from __future__ import annotations

from typing import Any

import numpy as np

from ...limits import Limits, check_count
from ..base import Scorer, check_conversations, conversation_cost
from ..protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor

MAX_LOAD = 1_000_000  # an agent's load or capacity beyond this is not a number a desk has


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
        {"name": "policy", "datatype": "BYTES", "shape": [-1]},
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

    def validate(self, request: InferenceRequest, limits: Limits) -> None:
        """Texts, turns, agents and waits within the limits and of the right types (400
        names the field; 422 past a limit), before any work."""
        convs = check_conversations(self, request, limits)
        agents = request.parameters.get("agents")
        if agents is not None:
            if not isinstance(agents, list):
                raise ProtocolError("parameters.agents must be a list")
            check_count(len(agents), limits.agents, "request", "parameters.agents", "agents")
            for i, a in enumerate(agents):
                check_agent(a, f"parameters.agents[{i}]")
        waits = request.parameters.get("waits")
        if waits is not None and (
            not isinstance(waits, list)
            or len(waits) != len(convs)
            or not all(
                isinstance(w, int | float) and not isinstance(w, bool) and 0 <= w < 1e9
                for w in waits
            )
        ):
            raise ProtocolError(
                f"parameters.waits must be {len(convs)} numbers of minutes >= 0 (one per text)"
            )

    def cost(self, request: InferenceRequest) -> int:
        return conversation_cost(request)

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
            # "router", or "rule-fallback" where training's held-out check left it to the rule
            Tensor("policy", [n], "BYTES", [d.policy if d else "" for d in decisions]),
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


def check_agent(agent: Any, where: str) -> None:
    """One available agent of a request: an id, or an object whose fields have their types
    (ProtocolError naming the field otherwise); the router checks the rest."""
    if isinstance(agent, str):
        return
    if not isinstance(agent, dict):
        raise ProtocolError(f"{where}: an agent id or an object with agent_id")
    if not isinstance(agent.get("agent_id"), str):
        raise ProtocolError(f"{where}.agent_id: a string")
    for key in ("load", "capacity"):
        v = agent.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_LOAD:
            raise ProtocolError(f"{where}.{key}: an integer from 0 to {MAX_LOAD:,}")
    for key in ("channels", "languages"):
        v = agent.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ProtocolError(f"{where}.{key}: a list of strings")
    cost = agent.get("cost_per_minute", 1.0)
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 <= cost < 1e9:
        raise ProtocolError(f"{where}.cost_per_minute: a number >= 0")
    skills = agent.get("skills", {})
    if not isinstance(skills, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and abs(v) < 1e9
        for v in skills.values()
    ):
        raise ProtocolError(f"{where}.skills: an object of numbers")
