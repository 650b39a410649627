"""AgentMatcher: a pairwise scorer of (contact, channel, agent) outcomes.

Its features are the contact's context, the channel, the channel model's
prediction for that channel (so it learns how an agent departs from the
channel's typical outcome), the agent's listed skill on the contact's
predicted topic mix, cost, capacity, and the agent's past outcomes on
similar contacts (:class:`~frontdesk.routing.features.AgentHistory`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .features import AgentHistory
from .outcomes import TARGETS, OutcomeModels

AGENT_FEATURES = ("skill_topic_mix", "skill_top_topic", "cost_per_minute", "capacity", "n_channels")


class AgentMatcher:
    """Pair features -> resolution, handle time, CSAT for that very agent."""

    PREFIX = "matcher"

    def __init__(self, models: OutcomeModels) -> None:
        self.models = models

    @staticmethod
    def feature_names(context_names: list[str]) -> list[str]:
        return [
            *context_names,
            "channel",
            *(f"channel_pred_{t}" for t in TARGETS),
            *AGENT_FEATURES,
            *AgentHistory.names(),
        ]

    @classmethod
    def fit(
        cls, x: np.ndarray, y: dict[str, np.ndarray], context_names: list[str],
        categorical: list[str],
    ) -> AgentMatcher:  # fmt: skip
        names = cls.feature_names(context_names)
        return cls(OutcomeModels.fit(x, y, names, [*categorical, "channel"]))

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.models.predict(x)

    def save(self, root: Path) -> None:
        self.models.save(root, self.PREFIX)

    @classmethod
    def load(cls, root: Path, context_names: list[str]) -> AgentMatcher:
        return cls(OutcomeModels.load(root, cls.PREFIX, cls.feature_names(context_names)))
