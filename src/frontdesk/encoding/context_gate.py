"""ContextGate: per conversation, which turns make the query (learned, index-only).

Three query variants of a conversation are searched side by side:

- ``latest``: the latest user text alone (vector and BM25 tokens);
- ``mixed``: the latest text plus the recency-decayed earlier
  turns (``ContextEncoder``), BM25 over the latest and earlier user turns;
- ``earlier``: the earlier user turns alone (``EncodedContexts.context_vectors``),
  for a vague follow-up ("any update?") that names no workflow.

The gate keeps ``latest`` unless a small logistic model, one per alternative,
says the alternative is the better query with probability above a threshold
tuned on validation conversations so that no conversation kind loses to
``latest``. Features are scale-free retrieval signals: how similar the latest
text is to the earlier user turns, how many BM25 tokens the latest text has
and its best BM25 score, each variant's top dense cosine, fused top score and
top-1/top-2 margin, and how much of its top score each variant's hits give
the other's top workflow.
Saved as one line of plain JSON (feature names, means, scales, weights,
thresholds, lineage); the bundled default is ``data/context_gate.jsonl``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..retrieval.hybrid import HybridSearcher
from ..retrieval.ranked import Ranked
from ..schema import Conversation
from .encoder import EncodedContexts

VARIANTS = ("latest", "mixed", "earlier")
ALTERNATIVES = VARIANTS[1:]
FEATURES = (
    "latest_earlier_cosine",
    "latest_tokens",
    "latest_sparse_top",
    "latest_dense_top",
    "latest_fused_top",
    "latest_margin",
    "variant_dense_top",
    "variant_fused_top",
    "variant_margin",
    "dense_top_gain",
    "margin_gain",
    "same_top",
    "latest_keeps_variant_top",  # the latest text's score for the variant's top, / its own top
    "variant_keeps_latest_top",  # and the other way round
)
GATE_DEPTH = 10  # fused hits per variant the features read
FORMAT = "frontdesk-context-gate/1"
BUNDLED = (
    "context_gate.jsonl"  # packaged with data/*.jsonl; fitted by benchmarks/multiturn_context.py
)

# thresholds tried per alternative; finer near 1 (a gate must be sure to leave latest)
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.998, 0.999, 1.01)

Tokenize = Callable[[str], list[str]]
Hits = tuple[Ranked, Ranked, Ranked]  # HybridSearcher.search's (fused, dense, sparse)


@dataclass
class GateInputs:
    """Per conversation: each variant's availability and top workflow, and the features."""

    available: np.ndarray  # (n, V) bool; latest always
    top: np.ndarray  # (n, V) int64 top-1 workflow position per variant, -1 if none
    features: np.ndarray  # (n, A, F) per alternative to latest
    vectors: np.ndarray  # (V, n, d) each variant's query vector
    tokens: list[list[list[str]]]  # (V, n) each variant's BM25 tokens
    hits: list[list[Hits | None]]  # (n, V) with keep_hits, each searched variant's hits


def variant_queries(
    encoded: EncodedContexts, convs: Sequence[Conversation], tokenize: Tokenize
) -> tuple[np.ndarray, list[list[list[str]]], np.ndarray]:
    """The three variants' vectors (V, n, d), tokens (V lists of n) and availability (n, V)."""
    n = len(convs)
    latest_tokens = [tokenize(c.text) for c in convs]
    earlier_tokens = [
        [tok for t in c.turns if t.role == "user" for tok in tokenize(t.text)] for c in convs
    ]
    context = (
        encoded.context_vectors
        if encoded.context_vectors is not None
        else np.zeros_like(encoded.text_vectors)
    )
    vectors = np.stack([encoded.text_vectors, encoded.vectors, context])
    tokens = [
        latest_tokens,
        [a + b for a, b in zip(latest_tokens, earlier_tokens, strict=True)],
        earlier_tokens,
    ]
    has_turns = np.array([bool(c.turns) for c in convs])
    has_user = np.array([any(t.role == "user" for t in c.turns) for c in convs])
    available = np.stack([np.ones(n, bool), has_turns, has_user], axis=1)
    return vectors, tokens, available


