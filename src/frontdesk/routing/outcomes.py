"""LightGBM models of a contact's outcomes (resolved, handle time, CSAT), fitted in folds.

Each target is fitted by K-fold cross-validation (``lightgbm.cv``) whose number
of boosting rounds is chosen by early stopping on the folds' mean held-out
loss: a small log gets few trees, a large one more. All K fold models are
kept. Their mean is the prediction; each training row also gets the
prediction of the fold model that did not see it (out of fold), which is what
later stages learn from; and their spread (a grouped jackknife) says how much
an estimate would move with other data, which the router uses to tell what it
has evidence for from what it guesses.
"""

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
    "num_threads": 1,  # two OpenMP threads are far slower on a busy machine, no faster on these sizes
    "seed": 0,
    "deterministic": True,
}
MAX_ROUNDS = 1000
EARLY_STOPPING = 30


class OutcomeModels:
    """Per target, K fold boosters over one feature list (names and categorical columns recorded)."""

    def __init__(self, boosters: dict[str, list[Any]], feature_names: list[str]) -> None:
        self.boosters = boosters
        self.feature_names = feature_names

    @property
    def folds(self) -> int:
        return len(self.boosters[TARGETS[0]])

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        y: dict[str, np.ndarray],
        feature_names: list[str],
        categorical: Sequence[str],
        fold: np.ndarray,
    ) -> tuple[OutcomeModels, dict[str, np.ndarray]]:
        """Fold models per target (rows of fold ``k`` held out of model ``k``) and each row's
        out-of-fold prediction."""
        import lightgbm as lgb

        k = int(fold.max()) + 1
        splits = [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(k)]
        boosters: dict[str, list[Any]] = {}
        oof: dict[str, np.ndarray] = {}
        for t in TARGETS:
            data = lgb.Dataset(
                x,
                y[t].astype(float),
                feature_name=feature_names,
                categorical_feature=[c for c in categorical if c in feature_names],
                free_raw_data=False,
            )
            res = lgb.cv(
                {**PARAMS, "objective": _OBJECTIVE[t]},
                data,
                num_boost_round=MAX_ROUNDS,
                folds=splits,
                callbacks=[lgb.early_stopping(EARLY_STOPPING, verbose=False)],
                return_cvbooster=True,
            )
            cvb = res["cvbooster"]
            best = int(cvb.best_iteration)
            # Keep only the chosen rounds, so a saved and reloaded model predicts the same.
            boosters[t] = [
                lgb.Booster(model_str=b.model_to_string(num_iteration=best)) for b in cvb.boosters
            ]
            pred = np.zeros(len(x))
            for f, (_, te) in enumerate(splits):
                pred[te] = boosters[t][f].predict(x[te])
            oof[t] = pred
        models = cls(boosters, feature_names)
        return models, _clip(oof)

    def rounds(self) -> dict[str, int]:
        """Boosting rounds chosen per target (the same for each fold)."""
        return {t: int(b[0].current_iteration()) for t, b in self.boosters.items()}

    def predict_folds(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each fold model's predictions, (K, n) per target."""
        if x.shape[0] == 0:
            return {t: np.zeros((self.folds, 0)) for t in TARGETS}
        out = {
            t: np.stack([np.asarray(b.predict(x), dtype=float) for b in self.boosters[t]])
            for t in TARGETS
        }
        return _clip(out)

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The fold models' mean prediction per target."""
        return {t: v.mean(axis=0) for t, v in self.predict_folds(x).items()}

    def save(self, root: Path, prefix: str) -> None:
        for t, bs in self.boosters.items():
            for f, b in enumerate(bs):
                b.save_model(str(root / f"{prefix}_{t}_{f}.txt"))

    @classmethod
    def load(cls, root: Path, prefix: str, feature_names: list[str], folds: int) -> OutcomeModels:
        import lightgbm as lgb

        boosters = {
            t: [lgb.Booster(model_file=str(root / f"{prefix}_{t}_{f}.txt")) for f in range(folds)]
            for t in TARGETS
        }
        for t, bs in boosters.items():
            for f, b in enumerate(bs):
                if b.feature_name() != feature_names:
                    raise ValueError(
                        f"{root / f'{prefix}_{t}_{f}.txt'}: feature names differ from config"
                    )
        return cls(boosters, feature_names)


def _clip(pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outcomes within their range: handle time above 0.1 minute, CSAT in [1, 5]."""
    out = dict(pred)
    out["resolution"] = np.clip(out["resolution"], 0.0, 1.0)
    out["handle_time"] = np.maximum(out["handle_time"], 0.1)
    out["csat"] = np.clip(out["csat"], 1.0, 5.0)
    return out
