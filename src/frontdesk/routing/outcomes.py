"""Three LightGBM models that predict a contact's outcomes: resolved, handle time, CSAT."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TARGETS = ("resolution", "handle_time", "csat")
_OBJECTIVE = {"resolution": "binary", "handle_time": "regression", "csat": "regression"}
PARAMS: dict[str, Any] = {
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbosity": -1,
    "num_threads": 2,
    "seed": 0,
    "deterministic": True,
}
ROUNDS = 300


class OutcomeModels:
    """Per-target boosters over one feature list (names and categorical columns recorded)."""

    def __init__(self, boosters: dict[str, Any], feature_names: list[str]) -> None:
        self.boosters = boosters
        self.feature_names = feature_names

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: dict[str, np.ndarray],
        feature_names: list[str],
        categorical: Sequence[str],
        rounds: int = ROUNDS,
    ) -> OutcomeModels:
        import lightgbm as lgb

        boosters = {}
        for t in TARGETS:
            data = lgb.Dataset(
                x,
                y[t].astype(float),
                feature_name=feature_names,
                categorical_feature=[c for c in categorical if c in feature_names],
                free_raw_data=False,
            )
            boosters[t] = lgb.train({**PARAMS, "objective": _OBJECTIVE[t]}, data, rounds)
        return cls(boosters, feature_names)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if x.shape[0] == 0:
            return {t: np.zeros(0) for t in TARGETS}
        out = {t: np.asarray(self.boosters[t].predict(x), dtype=float) for t in TARGETS}
        out["handle_time"] = np.maximum(out["handle_time"], 0.1)
        out["csat"] = np.clip(out["csat"], 1.0, 5.0)
        return out

    def save(self, root: Path, prefix: str) -> None:
        for t, b in self.boosters.items():
            b.save_model(str(root / f"{prefix}_{t}.txt"))

    @classmethod
    def load(cls, root: Path, prefix: str, feature_names: list[str]) -> OutcomeModels:
        import lightgbm as lgb

        boosters = {t: lgb.Booster(model_file=str(root / f"{prefix}_{t}.txt")) for t in TARGETS}
        for t, b in boosters.items():
            if b.feature_name() != feature_names:
                raise ValueError(f"{root / f'{prefix}_{t}.txt'}: feature names differ from config")
        return cls(boosters, feature_names)