def gate_inputs(
    hybrid: HybridSearcher,
    encoded: EncodedContexts,
    convs: Sequence[Conversation],
    tokenize: Tokenize,
    variants: Sequence[int] = tuple(range(len(VARIANTS))),
    keep_hits: bool = False,
) -> GateInputs:
    """Search each available variant once and read the gate's features from the hits.

    ``variants``: the ones worth searching (latest always); an alternative left out is
    unavailable, so never chosen (no alternative's features read another's). With
    ``keep_hits`` the hits of every search are kept (``GateInputs.hits``).
    """
    vectors, tokens, available = variant_queries(encoded, convs, tokenize)
    available[:, [v for v in range(1, len(VARIANTS)) if v not in variants]] = False
    n = len(convs)
    top = np.full((n, len(VARIANTS)), -1, dtype=np.int64)
    stats = np.zeros((n, len(VARIANTS), 3))  # dense top, fused top, fused margin
    sparse_top = np.zeros(n)  # the latest text's best BM25 score
    fused: list[list[Ranked | None]] = [[None] * len(VARIANTS) for _ in range(n)]
    found: list[list[Hits | None]] = [[None] * len(VARIANTS) for _ in range(n)]
    for v in range(len(VARIANTS)):
        rows = np.flatnonzero(available[:, v])
        if len(rows) == 0:
            continue
        hits = hybrid.search(vectors[v][rows], [tokens[v][i] for i in rows], GATE_DEPTH)
        for i, (f, dense, sparse) in zip(rows, hits, strict=True):
            stats[i, v] = _stats(f, dense)
            top[i, v] = f.ids[0] if len(f) else -1
            fused[i][v] = f
            if keep_hits:  # the dense and BM25 lists run to the searcher's depth: only on ask
                found[i][v] = (f, dense, sparse)
            if v == 0 and len(sparse):
                sparse_top[i] = float(sparse.scores[0])
    cos = np.einsum("nd,nd->n", vectors[0], vectors[2])
    n_tok = np.log1p([len(t) for t in tokens[0]])
    feats = np.zeros((n, len(ALTERNATIVES), len(FEATURES)))
    for a in range(len(ALTERNATIVES)):
        v = a + 1
        keeps = np.array([_share(fused[i][0], top[i, v]) for i in range(n)])
        kept = np.array([_share(fused[i][v], top[i, 0]) for i in range(n)])
        feats[:, a] = np.column_stack(
            [
                cos,
                n_tok,
                np.log1p(np.maximum(sparse_top, 0.0)),
                stats[:, 0, 0],
                stats[:, 0, 1],
                stats[:, 0, 2],
                stats[:, v, 0],
                stats[:, v, 1],
                stats[:, v, 2],
                stats[:, v, 0] - stats[:, 0, 0],
                stats[:, v, 2] - stats[:, 0, 2],
                (top[:, v] == top[:, 0]).astype(float),
                keeps,
                kept,
            ]
        )
    return GateInputs(available, top, feats, vectors, tokens, found)


def _share(hits: Ranked | None, workflow: int) -> float:
    """``workflow``'s score in ``hits`` as a share of the top score (0 when absent)."""
    if hits is None or len(hits) == 0 or hits.scores[0] <= 0:
        return 0.0
    found = np.flatnonzero(hits.ids == workflow)
    return float(hits.scores[found[0]] / hits.scores[0]) if len(found) else 0.0


def _stats(fused: Ranked, dense: Ranked) -> tuple[float, float, float]:
    f = fused.scores
    return (
        float(dense.scores[0]) if len(dense) else 0.0,
        float(f[0]) if len(f) else 0.0,
        float(f[0] - f[1]) if len(f) > 1 else float(f[0]) if len(f) else 0.0,
    )


