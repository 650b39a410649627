"""LambdaRankReranker: a LightGBM lambdarank model over candidate features, saved without pickle."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..atomic import atomic_folder
from ..errors import IndexIntegrityError
from ..index.manifest import FORMAT_VERSION, read_manifest, write_manifest
from .calibration import PlattCalibrator
from .features import FEATURE_NAMES
from .priors import WorkflowPriors

MODEL_FILE = "ranker.txt"
CONFIG_FILE = "ranker.json"
PRIORS_FILE = "priors.json"

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [1, 3],
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.9,
    "bagging_freq": 1,
    "lambdarank_truncation_level": 10,
    "verbosity": -1,
    "num_threads": 2,
    "seed": 0,
    "deterministic": True,
}


class LambdaRankReranker:
    """Scores candidates; carries its priors, calibration and abstention threshold."""

    def __init__(
        self,
        booster: Any,
        priors: WorkflowPriors,
        calibrator: PlattCalibrator,
        threshold: float,
        config: dict[str, Any],
        scope: PlattCalibrator | None = None,
    ) -> None:
        self.booster = booster
        self.priors = priors
        self.calibrator = calibrator
        self.threshold = threshold
        self.config = config
        self.scope = scope  # P(in scope), when training had out-of-scope rows

    def confidence(self, inputs: np.ndarray) -> np.ndarray:
        """P(top suggestion right) from ``CONFIDENCE_INPUTS`` rows, times P(in scope) if fitted."""
        conf = self.calibrator(inputs)
        return conf * self.scope(inputs) if self.scope is not None else conf

    @property
    def top_n(self) -> int:
        return int(self.config["top_n"])

    @property
    def context_candidates(self) -> int:
        """Dense candidates added from a conversation's earlier turns (0 for older rankers)."""
        return int(self.config.get("context_candidates", 0))

    def score(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0)
        return np.asarray(self.booster.predict(features, num_threads=1), dtype=np.float64)

    @staticmethod
    def fit(
        train: tuple[np.ndarray, np.ndarray, list[int]],
        val: tuple[np.ndarray, np.ndarray, list[int]] | None,
        params: dict[str, Any] | None = None,
        rounds: int = 400,
    ) -> Any:
        """Train a booster on (features, relevance, group sizes); early stopping on val NDCG@1."""
        import lightgbm as lgb

        p = {**DEFAULT_PARAMS, **(params or {})}
        dtrain = lgb.Dataset(train[0], train[1], group=train[2], feature_name=list(FEATURE_NAMES))
        valid = []
        callbacks = []
        if val is not None and len(val[2]):
            valid = [lgb.Dataset(val[0], val[1], group=val[2], reference=dtrain)]
            callbacks = [lgb.early_stopping(40, first_metric_only=True, verbose=False)]
        return lgb.train(p, dtrain, num_boost_round=rounds, valid_sets=valid, callbacks=callbacks)

    def save(self, out: str | Path) -> None:
        """Write the model folder atomically: LightGBM text model, JSON config and priors."""
        with atomic_folder(out, CONFIG_FILE, "ranker") as tmp:
            self.booster.save_model(str(tmp / MODEL_FILE))
            config = {
                **self.config,
                "calibration": self.calibrator.to_json(),
                "threshold": self.threshold,
            }
            if self.scope is not None:
                config["scope_calibration"] = self.scope.to_json()
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            (tmp / PRIORS_FILE).write_text(json.dumps(self.priors.to_json()) + "\n")
            write_manifest(
                tmp,
                {
                    "format_version": FORMAT_VERSION,
                    "kind": "frontdesk-ranker",
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "versions": {"frontdesk": __version__, "lightgbm": _lightgbm_version()},
                },
            )

    @classmethod
    def load(cls, path: str | Path) -> LambdaRankReranker:
        """Load and verify (checksums, feature names) a ranker folder."""
        import lightgbm as lgb

        root = Path(path)
        manifest = read_manifest(root)
        if manifest.get("kind") != "frontdesk-ranker":
            raise IndexIntegrityError(f"{root}: not a frontdesk ranker folder")
        config = json.loads((root / CONFIG_FILE).read_text())
        if tuple(config["feature_names"]) != FEATURE_NAMES:
            raise IndexIntegrityError(
                f"{root}: trained on other features than this frontdesk computes; retrain it"
            )
        try:
            calibrator = PlattCalibrator.from_json(config["calibration"])
            scope = config.get("scope_calibration")
            scope = PlattCalibrator.from_json(scope) if scope is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexIntegrityError(f"{root / CONFIG_FILE}: calibration: {exc}") from exc
        booster = lgb.Booster(model_file=str(root / MODEL_FILE))
        priors = WorkflowPriors.from_json(json.loads((root / PRIORS_FILE).read_text()))
        return cls(
            booster,
            priors,
            calibrator,
            float(config["threshold"]),
            config,
            scope,
        )


def _lightgbm_version() -> str:
    import lightgbm

    return lightgbm.__version__
