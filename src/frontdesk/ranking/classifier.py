"""WorkflowClassifier: a linear softmax from the encoder's vector to the workflow.

Retrieval scores a query by its nearest documents. A discriminative model
fitted on the labelled rows learns which directions of the encoder's space
separate neighbouring workflows (card arrival vs card delivery estimate),
which nearest-neighbour similarity cannot. The ranker reads its
log-probabilities as features. Workflows without training rows have no
class: their features are missing (NaN), and the ranker learns what that
means from training folds whose classifier leaves some workflows out.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexIntegrityError

CLASSIFIER_FILE = "classifier.npy"
DEFAULT_C = 100.0  # inverse L2 strength; 30-300 were alike on BANKING77 validation


@dataclass
class WorkflowClassifier:
    """Multinomial logistic regression over unit vectors; ``weights`` holds the bias last."""

    workflow_ids: list[str]
    weights: np.ndarray  # (classes, dim + 1) float32

    @classmethod
    def fit(
        cls, vectors: np.ndarray, labels: Sequence[str], c: float = DEFAULT_C
    ) -> WorkflowClassifier | None:
        """Fit on labelled vectors; ``None`` when fewer than two workflows have rows."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        classes = sorted(set(labels))
        if len(classes) < 2:
            return None
        column = {w: j for j, w in enumerate(classes)}
        y = np.array([column[w] for w in labels])
        model = LogisticRegression(C=c, max_iter=1000)
        with warnings.catch_warnings():
            # a few hundred lbfgs steps are close enough for a ranking feature
            warnings.simplefilter("ignore", ConvergenceWarning)
            # many workflows with a few questions each is this classifier's usual case, not
            # a regression target mistaken for classes, as sklearn suspects above 50 %
            warnings.filterwarnings(
                "ignore", message="The number of unique classes is greater than 50%"
            )
            model.fit(np.asarray(vectors, dtype=np.float32), y)
        coef, bias = model.coef_, model.intercept_
        if len(classes) == 2:  # sklearn keeps one row for two classes: make it a softmax
            coef = np.vstack([-coef / 2, coef / 2])
            bias = np.array([-bias[0] / 2, bias[0] / 2])
        weights = np.hstack([coef, bias[:, None]]).astype(np.float32)
        return cls(classes, weights)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1] - 1)

    def log_proba(self, vectors: np.ndarray) -> np.ndarray:
        """(rows, classes) log-probabilities, classes in ``workflow_ids`` order."""
        logits = vectors.astype(np.float32) @ self.weights[:, :-1].T + self.weights[:, -1]
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def columns(self, workflow_ids: Sequence[str]) -> np.ndarray:
        """Each workflow's class column, or -1 for a workflow the classifier never saw."""
        column = {w: j for j, w in enumerate(self.workflow_ids)}
        return np.array([column.get(w, -1) for w in workflow_ids], dtype=np.int64)

    def save(self, folder: Path) -> dict[str, object]:
        """Write the weights as ``.npy``; returns the config entry that names the classes."""
        np.save(folder / CLASSIFIER_FILE, self.weights, allow_pickle=False)
        return {"file": CLASSIFIER_FILE, "workflow_ids": self.workflow_ids, "dim": self.dim}

    @classmethod
    def load(cls, folder: Path, entry: dict[str, object]) -> WorkflowClassifier:
        """Read what ``save`` wrote (the folder's manifest has checked the file already)."""
        path = folder / str(entry["file"])
        try:
            weights = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{path}: unreadable classifier weights: {exc}") from exc
        ids = entry.get("workflow_ids")
        dim = entry.get("dim")
        if (
            not isinstance(ids, list)
            or weights.ndim != 2
            or weights.shape[0] != len(ids)
            or (isinstance(dim, int) and weights.shape[1] != dim + 1)
        ):
            raise IndexIntegrityError(
                f"{path}: classifier weights do not match the workflow list in the config"
            )
        return cls([str(w) for w in ids], weights.astype(np.float32))