@dataclass
class ContextGate:
    """One logistic model per alternative variant; switches only above its threshold."""

    mean: np.ndarray  # (A, F)
    scale: np.ndarray  # (A, F)
    weights: np.ndarray  # (A, F)
    bias: np.ndarray  # (A,)
    thresholds: np.ndarray  # (A,) probabilities; > 1 switches that alternative off
    lineage: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, A): the chance each alternative is the better query, given they differ."""
        from scipy.special import expit  # a sigmoid that cannot overflow

        z = ((features - self.mean) / self.scale * self.weights).sum(axis=2) + self.bias
        return expit(z)

    def choose(
        self, features: np.ndarray, available: np.ndarray, thresholds: np.ndarray | None = None
    ) -> np.ndarray:
        """(n,) variant index per conversation: 0 (latest) unless an alternative clears its bar."""
        t = self.thresholds if thresholds is None else thresholds
        p = self.probabilities(features)
        ok = (p > t) & available[:, 1:]
        best = np.where(ok, p, -np.inf).argmax(axis=1)  # the surest of those that clear
        return np.where(ok.any(axis=1), best + 1, 0)

    @property
    def searched(self) -> tuple[int, ...]:
        """The variants worth searching: latest, and each alternative its threshold can
        choose (a probability must exceed it: at 1 or above it never can)."""
        return (0, *(a + 1 for a in range(len(ALTERNATIVES)) if self.thresholds[a] < 1.0))

    @property
    def fingerprint(self) -> str:
        """A short digest of the gate (its JSON): what a gated ranker records it learned with."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "variants": list(VARIANTS),
            "features": list(FEATURES),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "thresholds": self.thresholds.tolist(),
            "lineage": self.lineage,
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """One line of JSON: a valid ``.json`` file and a one-record ``.jsonl`` one."""
        Path(path).write_text(json.dumps(self.to_json()) + "\n")

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContextGate:
        if data.get("format") != FORMAT or list(data.get("features", [])) != list(FEATURES):
            raise ValueError(f"not a {FORMAT} gate with this version's features")
        if list(data.get("variants", [])) != list(VARIANTS):
            raise ValueError(f"not a {FORMAT} gate: variants must be {list(VARIANTS)}")
        shapes = {
            "mean": (len(ALTERNATIVES), len(FEATURES)),
            "scale": (len(ALTERNATIVES), len(FEATURES)),
            "weights": (len(ALTERNATIVES), len(FEATURES)),
            "bias": (len(ALTERNATIVES),),
            "thresholds": (len(ALTERNATIVES),),
        }
        arrays = {}
        for key, shape in shapes.items():
            try:
                arr = np.asarray(data[key], dtype=float)
            except (TypeError, ValueError):
                raise ValueError(f"not a {FORMAT} gate: {key} must be numbers") from None
            if arr.shape != shape or not np.isfinite(arr).all():
                raise ValueError(
                    f"not a {FORMAT} gate: {key} must be {' x '.join(map(str, shape))} "
                    "finite numbers"
                )
            arrays[key] = arr
        if (arrays["scale"] <= 0).any():
            raise ValueError(f"not a {FORMAT} gate: scale must be positive")
        lineage = data.get("lineage", {})
        return cls(**arrays, lineage=dict(lineage) if isinstance(lineage, dict) else {})

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ContextGate:
        """A saved gate, or (``None``) the bundled one (``data/context_gate.jsonl``, one line).

        Raises ``OSError`` for a file that cannot be read, ``ValueError`` for one that is
        not a gate of this version."""
        if path is None:
            text = (resources.files("frontdesk") / "data" / BUNDLED).read_text(encoding="utf-8")
        else:
            if Path(path).is_dir():
                raise IsADirectoryError(
                    "a folder, not a gate file (an index's own gate is its context_gate.jsonl)"
                )
            try:
                text = Path(path).read_text(encoding="utf-8")
            except FileNotFoundError:
                raise FileNotFoundError(
                    "no such file (a gate from `frontdesk train gate`)"
                ) from None
            except UnicodeDecodeError:
                raise ValueError(f"not a {FORMAT} gate (not UTF-8 text)") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise ValueError(f"not a {FORMAT} gate (not one line of JSON)") from None
        if not isinstance(data, dict):
            raise ValueError(f"not a {FORMAT} gate")
        try:
            return cls.from_json(data)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a {FORMAT} gate (missing or bad {exc})") from None


def gate_source(context_model: str | None, index_gate: Path | None) -> tuple[Path | None, str]:
    """Which gate serves, as a file (None: the bundled one), and its name in reports:
    ``FRONTDESK_CONTEXT_MODEL``'s file when set (``bundled`` names the packaged gate),
    else the index's own (``index``: fitted from its examples at build), else the
    bundled one."""
    if context_model == "bundled":
        return None, "bundled"
    if context_model:
        return Path(context_model), context_model
    if index_gate is not None:
        return index_gate, "index"
    return None, "bundled"


def fit_gate(
    features: np.ndarray, correct: np.ndarray, available: np.ndarray, c: float = 1.0
) -> ContextGate:
    """Fit each alternative on conversations where it and latest disagree on being right.

    ``correct`` (n, V): whether each variant's top-1 is the label. Thresholds
    start at 0.5; :func:`tune_thresholds` sets them on validation.
    """
    from sklearn.linear_model import LogisticRegression

    n_alt, n_feat = len(ALTERNATIVES), len(FEATURES)
    mean, scale = np.zeros((n_alt, n_feat)), np.ones((n_alt, n_feat))
    weights, bias = np.zeros((n_alt, n_feat)), np.full(n_alt, -10.0)
    for a in range(n_alt):
        v = a + 1
        rows = available[:, v] & (correct[:, v] != correct[:, 0])
        x, y = features[rows, a], correct[rows, v].astype(int)
        if len(set(y.tolist())) < 2:
            continue  # never (or always) better: keep it switched off
        mean[a], scale[a] = x.mean(axis=0), x.std(axis=0) + 1e-6
        model = LogisticRegression(C=c, max_iter=1000).fit((x - mean[a]) / scale[a], y)
        weights[a], bias[a] = model.coef_[0], model.intercept_[0]
    return ContextGate(mean, scale, weights, bias, np.full(n_alt, 0.5))


