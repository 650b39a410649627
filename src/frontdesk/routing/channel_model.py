"""ChannelModel: a contact's expected outcomes on each channel, with the agents it usually gets.

Trained on the logs, it predicts what the logged agents achieved on a channel
for contacts like this one (agent-marginal); :mod:`agent_matcher` adjusts that
to a given agent. Its K fold models (:mod:`outcomes`) also say how sure the
estimate is, so a channel is preferred over the rule's only on evidence.
"""

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
        fold: np.ndarray,
    ) -> tuple[ChannelModel, dict[str, np.ndarray]]:
        """The fold models and each row's out-of-fold prediction on its logged channel."""
        x = _with_channel(ctx, channel)
        names = cls.feature_names(context_names)
        models, oof = OutcomeModels.fit(x, y, names, [*categorical, "channel"], fold)
        return cls(models, channels), oof

    def predict(self, ctx: np.ndarray, channel: np.ndarray) -> dict[str, np.ndarray]:
        """Outcomes of each row of ``ctx`` on the channel (index) given per row."""
        return self.models.predict(_with_channel(ctx, channel))

    def predict_folds(self, ctx: np.ndarray, channel: np.ndarray) -> dict[str, np.ndarray]:
        """Each fold model's outcomes, (K, n) per target: their spread is the estimate's."""
        return self.models.predict_folds(_with_channel(ctx, channel))

    def save(self, root: Path) -> None:
        self.models.save(root, self.PREFIX)

    @classmethod
    def load(
        cls, root: Path, context_names: list[str], channels: list[str], folds: int
    ) -> ChannelModel:
        names = cls.feature_names(context_names)
        return cls(OutcomeModels.load(root, cls.PREFIX, names, folds), channels)


def _with_channel(ctx: np.ndarray, channel: np.ndarray) -> np.ndarray:
    return np.hstack([ctx, np.asarray(channel)[:, None].astype(np.float32)])
