"""Off-policy estimators as per-row terms plus associative sums.

For each logged row with reward r, logging propensity mu of the logged
action, target probability pi of that action, the reward model's prediction
q_f for it and dm = sum_a pi(a|x) q(x, a) over the eligible actions, the
row contributes the vector

    z = (w, w r, dm, u, s, r),   w = pi / mu,  u = w (r - q_f),  s = 1{w <= tau} u

Every estimator is a function of the means of z, and its influence function
is linear in z, so a segment is summarised by n, the sums of z and the sums
of the products z_k z_l. Those sums add up across batches, files and Spark
partitions in any order; the value, a 95 % normal interval (influence
function variance, n/(n-1) corrected) and the effective sample size
(sum w)^2 / sum w^2 come from them alone:

    dm        mean(dm)                          ipw    mean(w r)
    snipw     sum(w r) / sum(w)                 dr     mean(dm + u)
    sndr      mean(dm) + sum(u) / sum(w)        switch-dr  mean(dm + s)

``logged`` is the logging policy's observed mean of r. With ``bootstrap=B``
each row also carries B Poisson(1) weights drawn from a hash of its contact
id (the same on every engine), and percentile intervals come from the B
weighted replicate sums.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..lineage import contact_hashes

Z_NAMES = ("w", "wr", "dm", "u", "s", "r")
ESTIMATORS = ("dm", "ipw", "snipw", "dr", "sndr", "switch-dr")
# The literature's other spellings (inverse propensity *scoring*), accepted as the same estimators.
ALIASES = {"ips": "ipw", "snips": "snipw", "switch_dr": "switch-dr", "switchdr": "switch-dr"}
Z95 = 1.959963984540054
_W, _WR, _DM, _U, _S, _R = range(6)


def row_terms(
    reward: np.ndarray,
    pscore: np.ndarray,
    pi_factual: np.ndarray,
    dm: np.ndarray,
    q_factual: np.ndarray,
    switch_tau: float = 10.0,
) -> np.ndarray:
    """The (n, 6) matrix of per-row terms z (see the module docstring)."""
    r = np.asarray(reward, dtype=float)
    w = np.asarray(pi_factual, dtype=float) / np.asarray(pscore, dtype=float)
    u = w * (r - np.asarray(q_factual, dtype=float))
    s = np.where(w <= switch_tau, u, 0.0)
    return np.column_stack([w, w * r, np.asarray(dm, dtype=float), u, s, r])


@dataclass
class Moments:
    """n, sums of z, sums of z z^T (and optional bootstrap replicate sums) for one segment."""

    n: float = 0.0
    s1: np.ndarray = field(default_factory=lambda: np.zeros(6))
    s2: np.ndarray = field(default_factory=lambda: np.zeros((6, 6)))
    boot: np.ndarray | None = None  # (B, 7): replicate weight sum, then weighted sums of z

    @classmethod
    def of(cls, z: np.ndarray, boot_weights: np.ndarray | None = None) -> Moments:
        m = cls(float(len(z)), z.sum(axis=0), z.T @ z)
        if boot_weights is not None:  # (n, B)
            m.boot = np.column_stack([boot_weights.sum(axis=0), boot_weights.T @ z])
        return m

    def merge(self, other: Moments) -> Moments:
        boot = None
        if self.boot is not None or other.boot is not None:
            boot = (self.boot if self.boot is not None else 0) + (
                other.boot if other.boot is not None else 0
            )
        return Moments(self.n + other.n, self.s1 + other.s1, self.s2 + other.s2, boot)

    # Flat form, for Spark columns and JSON.
    @staticmethod
    def flat_names() -> list[str]:
        names = ["n", *(f"s_{a}" for a in Z_NAMES)]
        names += [f"ss_{Z_NAMES[i]}_{Z_NAMES[j]}" for i in range(6) for j in range(i, 6)]
        return names

    @classmethod
    def flat_rows(cls, z: np.ndarray) -> np.ndarray:
        """Per row, the flat vector whose column sums are this row set's Moments."""
        cols = [np.ones(len(z)), *(z[:, i] for i in range(6))]
        cols += [z[:, i] * z[:, j] for i in range(6) for j in range(i, 6)]
        return np.column_stack(cols)

    @classmethod
    def from_flat(cls, values: Sequence[float]) -> Moments:
        v = list(values)
        s2 = np.zeros((6, 6))
        k = 7
        for i in range(6):
            for j in range(i, 6):
                s2[i, j] = s2[j, i] = v[k]
                k += 1
        return cls(float(v[0]), np.array(v[1:7], dtype=float), s2)


def _normal(
    moments: Moments, value: float, coef: np.ndarray, const: float = 0.0
) -> tuple[float, float]:
    """Standard error of a mean-zero-adjusted linear influence function const + coef . z."""
    n = moments.n
    if n < 2:  # one row has no spread to measure: no interval, rather than a zero-width one
        return value, float("nan")
    mean_z = moments.s1 / n
    ezz = moments.s2 / n
    e_psi = const + coef @ mean_z
    e_psi2 = const**2 + 2 * const * (coef @ mean_z) + coef @ ezz @ coef
    var = e_psi2 - e_psi**2
    # Zero up to rounding (a policy compared with itself): exactly zero, on every engine.
    if var <= 1e-12 * max(e_psi2, 1e-300):
        var = 0.0
    var *= n / (n - 1)
    return value, math.sqrt(var / n)


