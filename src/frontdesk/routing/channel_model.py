"""ChannelModel: a contact's expected outcomes on each channel, whoever the agent."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .outcomes import OutcomeModels


class ChannelModel:
    """Context features + channel -> resolution, handle time, CSAT (agent-marginal)."""

    PREFIX = "channel"

    def __init__(self, models: OutcomeModels, channels: list[str]) -> None:
        self.models = models
        self.channels = channels

    @staticmethod
    def feature_names(context_names: list[str]) -> list[str]:
        return [*context_names, "channel"]

    @classmethod
    def fit(
        cls,
        ctx: np.ndarray,
        channel: np.ndarray,
        y: dict[str, np.ndarray],
        context_names: list[str],
        categorical: list[str],
        channels: list[str],
    ) -> ChannelModel:
        x = np.hstack([ctx, channel[:, None].astype(np.float32)])
        names = cls.feature_names(context_names)
        return cls(OutcomeModels.fit(x, y, names, [*categorical, "channel"]), channels)

    def predict(self, ctx: np.ndarray, channel: np.ndarray) -> dict[str, np.ndarray]:
        """Outcomes of each row of ``ctx`` on the channel (index) given per row."""
        return self.models.predict(np.hstack([ctx, channel[:, None].astype(np.float32)]))

    def save(self, root: Path) -> None:
        self.models.save(root, self.PREFIX)

    @classmethod
    def load(cls, root: Path, context_names: list[str], channels: list[str]) -> ChannelModel:
        return cls(OutcomeModels.load(root, cls.PREFIX, cls.feature_names(context_names)), channels)