def accuracy(chosen: np.ndarray, correct: np.ndarray) -> float:
    """Top-1 accuracy when each conversation is answered by its chosen variant."""
    return float(correct[np.arange(len(chosen)), chosen].mean()) if len(chosen) else 0.0


def tune_thresholds(
    gate: ContextGate,
    features: np.ndarray,
    correct: np.ndarray,
    available: np.ndarray,
    groups: np.ndarray,
    grid: Sequence[float] = THRESHOLDS,
) -> np.ndarray:
    """The per-alternative thresholds with the best overall accuracy among those that
    leave no group (conversation kind) below latest-only; 1.01 switches one off."""
    kinds = sorted(set(groups.tolist()))
    floor = {
        g: accuracy(np.zeros(int((groups == g).sum()), int), correct[groups == g]) for g in kinds
    }
    best, best_acc = np.full(len(ALTERNATIVES), 1.01), -1.0
    for t1 in grid:
        for t2 in grid:
            t = np.array([t1, t2])
            chosen = gate.choose(features, available, t)
            if any(accuracy(chosen[groups == g], correct[groups == g]) < floor[g] for g in kinds):
                continue
            acc = accuracy(chosen, correct)
            if acc > best_acc + 1e-12:
                best, best_acc = t, acc
    return best


class ContextQueries(NamedTuple):
    """The queries a context mode made, and which variant each conversation's is."""

    encoded: EncodedContexts
    tokens: list[list[str]] | None
    used: list[str]  # per conversation, one of VARIANTS
    # per conversation, the gate's hits for the chosen query (to GATE_DEPTH), None where
    # nothing was searched: an answer to at most GATE_DEPTH needs no search of its own
    hits: list[Hits | None] | None = None


def context_queries(
    context: str,
    hybrid: HybridSearcher | None,
    encoded: EncodedContexts,
    convs: Sequence[Conversation],
    tokenize: Tokenize,
    tokens: list[list[str]] | None,
    gate: Callable[[], ContextGate],
    keep_hits: bool = True,
) -> ContextQueries:
    """The query vectors and tokens a context mode makes of these conversations.

    ``mixed``: as encoded. ``latest``: the latest text's vector (``tokens`` are
    already the latest text's). ``gated``: each conversation's variant chosen by
    ``gate()`` from searches of ``hybrid`` (the latest text alone without one).
    Inference and ranker training both call this, so a ranker learns from the
    queries it will be given. ``encoded`` is never changed: latest and gated
    return a new encoding with new query vectors (its other fields shared).
    ``used`` names each conversation's variant (``mixed`` only where there are
    earlier turns to mix); with ``keep_hits``, ``hits`` holds the gate's search of each
    chosen query (training, which searches deeper, has no use for them).
    """
    if context == "mixed":
        return ContextQueries(encoded, tokens, ["mixed" if c.turns else "latest" for c in convs])
    latest = dataclasses.replace(encoded, vectors=encoded.text_vectors.copy())
    used = ["latest"] * len(convs)
    if context == "latest" or hybrid is None:
        return ContextQueries(latest, tokens, used)
    out = list(tokens) if tokens is not None else [tokenize(c.text) for c in convs]
    # only a conversation with earlier turns has a choice to make (and searches to pay for)
    rows = [i for i, c in enumerate(convs) if c.turns]
    hits: list[Hits | None] = [None] * len(convs)
    if rows:
        g = gate()
        inputs = gate_inputs(
            hybrid, encoded.take(rows), [convs[i] for i in rows], tokenize, g.searched, keep_hits
        )
        chosen = g.choose(inputs.features, inputs.available)
        latest.vectors[rows] = inputs.vectors[chosen, np.arange(len(rows))]
        for j, (i, v) in enumerate(zip(rows, chosen.tolist(), strict=True)):
            out[i] = inputs.tokens[v][j]
            used[i] = VARIANTS[v]
            hits[i] = inputs.hits[j][v]
    return ContextQueries(latest, out, used, hits if keep_hits else None)
