"""LambdaRankReranker: a LightGBM lambdarank model over candidate features, saved without pickle."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import (
    FORMAT_VERSION,
    RANKER,
    atomic_folder,
    read_manifest,
    recover,
    write_manifest,
)
from ..errors import IndexIntegrityError
from ..lineage import FeedbackLineage
from .calibration import PlattCalibrator, ValidationOutcomes
from .classifier import WorkflowClassifier
from .features import FEATURE_NAMES
from .priors import WorkflowPriors

RANKER_FORMAT = 2  # 2: the base margin applies to every conversation (0649864 had single turns)
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


_COL = {name: j for j, name in enumerate(FEATURE_NAMES)}
BASE_WEIGHTS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5)


def base_margin(features: np.ndarray, weight: float) -> np.ndarray:
    """Where the trees start for one query's candidates: the fused retrieval score plus
    ``weight`` x the classifier's log-probability.

    Trees combine two scores poorly in the few rounds early stopping allows;
    starting from the blend, they learn only corrections. A workflow the
    classifier never saw counts as likely as the best one it knows: there is
    no evidence against it, and its retrieval score decides. Conversations
    with earlier turns get the same blend; early stopping reads their two-turn
    forms too, so the trees keep the rounds a vague follow-up needs
    (BENCHMARKS.md, seventh and eighth sessions).
    """
    fused = features[:, _COL["fused_score"]].astype(np.float64)
    if weight == 0 or len(features) == 0:
        return fused
    logp = features[:, _COL["classifier_logp"]].astype(np.float64)
    known = ~np.isnan(logp)
    if not known.any():
        return fused
    return fused + weight * np.where(known, logp, logp[known].max())


def stacked_margin(features: np.ndarray, sizes: list[int], weight: float) -> np.ndarray:
    """``base_margin`` of concatenated query groups."""
    bounds = np.cumsum([0, *sizes])
    parts = [
        base_margin(features[a:b], weight) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


def candidate_scores(booster: Any, features: np.ndarray, base_weight: float) -> np.ndarray:
    """One query's candidate scores: the base margin plus the trees' correction."""
    if len(features) == 0:
        return np.zeros(0)
    trees = np.asarray(booster.predict(features, num_threads=1), dtype=np.float64)
    return base_margin(features, base_weight) + trees


def choose_base_weight(
    groups: tuple[np.ndarray, np.ndarray, list[int]],
    grid: tuple[float, ...] = BASE_WEIGHTS,
    weights: np.ndarray | None = None,
) -> tuple[float, float]:
    """The classifier weight whose blend puts the most groups' relevant candidate first
    (ties: the smaller weight), and that share; ``weights``: one per group (e.g. position
    bias), the share then weighted."""
    x, y, sizes = groups
    bounds = np.cumsum([0, *sizes])
    w = np.ones(len(sizes)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(w) != len(sizes):
        raise ValueError(f"{len(w)} weights for {len(sizes)} groups")
    total = max(float(w.sum()), 1e-12) if len(sizes) else 1.0
    best = (0.0, -1.0)
    for weight in grid:
        hits = 0.0
        for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
            hits += w[g] * float(y[a + int(np.argmax(base_margin(x[a:b], weight)))] > 0)
        share = hits / total
        if share > best[1]:
            best = (weight, share)
    return best


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
        classifier: WorkflowClassifier | None = None,
        base_weight: float = 0.0,
        validation: ValidationOutcomes | None = None,
    ) -> None:
        self.booster = booster
        self.priors = priors
        self.calibrator = calibrator
        self.threshold = threshold
        self.config = config
        self.scope = scope  # P(in scope), when training had out-of-scope rows
        self.classifier = classifier  # None when fewer than two workflows had rows
        self.base_weight = base_weight  # the classifier's weight in the trees' start
        # what the threshold was chosen on (None for rankers saved before it was kept)
        self.validation = validation

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
        return candidate_scores(self.booster, features, self.base_weight)

    @staticmethod
    def fit(
        train: tuple[np.ndarray, np.ndarray, list[int]],
        val: tuple[np.ndarray, np.ndarray, list[int]] | None,
        params: dict[str, Any] | None = None,
        rounds: int = 400,
        base_weight: float = 0.0,
        weights: np.ndarray | None = None,
        val_weights: np.ndarray | None = None,
    ) -> Any:
        """Train a booster on (features, relevance, group sizes), starting from
        ``base_margin``; early stopping on val NDCG@1. ``weights``: one per training
        candidate row (LightGBM's lambdarank scales each row's gradient and hessian by it;
        a query's rows share its weight); ``val_weights``: the same for ``val`` (its NDCG
        is then the queries' weighted mean)."""
        import lightgbm as lgb

        p = {**DEFAULT_PARAMS, **(params or {})}
        dtrain = lgb.Dataset(
            train[0],
            train[1],
            group=train[2],
            weight=weights,
            init_score=stacked_margin(train[0], train[2], base_weight),
            feature_name=list(FEATURE_NAMES),
        )
        valid = []
        callbacks = []
        if val is not None and len(val[2]):
            valid = [
                lgb.Dataset(
                    val[0],
                    val[1],
                    group=val[2],
                    weight=val_weights,
                    init_score=stacked_margin(val[0], val[2], base_weight),
                    reference=dtrain,
                )
            ]
            callbacks = [lgb.early_stopping(40, first_metric_only=True, verbose=False)]
        return lgb.train(p, dtrain, num_boost_round=rounds, valid_sets=valid, callbacks=callbacks)

    def save(self, out: str | Path, lineage: FeedbackLineage | None = None) -> None:
        """Write the model folder atomically: LightGBM text model, JSON config, priors, the
        classifier's weights and validation's outcomes (``.npy``); and ``lineage``, the
        logged rows it learned from (``train ranker --feedback``), under the manifest."""
        with atomic_folder(out, CONFIG_FILE, "ranker") as tmp:
            if lineage is not None:
                lineage.save(tmp)
            self.booster.save_model(str(tmp / MODEL_FILE))
            config = {
                **self.config,
                "calibration": self.calibrator.to_json(),
                "threshold": self.threshold,
                "base_weight": self.base_weight,
                "ranker_format": RANKER_FORMAT,
            }
            if self.scope is not None:
                config["scope_calibration"] = self.scope.to_json()
            if self.classifier is not None:
                config["classifier"] = self.classifier.save(tmp)
            if self.validation is not None:
                config["validation_outcomes"] = self.validation.save(tmp)
            (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
            (tmp / PRIORS_FILE).write_text(json.dumps(self.priors.to_json()) + "\n")
            write_manifest(
                tmp,
                {
                    "format_version": FORMAT_VERSION,
                    "kind": RANKER,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "versions": {"frontdesk": __version__, "lightgbm": _lightgbm_version()},
                },
            )

    @classmethod
    def load(cls, path: str | Path) -> LambdaRankReranker:
        """Load and verify (checksums, feature names) a ranker folder."""
        import lightgbm as lgb

        root = Path(path)
        recover(root)  # a write a crash interrupted is finished first
        read_manifest(root, kind=RANKER)
        config = json.loads((root / CONFIG_FILE).read_text())
        if tuple(config["feature_names"]) != FEATURE_NAMES:
            raise IndexIntegrityError(
                f"{root}: trained on other features than this frontdesk computes; retrain it"
            )
        if config.get("ranker_format", 1) != RANKER_FORMAT:
            raise IndexIntegrityError(
                f"{root}: saved by another frontdesk version (ranker format "
                f"{config.get('ranker_format', 1)}, this one reads {RANKER_FORMAT}); retrain it"
            )
        try:
            calibrator = PlattCalibrator.from_json(config["calibration"])
            scope = config.get("scope_calibration")
            scope = PlattCalibrator.from_json(scope) if scope is not None else None
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexIntegrityError(f"{root / CONFIG_FILE}: calibration: {exc}") from exc
        entry = config.get("classifier")
        classifier = WorkflowClassifier.load(root, entry) if entry is not None else None
        entry = config.get("validation_outcomes")
        validation = ValidationOutcomes.load(root, entry) if entry is not None else None
        booster = lgb.Booster(model_file=str(root / MODEL_FILE))
        priors = WorkflowPriors.from_json(json.loads((root / PRIORS_FILE).read_text()))
        return cls(
            booster,
            priors,
            calibrator,
            float(config["threshold"]),
            config,
            scope,
            classifier,
            float(config.get("base_weight", 0.0)),
            validation,
        )


def _lightgbm_version() -> str:
    import lightgbm

    return lightgbm.__version__
