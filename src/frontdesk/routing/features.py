"""What the router knows about a contact and an agent, as numbers for LightGBM.

Context features come from the one conversation encoding (``EncodedContexts``)
plus the profile: a PCA projection of the vector, the predicted topic mix
(a softmax classifier trained on the logs' dispositions), profile fields as
categorical codes, tenure, prior contacts, minutes waited and turn count.
All parts are arrays saved as ``.npy`` with a JSON vocabulary; what an
agent adds is :mod:`~frontdesk.routing.agent_matcher`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import UserProfile

CATEGORICAL_PROFILE = ("segment", "plan", "language", "country")
N_PCA = 32


class ContextFeaturizer:
    """Encoding + profile -> context features; fitted on the logs, saved as arrays."""

    def __init__(
        self,
        pca_mean: np.ndarray,
        pca_components: np.ndarray,
        topic_coef: np.ndarray,
        topic_intercept: np.ndarray,
        topics: list[str],
        vocab: dict[str, list[str]],
    ) -> None:
        self.pca_mean = pca_mean
        self.pca_components = pca_components
        self.topic_coef = topic_coef
        self.topic_intercept = topic_intercept
        self.topics = topics
        self.vocab = vocab

    @classmethod
    def fit(
        cls, vectors: np.ndarray, topics: Sequence[str], profiles: Sequence[Mapping[str, Any]]
    ) -> ContextFeaturizer:
        mean = vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(vectors - mean, full_matrices=False)
        names = sorted(set(topics))
        y = np.array([names.index(t) for t in topics])
        coef, intercept = fit_topic_classifier(vectors, y, len(names))
        vocab = {
            f: sorted({str(p.get(f)) for p in profiles if p.get(f) is not None})
            for f in CATEGORICAL_PROFILE
        }
        return cls(
            mean.astype(np.float32),
            vt[:N_PCA].astype(np.float32),
            coef.astype(np.float32),
            intercept.astype(np.float32),
            names,
            vocab,
        )

    @property
    def names(self) -> list[str]:
        return (
            [f"pca_{i}" for i in range(self.pca_components.shape[0])]
            + [f"topic_{t}" for t in self.topics]
            + list(CATEGORICAL_PROFILE)
            + ["tenure_days", "prior_contacts", "wait_min", "n_turns"]
        )

    @property
    def categorical(self) -> list[str]:
        return list(CATEGORICAL_PROFILE)

    def topic_probs(self, vectors: np.ndarray) -> np.ndarray:
        z = vectors @ self.topic_coef.T + self.topic_intercept
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def transform(
        self,
        vectors: np.ndarray,
        profiles: Sequence[UserProfile | Mapping[str, Any]],
        waits: np.ndarray,
        n_turns: np.ndarray,
        topic_probs: np.ndarray | None = None,
    ) -> np.ndarray:
        """Context features; ``topic_probs`` overrides the classifier (out-of-fold training)."""
        pca = (vectors - self.pca_mean) @ self.pca_components.T
        cat = np.full((len(vectors), len(CATEGORICAL_PROFILE)), np.nan, dtype=np.float32)
        num = np.full((len(vectors), 2), np.nan, dtype=np.float32)
        for i, p in enumerate(profiles):
            fields = p.fields() if isinstance(p, UserProfile) else dict(p)
            for j, f in enumerate(CATEGORICAL_PROFILE):
                v = fields.get(f)
                if v is not None and str(v) in self.vocab[f]:
                    cat[i, j] = self.vocab[f].index(str(v))
            for j, f in enumerate(("tenure_days", "prior_contacts")):
                v = fields.get(f)
                if v is not None:
                    num[i, j] = float(v)
        return np.hstack(
            [
                pca,
                self.topic_probs(vectors) if topic_probs is None else topic_probs,
                cat,
                num,
                np.asarray(waits, dtype=np.float32)[:, None],
                np.asarray(n_turns, dtype=np.float32)[:, None],
            ]
        ).astype(np.float32)

    def save(self, root: Path) -> None:
        for name in ("pca_mean", "pca_components", "topic_coef", "topic_intercept"):
            np.save(root / f"{name}.npy", getattr(self, name), allow_pickle=False)
        (root / "featurizer.json").write_text(
            json.dumps({"topics": self.topics, "vocab": self.vocab}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, root: Path) -> ContextFeaturizer:
        meta = json.loads((root / "featurizer.json").read_text())
        arrays = {
            n: np.load(root / f"{n}.npy", allow_pickle=False)
            for n in ("pca_mean", "pca_components", "topic_coef", "topic_intercept")
        }
        return cls(
            arrays["pca_mean"],
            arrays["pca_components"],
            arrays["topic_coef"],
            arrays["topic_intercept"],
            meta["topics"],
            meta["vocab"],
        )


def fit_topic_classifier(
    vectors: np.ndarray, y: np.ndarray, n_topics: int
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax-regression weights (n_topics, d) and intercepts; unseen topics get ~0 probability."""
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((n_topics, vectors.shape[1]))
    intercept = np.full(n_topics, -30.0)
    seen = np.unique(y)
    if len(seen) == 1:
        intercept[seen[0]] = 0.0
        return coef, intercept
    lr = LogisticRegression(C=10.0, max_iter=300).fit(vectors, y)
    c, b = lr.coef_, lr.intercept_
    if len(seen) == 2:  # binary sklearn keeps one row; make it a two-way softmax
        c = np.vstack([-c / 2, c / 2])
        b = np.array([-b[0] / 2, b[0] / 2])
    coef[lr.classes_], intercept[lr.classes_] = c, b
    return coef, intercept