def _influence(name: str, m: Moments) -> tuple[float, np.ndarray]:
    """Value and the coefficients on z of the estimator's influence function (up to a constant)."""
    n, s = m.n, m.s1
    mean_w = s[_W] / n
    c = np.zeros(6)
    if name == "logged":
        c[_R] = 1.0
        return s[_R] / n, c
    if name == "dm":
        c[_DM] = 1.0
        return s[_DM] / n, c
    if name == "ipw":
        c[_WR] = 1.0
        return s[_WR] / n, c
    if name == "dr":
        c[_DM] = c[_U] = 1.0
        return (s[_DM] + s[_U]) / n, c
    if name == "switch-dr":
        c[_DM] = c[_S] = 1.0
        return (s[_DM] + s[_S]) / n, c
    if name == "snipw":
        v = s[_WR] / s[_W] if s[_W] > 0 else float("nan")
        c[_WR], c[_W] = 1.0 / mean_w, -v / mean_w
        return v, c
    if name == "sndr":
        ratio = s[_U] / s[_W] if s[_W] > 0 else float("nan")
        c[_DM], c[_U], c[_W] = 1.0, 1.0 / mean_w, -ratio / mean_w
        return s[_DM] / n + ratio, c
    raise ValueError(f"unknown estimator {name!r}; use {', '.join(ESTIMATORS)}")


def _from_means(name: str, nb: float, sb: np.ndarray) -> float:
    m = Moments(nb, sb, np.zeros((6, 6)))
    return _influence(name, m)[0]


def canonical_estimator(name: str) -> str:
    """``ips`` -> ``ipw`` and alike; unknown names are returned as given (the caller refuses)."""
    key = name.strip().lower()
    return ALIASES.get(key, key)


def interval(moments: Moments, name: str) -> tuple[float, list[float]]:
    """An estimator's (or ``logged``'s) value and its 95 % normal interval (NaN below 2 rows)."""
    value, coef = _influence(name, moments)
    _, se = _normal(moments, value, coef)
    return float(value), [float(value - Z95 * se), float(value + Z95 * se)]


def estimate(moments: Moments, estimators: Sequence[str] = ESTIMATORS) -> dict[str, Any]:
    """Each estimator's value, 95 % interval and ESS; the logged value; differences."""
    if moments.n == 0:
        return {"n": 0}
    logged, c_logged = _influence("logged", moments)
    ess = moments.s1[_W] ** 2 / moments.s2[_W, _W] if moments.s2[_W, _W] > 0 else 0.0
    out: dict[str, Any] = {"n": int(moments.n), "logged": float(logged), "ess": float(ess)}
    for name in estimators:
        value, ci = interval(moments, name)
        _, coef = _influence(name, moments)
        _, se_diff = _normal(moments, value - logged, coef - c_logged)
        entry: dict[str, Any] = {
            "value": value,
            "ci": ci,
            "ess": float(ess),
            "difference": float(value - logged),
            "difference_ci": [
                float(value - logged - Z95 * se_diff),
                float(value - logged + Z95 * se_diff),
            ],
        }
        if moments.boot is not None:
            reps = np.array([_from_means(name, b[0], b[1:]) for b in moments.boot])
            reps = reps[np.isfinite(reps)]
            if len(reps):
                entry["bootstrap_ci"] = [
                    float(np.quantile(reps, 0.025)),
                    float(np.quantile(reps, 0.975)),
                ]
        out[name] = entry
    return out


# -- bootstrap weights ------------------------------------------------------------------------------

_POISSON1_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(16)])


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """The 64-bit hash of each contact id that folds, bootstrap weights and lineage share."""
    return contact_hashes(ids)


def poisson_weights(ids: Sequence[str], replicates: int, seed: int = 0) -> np.ndarray:
    """(n, B) Poisson(1) weights from each id's hash: the same rows get the same weights anywhere."""
    h = id_hashes(ids)[:, None]
    b = np.arange(replicates, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = h ^ (b * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed))
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    u = (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return np.searchsorted(_POISSON1_CDF, u, side="right").astype(np.float64)


# -- the same estimators on fixed-action arrays (the Open Bandit Pipeline's layout) ---------------


def estimate_arrays(
    reward: np.ndarray,
    action: np.ndarray,
    pscore: np.ndarray,
    action_dist: np.ndarray,
    estimated_rewards: np.ndarray,
    estimators: Sequence[str] = ESTIMATORS,
    switch_tau: float = 10.0,
) -> dict[str, Any]:
    """Estimates from (n,) rewards/actions/pscores and (n, K) target and reward-model arrays."""
    n = len(reward)
    rows = np.arange(n)
    pi = action_dist.reshape(n, -1)
    q = estimated_rewards.reshape(n, -1)
    z = row_terms(
        reward, pscore, pi[rows, action], (pi * q).sum(axis=1), q[rows, action], switch_tau
    )
    return estimate(Moments.of(z), estimators)
