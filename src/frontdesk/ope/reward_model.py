"""The reward model of the direct and doubly robust estimators: cross-fitted LightGBM per metric.

q(x, a) predicts a metric (resolved, handle time, CSAT, cost, utility) for a
logged context x and an eligible action a = (channel, agent), from the log's
columns and the roster: profile fields, topic, wait, turn count, the channel,
the agent (as a category), the agent's listed skill on the topic, cost per
minute and capacity. Rows are split into K folds by a stable hash of their
``contact_id``; the model used for a row never saw that row (cross-fitting),
and the fold of a row is the same on every engine and machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

METRICS = ("resolution", "handle_time", "csat", "cost", "utility")
METRIC_COLUMN = {"resolution": "resolved"}
CATEGORICAL = ("segment", "country", "plan", "language", "topic")
NUMERIC = ("tenure_days", "prior_contacts", "wait_min")
FEATURES = (
    *CATEGORICAL,
    *NUMERIC,
    "n_turns",
    "channel",
    "agent",
    "skill",
    "cost_per_minute",
    "capacity",
)
READ_COLUMNS = (
    *CATEGORICAL,
    *NUMERIC,
    "turns",
    "contact_id",
    "channel",
    "agent_id",
    "eligible_channels",
    "eligible_agents",
)
PARAMS: dict[str, Any] = {
    "learning_rate": 0.1,
    "num_leaves": 15,
    "min_data_in_leaf": 50,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "num_threads": 2,
    "seed": 0,
    "deterministic": True,
}
ROUNDS = 100


def metric_column(metric: str) -> str:
    return METRIC_COLUMN.get(metric, metric)


def fold_of(ids: Sequence[str], k: int) -> np.ndarray:
    """A stable fold per contact id (blake2b), identical on every engine."""
    from .estimators import id_hashes

    return (id_hashes(ids) % np.uint64(k)).astype(int)


class RewardFeatures:
    """Turns (row, action) pairs into the reward model's feature matrix."""

    def __init__(
        self,
        vocab: Mapping[str, list[str]],
        roster: Mapping[str, Mapping[str, Any]],
        channels: Sequence[str],
    ) -> None:
        self.vocab = {k: list(v) for k, v in vocab.items()}
        self.roster = roster
        self.channels = list(channels)
        self.agents = sorted(roster)
        self._cat_index = {k: {v: i for i, v in enumerate(vals)} for k, vals in self.vocab.items()}
        self._agent_index = {a: i for i, a in enumerate(self.agents)}

    @classmethod
    def fit(
        cls, df: Any, roster: Mapping[str, Mapping[str, Any]], channels: Sequence[str]
    ) -> RewardFeatures:
        vocab = {c: sorted({str(v) for v in df[c].tolist() if v is not None}) for c in CATEGORICAL}
        return cls(vocab, roster, channels)

    def to_json(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "channels": self.channels}

    def matrix(
        self, df: Any, rows: np.ndarray, channels: Sequence[str], agents: Sequence[str]
    ) -> np.ndarray:
        """One feature row per (row index, channel, agent) triple."""
        n = len(rows)
        x = np.full((n, len(FEATURES)), np.nan, dtype=np.float64)
        for j, c in enumerate(CATEGORICAL):
            col = df[c].to_numpy()
            idx = self._cat_index[c]
            x[:, j] = [idx.get(str(v), np.nan) if v is not None else np.nan for v in col[rows]]
        off = len(CATEGORICAL)
        for j, c in enumerate(NUMERIC):
            x[:, off + j] = np.asarray(df[c].to_numpy()[rows], dtype=float)
        off += len(NUMERIC)
        turns = df["turns"].to_numpy()
        x[:, off] = [0 if t is None else len(t) for t in turns[rows]]
        topics = df["topic"].to_numpy()[rows]
        x[:, off + 1] = [self.channels.index(h) if h in self.channels else np.nan for h in channels]
        x[:, off + 2] = [self._agent_index.get(a, np.nan) for a in agents]
        rec = [self.roster.get(a) for a in agents]
        x[:, off + 3] = [
            r["skills"].get(t, np.nan) if r else np.nan for r, t in zip(rec, topics, strict=True)
        ]
        x[:, off + 4] = [r["cost_per_minute"] if r else np.nan for r in rec]
        x[:, off + 5] = [r["capacity"] if r else np.nan for r in rec]
        return x

    def factual(self, df: Any) -> np.ndarray:
        rows = np.arange(len(df))
        return self.matrix(df, rows, df["channel"].tolist(), df["agent_id"].tolist())

    def eligible(self, df: Any) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows for every eligible pair of every row, and the row each belongs to."""
        chans, ags, rows = [], [], []
        for i, (c, a) in enumerate(
            zip(df["eligible_channels"].tolist(), df["eligible_agents"].tolist(), strict=True)
        ):
            chans.extend(c)
            ags.extend(a)
            rows.extend([i] * len(c))
        r = np.array(rows, dtype=int)
        return self.matrix(df, r, chans, ags), r


def fit_reward_models(
    df: Any, features: RewardFeatures, metrics: Sequence[str], folds: int = 2
) -> dict[str, list[str]]:
    """Per metric, ``folds`` LightGBM models as text: model k is trained without fold k."""
    import lightgbm as lgb

    x = features.factual(df)
    fold = fold_of(df["contact_id"].tolist(), folds)
    cat_idx = [FEATURES.index(c) for c in (*CATEGORICAL, "channel", "agent")]
    out: dict[str, list[str]] = {}
    for m in metrics:
        y = np.asarray(df[metric_column(m)].to_numpy(), dtype=float)
        objective = "binary" if m == "resolution" else "regression"
        models = []
        for k in range(folds):
            train = fold != k if folds > 1 else np.ones(len(y), dtype=bool)
            data = lgb.Dataset(
                x[train], y[train], feature_name=list(FEATURES), categorical_feature=cat_idx
            )
            booster = lgb.train({**PARAMS, "objective": objective}, data, ROUNDS)
            models.append(booster.model_to_string())
        out[m] = models
    return out


@lru_cache(maxsize=64)
def _booster(model: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=model)


def predict(models: Sequence[str], x: np.ndarray, fold: np.ndarray) -> np.ndarray:
    """Each row by the model that did not see its fold."""
    out = np.zeros(len(x))
    for k, model in enumerate(models):
        sel = fold == k
        if sel.any():
            out[sel] = _booster(model).predict(x[sel])
    return out
