"""Judging a suggestion list off-policy: slate estimators over logged, explored lists.

A served list is ``workflow_ids`` (the order shown); the model's order is
``ranked_ids``. With list exploration (``explore_top_k`` N, ``explore_rate``
p) the top ``W = min(N, len(list))`` of the ranked list are shown in a
uniformly random order for a share p of requests, positions beyond W as
ranked (W < 2 or p = 0: no exploration, every list as ranked; null settings,
as in logs written without exploration, are no exploration too). So the
logging probabilities are known exactly, for any list X of the same length:

    item at a position  mu(X_j at j)   = p/W + (1-p) 1{X_j = R_j}       (j <= W, X_j in R_1..W)
                                       = 1{X_j = R_j}                   (j > W)
    prefix (cascade)    mu(X_1..j)     = p (W-a)!/W! + (1-p) 1{X_1..a = R_1..a},  a = min(j, W)
                                         (X_1..a distinct in R_1..W, X_i = R_i for W < i <= j)
    whole list          mu(X_1..D)     = the prefix at the list's depth D

and zero otherwise (a list the logs could not have shown). The reward at
position j is ``1{workflow_used = shown_j}``; ``acceptance@k`` is its sum
over positions 1..k (at most one position holds the workflow used).

Only lists the logged model showed are judged: a list it abstained on, or an
empty one, showed nothing, so its rows are left out and counted (like rows
without ``workflow_used``). The target is a deterministic list, its top
``k`` (another index, another ranker, on each logged context), so its
probabilities are 0/1 matches with the shown list. A target that abstains
(or has nothing to suggest) shows nothing: its acceptance there is exactly
0, a term of 0 that needs no support (its weight is 0, as it matches no
shown list). The three estimators of Open Bandit Pipeline's
``estimators_slate.py`` then are, per row, with D = min(k, len(list)):

    sips   1{T_1..D = S_1..D} / mu(S_1..D) * sum_j r_j        (no click model)
    iips   sum_j 1{T_j = S_j} / mu(S_j at j) * r_j           (r_j depends on S_j alone)
    rips   sum_j 1{T_1..j = S_1..j} / mu(S_1..j) * r_j       (cascade: r_j on S_1..j)

Each is a mean of per-row terms, fed to :mod:`~frontdesk.ope.estimators`'s
machinery as z = (w, term, 0, 0, 0, logged reward): its ``ipw`` is the
estimate, and its sums (which add up across batches, files and Spark
partitions in any order) give the value, the 95 % interval, the difference
from the logged acceptance with its interval and the ESS, as for
``simulate policy``. ``batch_sums`` is the per-batch function both engines
run (``engines/local.py``, ``engines/spark.py``); ``simulate_suggestions``
is the whole request.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import LOGS, MANIFEST, read_manifest, sha256_file
from ..decisions.feedback import manifest_error, refuse_decision_log
from ..decisions.records import is_hashed_text
from ..errors import DataError, FrontdeskError, IndexIntegrityError
from ..lineage import feedback_training_overlap, ranker_training_overlap
from ..logs import PROFILE_FIELDS
from .estimators import Moments, interval
from .estimators import estimate as estimate_moments
from .kernel import OVERALL, check_segment_columns, is_null, segment_keys
from .offpolicy import DEFAULT_MIN_ESS

TargetFn = Callable[[Any], Sequence[Sequence[str]]]  # a batch (pandas) -> the target's lists

SLATE_ESTIMATORS = ("sips", "iips", "rips")
ASSUMPTIONS = {
    "sips": "none beyond support",
    "iips": "the use of a position's workflow depends on that position alone",
    "rips": "cascade: the use of a position's workflow depends on the positions above",
}
READ_COLUMNS = (
    "decision_id", "contact_id", "day", "text", "turns", "workflow_ids", "ranked_ids",
    "shown_propensity", "explore_top_k", "explore_rate", "workflow_used",
)  # fmt: skip
OPTIONAL_COLUMNS = ("abstained",)  # read where present (older logs lack it)
PROPENSITY_RTOL = 1e-6
MAX_K = 20
# Per-row flags and values summed per segment (their means are the meta's shares).
FLAGS = (
    "explored", "explore_rate", "agrees", "outside_window", "below_window", "short",
    "beyond_logged", "target_abstained",
)  # fmt: skip
# Rows left out, counted in the SKIPPED sums: no workflow_used; the logged list empty; abstained.
LEFT_OUT = ("without_workflow_used", "empty", "abstained")
SKIPPED = "__skipped__"
N_MOMENTS = len(Moments.flat_names())


# -- a log folder's suggestion lists -----------------------------------------------------------


class SuggestionLogs:
    """The ``suggestions-*.parquet`` files of a log folder (``logs join``), checksums verified.

    Offers what :meth:`frontdesk.lineage.Lineage.overlap` reads of a log
    folder (``root``, ``meta``, ``organisation``, ``file_checksums``,
    ``batches``), so a ranker's lineage can be compared with these rows.
    """

    def __init__(self, root: Path, meta: dict[str, Any], files: list[Path]) -> None:
        self.root = root
        self.meta = meta
        self.files = files

    @classmethod
    def open(cls, path: str | Path) -> SuggestionLogs:
        """Open a log folder: its manifest verified, its ``suggestions-*.parquet`` listed."""
        root = Path(path)
        if not root.is_dir():
            raise DataError(str(root), None, None, "folder not found")
        refuse_decision_log(root)
        try:
            meta = read_manifest(root, verify=True, kind=LOGS)
        except IndexIntegrityError as exc:
            raise manifest_error(root, exc) from None
        files = sorted(root.glob("suggestions-*.parquet"), key=lambda f: (len(f.name), f.name))
        if not files:
            raise DataError(
                str(root), None, None,
                "no suggestions-*.parquet files (suggestion lists with outcomes; "
                "`frontdesk logs join` writes them from a decision log)",
            )  # fmt: skip
        listed = meta.get("files") or {}
        for f in files:
            if listed and f.name not in listed:
                raise DataError(str(f), None, None, "not listed in manifest.json")
        return cls(root, meta, files)

    @property
    def manifest_sha256(self) -> str:
        """The folder's fingerprint: the sha256 of its manifest (which lists every file's)."""
        return sha256_file(self.root / MANIFEST)

    @property
    def organisation(self) -> str | None:
        """The organisation the manifest names, if any."""
        org = self.meta.get("organisation")
        return str(org) if org else None

    def file_checksums(self) -> dict[str, str]:
        """Each suggestions file's sha256 (the manifest's, where it lists one)."""
        listed = self.meta.get("files") or {}
        return {f.name: listed.get(f.name) or sha256_file(f) for f in self.files}

    def columns(self) -> set[str]:
        """The columns every file has."""
        import pyarrow.parquet as pq

        return set.intersection(*(set(pq.read_schema(f).names) for f in self.files))

    def check_columns(self, required: Sequence[str]) -> None:
        """Refuse (``file: column: missing column``) a file without one of ``required``."""
        import pyarrow.parquet as pq

        for f in self.files:
            names = set(pq.read_schema(f).names)
            for col in required:
                if col not in names:
                    raise DataError(str(f), None, col, "missing column")

    def batches(
        self, columns: Sequence[str] | None = None, batch_size: int = 8192
    ) -> Iterator[tuple[Path, Any]]:
        """(file, Arrow record batch) over every file, in order."""
        import pyarrow.parquet as pq

        for f in self.files:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns):
                yield f, batch


# -- logging and target probabilities ------------------------------------------------------------


def explore_window(explore_top_k: int, explore_rate: float, length: int) -> int:
    """W: how many of the top positions were drawn in random order (0: none were)."""
    w = min(int(explore_top_k or 0), length)
    return w if w >= 2 and explore_rate > 0 else 0


def prefix_probability(
    items: Sequence[str | None], ranked: Sequence[str], window: int, rate: float, depth: int
) -> float:
    """The logging probability of showing ``items[:depth]`` in positions 1..depth."""
    if depth == 0:
        return 1.0
    head = list(items[:depth])
    if any(x is None for x in head):
        return 0.0
    if window == 0:
        return 1.0 if head == list(ranked[:depth]) else 0.0
    a = min(depth, window)
    top = set(ranked[:window])
    if len(set(head[:a])) != a or not set(head[:a]) <= top:
        return 0.0
    if head[window:] != list(ranked[window:depth]):
        return 0.0
    falling = math.prod(range(window - a + 1, window + 1))  # W! / (W - a)!
    return rate / falling + (1.0 - rate) * (head[:a] == list(ranked[:a]))


def position_probability(
    item: str | None, position: int, ranked: Sequence[str], window: int, rate: float
) -> float:
    """The logging probability of ``item`` at ``position`` (0-based)."""
    if item is None:
        return 0.0
    if window == 0 or position >= window:
        return 1.0 if position < len(ranked) and ranked[position] == item else 0.0
    if item not in ranked[:window]:
        return 0.0
    return rate / window + (1.0 - rate) * (ranked[position] == item)


def _items(x: Any) -> list[str] | None:
    """A list cell as strings (None where null)."""
    if x is None or isinstance(x, float):  # null lists arrive as None (or NaN)
        return None
    return [str(v) for v in x]


@dataclass
class SlateArrays:
    """Per row and position (n, k): rewards and both policies' three kinds of pscores.

    ``depth[i]`` positions of row i count (min(k, its list's length); 0 for a
    list the logged model did not show: empty, or abstained on); beyond them
    every array holds 0 (rewards, target pscores) or 1 (logging pscores).
    ``pscore`` and ``target_pscore`` are the whole list's (per row, repeated).
    """

    depth: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    pscore_item_position: np.ndarray
    pscore_cascade: np.ndarray
    target_pscore: np.ndarray
    target_pscore_item_position: np.ndarray
    target_pscore_cascade: np.ndarray
    target_support_item_position: np.ndarray  # the logs could show the target's item there
    target_support_cascade: np.ndarray  # the logs could show the target's prefix
    window: np.ndarray
    rate: np.ndarray  # explore_rate (0 where null)
    logged_abstained: np.ndarray  # the logged model abstained: nothing was shown
    target_length: np.ndarray  # how many the target shows in its top k (0: it abstains)
    agrees: np.ndarray  # the target's top D is the logged ranker's
    outside_window: np.ndarray  # a target item at j <= W is not among the ranked top W
    below_window: np.ndarray  # explored, and a target item at W < j <= D differs from the ranked
    short: np.ndarray  # the target suggests some, but fewer than D, workflows
    beyond_logged: np.ndarray  # the target shows a workflow past the logged list's end (< k)

    def take(self, rows: np.ndarray) -> SlateArrays:
        """The same arrays for some rows (a boolean mask or indices)."""
        return SlateArrays(*(getattr(self, f.name)[rows] for f in dataclasses.fields(self)))


def slate_arrays(
    shown: Sequence[Sequence[str] | None],
    ranked: Sequence[Sequence[str] | None],
    explore_top_k: Sequence[Any],
    explore_rate: Sequence[Any],
    target: Sequence[Sequence[str] | None],
    used: Sequence[str | None],
    k: int,
    shown_propensity: Sequence[Any] | None = None,
    where: str = "suggestion lists",
    first_row: int | None = 1,
    ids: Sequence[Any] | None = None,
    abstained: Sequence[Any] | None = None,
) -> SlateArrays:
    """Rewards and pscores of both policies from the logged lists (checked) and the target's.

    Null exploration settings (None or NaN) mean no exploration; a null
    ``shown_propensity`` is not checked (the settings give it: 1 without
    exploration). A target list that is empty is a target that abstains.
    Raises DataError (``where:row: field``) on a list the logged settings
    could not have shown, or a ``shown_propensity`` they do not give.
    """
    n = len(shown)
    depth = np.zeros(n, dtype=np.int64)
    reward = np.zeros((n, k))
    mu_ip, mu_c, mu_j = np.ones((n, k)), np.ones((n, k)), np.ones((n, k))
    pi_ip, pi_c, pi_j = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k))
    sup_ip, sup_c = np.ones((n, k), dtype=bool), np.ones((n, k), dtype=bool)
    window, t_length = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    rates = np.zeros(n)
    flags = {f: np.zeros(n, dtype=bool) for f in ("logged_abstained", "agrees", "outside_window",
                                                   "below_window", "short", "beyond_logged")}  # fmt: skip

    def bad(i: int, field: str, reason: str) -> DataError:
        who = f" (decision {ids[i]})" if ids is not None else ""
        return DataError(
            where, first_row + i if first_row is not None else None, field, reason + who
        )

    for i in range(n):
        s = _items(shown[i]) or []
        length = len(s)
        if len(set(s)) != length:
            raise bad(i, "workflow_ids", "a workflow appears twice in the shown list")
        try:
            rate = 0.0 if is_null(explore_rate[i]) else float(explore_rate[i])
        except (TypeError, ValueError):
            raise bad(i, "explore_rate", f"{explore_rate[i]!r} is not a number") from None
        if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
            raise bad(i, "explore_rate", f"{rate!r} is not in [0, 1]")
        top = explore_top_k[i]
        if not is_null(top) and (isinstance(top, str) or float(top) != int(float(top))):
            raise bad(i, "explore_top_k", f"{top!r} is not a whole number")
        top_k = 0 if is_null(top) else int(float(top))
        if top_k < 0:
            raise bad(i, "explore_top_k", f"{top_k!r} is negative")
        w = explore_window(top_k, rate, length)
        r = _items(ranked[i])
        if r is None or (len(r) == 0 and length):
            if w:
                raise bad(i, "ranked_ids", "missing on an explored list (the model's order)")
            r = s
        if len(r) != length or sorted(r[:w]) != sorted(s[:w]) or r[w:] != s[w:]:
            raise bad(
                i, "workflow_ids",
                f"not ranked_ids with at most its top {w} reordered (explore_top_k {top_k}, "
                f"explore_rate {rate})",
            )  # fmt: skip
        if shown_propensity is not None and not is_null(shown_propensity[i]):
            p_list = prefix_probability(s, r, w, rate, length)
            logged = float(shown_propensity[i])
            if not abs(logged - p_list) <= 1e-12 + PROPENSITY_RTOL * p_list:
                raise bad(
                    i, "shown_propensity",
                    f"{logged!r}, but its list and exploration settings give {p_list!r}",
                )  # fmt: skip
        window[i], rates[i] = w, rate
        if abstained is not None and not is_null(abstained[i]) and bool(abstained[i]):
            flags["logged_abstained"][i] = True
            continue  # nothing was shown: the row is left out (depth 0)
        d = min(k, length)
        depth[i] = d
        whole = _items(target[i]) or []
        t_length[i] = min(len(whole), k)
        t: list[str | None] = list(whole[:d])
        flags["short"][i] = 0 < len(t) < d
        flags["beyond_logged"][i] = t_length[i] > length
        t += [None] * (d - len(t))
        u = used[i]
        flags["agrees"][i] = t == r[:d]
        flags["outside_window"][i] = any(x is not None and x not in r[:w] for x in t[: min(d, w)])
        flags["below_window"][i] = w > 0 and any(
            x is not None and x != r[j] for j, x in enumerate(t) if j >= w
        )
        match_prefix = True
        for j in range(d):
            reward[i, j] = float(u is not None and s[j] == u)
            mu_ip[i, j] = position_probability(s[j], j, r, w, rate)
            mu_c[i, j] = prefix_probability(s, r, w, rate, j + 1)
            hit = t[j] == s[j]
            match_prefix = match_prefix and hit
            pi_ip[i, j] = float(hit)
            pi_c[i, j] = float(match_prefix)
            sup_ip[i, j] = t[j] is None or position_probability(t[j], j, r, w, rate) > 0
            # where the target shows nothing its reward is known (0): support ends at its length
            sup_c[i, j] = prefix_probability(t, r, w, rate, min(j + 1, t_length[i])) > 0
        if d:
            mu_j[i, :d] = mu_c[i, d - 1]
            pi_j[i, :d] = pi_c[i, d - 1]
    return SlateArrays(
        depth, reward, mu_j, mu_ip, mu_c, pi_j, pi_ip, pi_c, sup_ip, sup_c, window, rates,
        flags["logged_abstained"], t_length, flags["agrees"], flags["outside_window"],
        flags["below_window"], flags["short"], flags["beyond_logged"],
    )  # fmt: skip


# -- per-row terms and their sums ---------------------------------------------------------------


def metric_names(k: int) -> list[str]:
    """``acceptance@1`` and, for k > 1, ``acceptance@k``."""
    return ["acceptance@1"] + ([f"acceptance@{k}"] if k > 1 else [])


def _pairs(estimators: Sequence[str], k: int) -> list[tuple[str, str]]:
    return [(e, m) for m in metric_names(k) for e in estimators]


def sum_names(estimators: Sequence[str], k: int) -> tuple[list[str], list[str]]:
    """Names of the added sums and of the maxima of a set of rows.

    Sums: n, the FLAGS, then per (estimator, metric) the Moments sums of its
    z = (w, term, 0, 0, 0, logged reward), the count of rows with a nonzero
    weight and of unsupported rows. Maxima: the explore rate's largest and
    (negated) smallest among explored rows, then each pair's largest weight.
    """
    sums = ["n", *FLAGS]
    for e, m in _pairs(estimators, k):
        sums += [f"{c}|{e}|{m}" for c in (*Moments.flat_names(), "nz", "unsup")]
    maxima = ["rate_max", "rate_neg_min", *(f"max|{e}|{m}" for e, m in _pairs(estimators, k))]
    return sums, maxima


def row_terms(a: SlateArrays, estimators: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the values whose column sums and maxima are a row set's (see :func:`sum_names`)."""
    n = len(a.depth)
    pos = np.arange(k)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        w_ip = np.where(a.target_pscore_item_position > 0, a.target_pscore_item_position
                        / a.pscore_item_position, 0.0)  # fmt: skip
        w_c = np.where(a.target_pscore_cascade > 0, a.target_pscore_cascade / a.pscore_cascade, 0.0)
        w_j = np.where(a.target_pscore[:, 0] > 0, a.target_pscore[:, 0] / a.pscore[:, 0], 0.0)
    explored = a.window > 0
    nothing = a.target_length == 0
    cols: list[np.ndarray] = [
        np.ones(n), explored, np.where(explored, a.rate, 0.0), a.agrees, a.outside_window,
        a.below_window, a.short, a.beyond_logged, nothing,
    ]  # fmt: skip
    maxima: list[np.ndarray] = [np.where(explored, a.rate, 0.0), np.where(explored, -a.rate, -1.0)]
    last = np.maximum(a.depth - 1, 0)
    for m_k in [1, k] if k > 1 else [1]:
        counted = pos < np.minimum(a.depth, m_k)[:, None]
        n_counted = counted.sum(axis=1)
        r = np.where(counted, a.reward, 0.0).sum(axis=1)
        past_end = np.minimum(a.target_length, m_k) > a.depth  # never shown there: unknown
        for e in estimators:
            if e == "sips":
                v, w = w_j * r, w_j
                unsup = ~a.target_support_cascade[np.arange(n), last] | a.short
            else:
                pw = w_ip if e == "iips" else w_c
                sup = a.target_support_item_position if e == "iips" else a.target_support_cascade
                v = (np.where(counted, a.reward, 0.0) * pw).sum(axis=1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    w = np.where(n_counted > 0, (pw * counted).sum(axis=1) / n_counted, 0.0)
                unsup = (counted & ~sup).any(axis=1)
            unsup = (unsup | past_end) & ~nothing  # showing nothing: known, no support needed
            z = np.column_stack([w, v, np.zeros((n, 3)), r])
            cols += [*Moments.flat_rows(z).T, w > 0, unsup]
            maxima.append(w)
    width = len(sum_names(estimators, k)[0])
    flat = np.column_stack(cols).astype(float) if n else np.zeros((0, width))
    return flat, (np.column_stack(maxima) if n else np.zeros((0, len(maxima))))


def add_up(terms: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The sums and maxima of the rows of :func:`row_terms` (maxima 0 for no rows)."""
    flat, largest = terms
    maxima = largest.max(axis=0) if len(largest) else np.zeros(largest.shape[1])
    return flat.sum(axis=0), maxima


def estimate(
    sums: np.ndarray, maxima: np.ndarray, estimators: Sequence[str], k: int
) -> dict[str, Any]:
    """Per metric: n, the logged acceptance, and each estimator's value, interval, ESS, …

    Also ``_shares``: each FLAG's share of the rows (``explore_rate``: the mean
    rate of the explored rows) and the explored rows' smallest and largest rate.
    """
    names, max_names = sum_names(estimators, k)
    at = {c: i for i, c in enumerate(names)}
    mx = dict(zip(max_names, (float(v) for v in maxima), strict=True))
    n = float(sums[0])
    if n == 0:
        return {m: {"n": 0} for m in metric_names(k)}
    shares = {f: float(sums[at[f]]) / n for f in FLAGS}
    explored = float(sums[at["explored"]])
    shares["explore_rate"] = float(sums[at["explore_rate"]]) / explored if explored else 0.0
    shares["explore_rate_range"] = [-mx["rate_neg_min"], mx["rate_max"]] if explored else [0, 0]
    out: dict[str, Any] = {}
    for m in metric_names(k):
        entry: dict[str, Any] = {"n": int(n)}
        for e in estimators:
            block = at[f"n|{e}|{m}"]
            mom = Moments.from_flat(sums[block : block + N_MOMENTS])
            if "logged" not in entry:
                entry["logged"], entry["logged_ci"] = interval(mom, "logged")
                entry["explored_share"] = shares["explored"]
                entry["target_agrees_share"] = shares["agrees"]
            est = estimate_moments(mom, ("ipw",))["ipw"]
            total_w, largest = float(mom.s1[0]), mx[f"max|{e}|{m}"]
            entry[e] = {
                **{key: est[key] for key in ("value", "ci", "difference", "difference_ci")},
                "ess": est["ess"],
                "nonzero_share": float(sums[at[f"nz|{e}|{m}"]]) / n,
                "unsupported_share": float(sums[at[f"unsup|{e}|{m}"]]) / n,
                "max_weight": largest,
                "max_weight_share": largest / total_w if total_w > 0 else 0.0,
            }
        out[m] = entry
    out["_shares"] = shares
    return out


# -- the per-batch function both engines run -----------------------------------------------------


@lru_cache(maxsize=4)
def target_suggester(index: str, ranker: str | None, mode: str) -> Any:
    """The target's Suggester, loaded once per process (Spark workers included)."""
    from ..suggester import Suggester

    return Suggester.load(index, ranker=ranker, mode=mode)  # type: ignore[arg-type]


def contexts(df: Any, where: str = "suggestion lists", first_row: int | None = 1) -> list[Any]:
    """The logged conversations (text, turns, profile) of a batch, as the target sees them."""
    from pydantic import ValidationError

    from ..schema import Conversation

    present = [f for f in PROFILE_FIELDS if f in df.columns]
    cols = {f: df[f].tolist() for f in present}
    out = []
    for i, (text, turns) in enumerate(zip(df["text"].tolist(), df["turns"].tolist(), strict=True)):
        row = first_row + i if first_row is not None else None
        if text is None or is_hashed_text(text):
            raise DataError(
                where, row, "text",
                f"{'hashed' if text else 'dropped'} (served with --log-text "
                f"{'hash' if text else 'drop'}), so the target cannot be run on this contact "
                f"(decision {df['decision_id'].iat[i]}); serve with --log-text keep to judge lists",
            )  # fmt: skip
        profile = {f: cols[f][i] for f in present if not is_null(cols[f][i])}
        turn_list = [
            {"role": t["role"], "text": t["text"]} for t in (turns if turns is not None else [])
        ]
        try:
            out.append(
                Conversation.model_validate(
                    {"text": text, "context": {"turns": turn_list, "user": profile}}
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise DataError(where, row, loc, first["msg"]) from None
    return out


def suggester_lists(
    df: Any, plan: dict[str, Any], where: str = "suggestion lists", first_row: int | None = 1
) -> list[list[str]]:
    """The target's top k per row of a batch: the plan's index (and ranker) on each context
    ([] where it abstains: it shows nothing)."""
    t = plan["target"]
    suggester = target_suggester(t["index"], t.get("ranker"), t.get("mode", "hybrid"))
    convs = contexts(df, where, first_row)
    lists = []
    for start in range(0, len(convs), 256):
        for s in suggester.suggest_many(convs[start : start + 256], k=plan["k"]):
            lists.append([] if s.abstained else [x.workflow_id for x in s])
    return lists


def batch_sums(
    df: Any,
    plan: dict[str, Any],
    where: str = "suggestion lists",
    first_row: int | None = 1,
    target: TargetFn | None = None,
) -> Any:
    """Sums and maxima per segment for one batch (pandas): the engines' shared function.

    ``target(df)`` gives the target's lists; by default the plan's index and
    ranker are run on the batch's contexts. Rows without ``workflow_used``,
    and lists the logged model did not show (empty, or abstained on), are
    left out: their counts are the SKIPPED row's first sums (LEFT_OUT).
    """
    import pandas as pd

    if "_file" in df.columns:  # Spark: name the file a bad row is in (its row is unknown)
        files = df["_file"].dropna()
        where = str(files.iat[0]).removeprefix("file://") if len(files) else "spark partition"
        first_row = None
    has_used = df["workflow_used"].notna().to_numpy()
    kept = df[has_used].reset_index(drop=True)
    offsets = np.flatnonzero(has_used)
    estimators, k = plan["estimators"], plan["k"]
    sum_cols, max_cols = sum_names(estimators, k)
    left_out = np.zeros(len(sum_cols))
    left_out[0] = int((~has_used).sum())
    rows: list[tuple[str, np.ndarray, np.ndarray]] = []
    if len(kept):
        try:
            lists = (
                target(kept)
                if target is not None
                else suggester_lists(kept, plan, where, first_row)
            )
            arrays = slate_arrays(
                kept["workflow_ids"].tolist(), kept["ranked_ids"].tolist(),
                kept["explore_top_k"].tolist(), kept["explore_rate"].tolist(), lists,
                kept["workflow_used"].tolist(), k, kept["shown_propensity"].tolist(),
                where, first_row, kept["decision_id"].tolist(),
                kept["abstained"].tolist() if "abstained" in kept.columns else None,
            )  # fmt: skip
        except DataError as exc:  # the row number in the file, not among the kept rows
            if exc.line is not None and first_row is not None:
                line = first_row + int(offsets[exc.line - first_row])
                raise DataError(exc.path, line, exc.field, exc.reason) from None
            raise
        shown = arrays.depth > 0
        left_out[1] = int((~shown & ~arrays.logged_abstained).sum())
        left_out[2] = int(arrays.logged_abstained.sum())
        flat, largest = row_terms(arrays.take(shown), estimators, k)
        groups: dict[str, list[int]] = {}
        for i, ks in enumerate(segment_keys(kept[shown], plan["segments"])):
            for key in ks:
                groups.setdefault(key, []).append(i)
        for seg, idx in groups.items():
            rows.append((seg, *add_up((flat[idx], largest[idx]))))
    if left_out.any():
        rows.append((SKIPPED, left_out, np.zeros(len(max_cols))))
    frame = pd.DataFrame(
        np.array([r[1] for r in rows]).reshape(len(rows), len(sum_cols)),
        columns=[f"s{i}" for i in range(len(sum_cols))],
    )
    for j in range(len(max_cols)):
        frame[f"m{j}"] = np.array([r[2][j] for r in rows], dtype=float)
    frame.insert(0, "seg", [r[0] for r in rows])
    return frame


# -- the request ---------------------------------------------------------------------------------


def prepare(
    logs: SuggestionLogs,
    index: str | Path | None,
    ranker: str | Path | None = None,
    *,
    k: int = 3,
    estimators: Sequence[str] = SLATE_ESTIMATORS,
    segments: Sequence[str] = ("segment",),
    mode: str = "hybrid",
) -> dict[str, Any]:
    """Check the request against the logs and return the engines' plan (JSON-able)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    estimators = list(dict.fromkeys(e.strip().lower() for e in estimators if e.strip()))
    if not estimators:
        raise FrontdeskError(f"no estimator asked for; use some of {', '.join(SLATE_ESTIMATORS)}")
    for e in estimators:
        if e not in SLATE_ESTIMATORS:
            raise FrontdeskError(f"unknown estimator {e!r}; use {', '.join(SLATE_ESTIMATORS)}")
    if not 1 <= k <= MAX_K:
        raise FrontdeskError(f"--k {k}: must be from 1 to {MAX_K}")
    present = logs.columns()
    logs.check_columns(READ_COLUMNS)
    hint = ", ".join(f for f in PROFILE_FIELDS if f in present) or "model_version, role"
    check_segment_columns(logs.files, segments, f"{logs.root}'s suggestion lists", hint)
    longest = 0
    for f in logs.files:
        lengths = pq.read_table(f, columns=["workflow_ids"]).column("workflow_ids")
        longest = max(longest, int(pc.max(pc.list_value_length(lengths)).as_py() or 0))
    if k > longest:
        raise FrontdeskError(
            f"--k {k}: the logged lists show at most {longest} workflows; k must not exceed that"
        )
    optional = [c for c in (*PROFILE_FIELDS, *OPTIONAL_COLUMNS) if c in present]
    return {
        "target": {
            "index": str(Path(index).resolve()) if index is not None else None,
            "ranker": str(Path(ranker).resolve()) if ranker is not None else None,
            "mode": mode,
        },
        "k": k,
        "estimators": estimators,
        "segments": list(segments),
        "columns": sorted({*READ_COLUMNS, *optional, *segments}),
        "longest_list": longest,
    }


def finalise(
    sums: dict[str, tuple[np.ndarray, np.ndarray]], plan: dict[str, Any], min_ess: float
) -> dict[str, Any]:
    """The result: per metric, overall and per segment; the meta with the warnings."""
    estimators, k = plan["estimators"], plan["k"]
    counts = sums[SKIPPED][0][: len(LEFT_OUT)] if SKIPPED in sums else np.zeros(len(LEFT_OUT))
    left = dict(zip(LEFT_OUT, (int(c) for c in counts), strict=True))
    per_seg = {seg: estimate(s, m, estimators, k) for seg, (s, m) in sums.items() if seg != SKIPPED}
    if OVERALL not in per_seg:
        raise FrontdeskError(
            "no suggestion list in these logs can be judged: "
            f"{left['without_workflow_used']} without a workflow_used, {left['empty']} empty, "
            f"{left['abstained']} abstained on by the logged model"
        )
    shares = {seg: est.pop("_shares") for seg, est in per_seg.items()}
    result: dict[str, Any] = {}
    low: set[str] = set()
    for m in metric_names(k):
        segs = {seg: est[m] for seg, est in sorted(per_seg.items()) if seg != OVERALL}
        for seg, e in [(OVERALL, per_seg[OVERALL][m]), *segs.items()]:
            e["low_ess"] = any(e[x]["ess"] < min_ess for x in estimators)
            if e["low_ess"] and seg != OVERALL:
                low.add(seg)
        result[m] = {"overall": per_seg[OVERALL][m], "segments": segs}
    overall = shares[OVERALL]
    n = per_seg[OVERALL][metric_names(k)[0]]["n"]
    with_used = n + left["empty"] + left["abstained"]
    result["meta"] = {
        "index": plan["target"]["index"],
        "ranker": plan["target"]["ranker"],
        "k": k,
        "metrics": metric_names(k),
        "estimators": estimators,
        "assumptions": {e: ASSUMPTIONS[e] for e in estimators},
        "segments_by": plan["segments"],
        "rows": n,
        "skipped_without_workflow_used": left["without_workflow_used"],
        "left_out_empty": left["empty"],
        "left_out_abstained": left["abstained"],
        "logged_abstained_share": left["abstained"] / with_used,
        "empty_share": left["empty"] / with_used,
        "target_abstained_share": overall["target_abstained"],
        "explored_share": overall["explored"],
        "explore_rate": overall["explore_rate"],
        "explore_rate_range": overall["explore_rate_range"],
        "target_agrees_share": overall["agrees"],
        "outside_window_share": overall["outside_window"],
        "below_window_share": overall["below_window"],
        "short_target_share": overall["short"],
        "beyond_logged_share": overall["beyond_logged"],
        "min_ess": min_ess,
        "low_ess_segments": sorted(low),
    }
    result["meta"]["warnings"] = diagnose(result, overall, left, plan, min_ess)
    return result


def _share(count: int, of: int) -> str:
    return f"{count:,} of {of:,} ({count / of:.1%})" if of else f"{count:,}"


def diagnose(
    result: dict[str, Any],
    shares: dict[str, Any],
    left: dict[str, int],
    plan: dict[str, Any],
    min_ess: float,
) -> list[str]:
    """What the logs cannot support, said plainly (the estimates are beside them)."""
    out: list[str] = []
    k, estimators = plan["k"], plan["estimators"]
    n = result["meta"]["rows"]
    if shares["explored"] == 0:
        out.append(
            "no randomisation in these logs (explore_rate 0, or explore_top_k off or null, on "
            "every list): each weight is 1{the target's list = the logged list}, so the "
            f"estimates speak only for the {shares['agrees']:.1%} of lists where the target "
            "ranks as the logged model did and count every other list as not accepted; serve "
            "with --explore-top-k N --explore-rate p to judge another ranker"
        )
    elif shares["explored"] < 1:
        out.append(
            f"exploration was off for {1 - shares['explored']:.1%} of the lists (their weight "
            "is an indicator match with the logged list)"
        )
    if shares["outside_window"] > 0:
        out.append(
            f"zero support in {shares['outside_window']:.1%} of lists: the target puts at a "
            "position within the explored top N a workflow the logged model did not rank in its "
            "top N, which these logs never show there; those lists count as not accepted, so "
            "estimates that need those positions are biased low by up to that share"
        )
    if shares["below_window"] > 0:
        out.append(
            f"zero support in {shares['below_window']:.1%} of lists: below the explored top N "
            f"(within the top {k}) the target's workflow differs from the logged one, and "
            "positions below N were never reordered; those lists count as not accepted there "
            "(judge a smaller --k, or explore more positions)"
        )
    if shares["beyond_logged"] > 0:
        out.append(
            f"zero support in {shares['beyond_logged']:.1%} of lists: the logged list is shorter "
            f"than {k} and the target shows a workflow past its end, where nothing was ever "
            "shown; those positions count as not accepted (biased low by up to that share)"
        )
    if shares["short"] > 0 and "sips" in estimators:
        out.append(
            f"the target suggests fewer workflows than the logged list shows (up to {k}) for "
            f"{shares['short']:.1%} of lists: no logged list is that short, so SIPS gives them "
            "no weight (biased low there); IIPS and RIPS count nothing where the target shows "
            "nothing"
        )
    if shares["target_abstained"] > 0:
        out.append(
            f"the target abstains (shows nothing) on {shares['target_abstained']:.1%} of the "
            "judged lists: its acceptance there is exactly 0 (nothing shown, nothing taken)"
        )
    with_used = n + left["empty"] + left["abstained"]
    if left["abstained"]:
        out.append(
            f"{_share(left['abstained'], with_used)} lists were abstained on by the logged "
            "model (nothing shown) and left out: the estimates speak for contacts it showed a "
            "list to; what the target would do where it abstained these logs cannot say"
        )
    if left["empty"]:
        out.append(
            f"{_share(left['empty'], with_used)} logged lists were empty (nothing shown) and "
            "left out"
        )
    void = [f"{m} {x}" for m in metric_names(k) for x in estimators
            if result[m]["overall"][x]["nonzero_share"] == 0]  # fmt: skip
    if void:
        out.append(
            "no logged list carries weight for " + ", ".join(void) + " (the target never "
            "shows what was shown): those 0s are no evidence"
        )  # fmt: skip
    low: dict[str, list[str]] = {}
    for m in metric_names(k):
        for seg, e in [("overall", result[m]["overall"]), *result[m]["segments"].items()]:
            for x in estimators:
                if e[x]["ess"] < min_ess and x not in low.setdefault(seg, []):
                    low[seg].append(x)
    low = {seg: xs for seg, xs in low.items() if xs}
    if low:
        out.append(
            f"low effective sample size (< {min_ess:g}), do not trust: "
            + ", ".join(f"{seg} ({', '.join(xs)})" for seg, xs in low.items())
        )
    if left["without_workflow_used"]:
        total = with_used + left["without_workflow_used"]
        out.append(
            f"{_share(left['without_workflow_used'], total)} lists have no workflow_used in "
            "their outcome and were left out (acceptance is measured on lists whose outcome "
            "names the workflow used)"
        )
    return out


def simulate_suggestions(
    logs_dir: str | Path,
    index: str | Path | None,
    ranker: str | Path | None = None,
    *,
    k: int = 3,
    estimators: Sequence[str] = SLATE_ESTIMATORS,
    segments: Sequence[str] = ("segment",),
    engine: str = "local",
    spark_master: str = "local[*]",
    mode: str = "hybrid",
    min_ess: float = DEFAULT_MIN_ESS,
    batch_size: int = 4096,
    progress: Callable[[int], None] | None = None,
    allow_training_overlap: bool = False,
    target: TargetFn | None = None,
    spark: Any = None,
) -> dict[str, Any]:
    """Estimate the acceptance (@1, @k) another index/ranker would have had on logged lists.

    ``target`` (local engine only) replaces the index and ranker with a
    function giving each batch's target lists (tests and benchmarks).
    """
    logs = SuggestionLogs.open(logs_dir)
    overlap: list[str] = []
    if ranker is not None:
        overlap = ranker_training_overlap(ranker, logs, allow_training_overlap)
    if index is not None:  # an index fed by `index add --from-feedback` learned from rows too
        overlap += feedback_training_overlap([("index", index)], logs, allow_training_overlap)
    if index is None and target is None:
        raise FrontdeskError("give the target's index (--index)")
    if index is not None and target is None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        target_suggester(str(Path(index).resolve()), str(Path(ranker).resolve()) if ranker
                         else None, mode)  # fails early on a bad index or ranker  # fmt: skip
    plan = prepare(logs, index, ranker, k=k, estimators=estimators, segments=segments, mode=mode)
    sum_cols, max_cols = sum_names(plan["estimators"], k)
    s_cols = [f"s{i}" for i in range(len(sum_cols))]
    m_cols = [f"m{i}" for i in range(len(max_cols))]
    if engine == "local":
        from .engines.local import run_sums

        def per_batch(df: Any, where: str, first_row: int | None) -> Any:
            return batch_sums(df, plan, where, first_row, target)

        batches = logs.batches(plan["columns"], batch_size)
        acc = run_sums(batches, per_batch, ["seg"], s_cols, m_cols, progress)
    elif engine == "spark":
        if target is not None:
            raise FrontdeskError("a target function runs on the local engine only")
        from .engines import spark as spark_engine

        session = spark or spark_engine.spark_session(spark_master)
        from pyspark.sql import functions as F

        df = session.read.parquet(*(str(f) for f in logs.files)).select(*plan["columns"])
        df = df.withColumn("_file", F.input_file_name())
        acc = spark_engine.run_sums(df, batch_sums, plan, [("seg", "string")], s_cols, m_cols)
    else:
        raise FrontdeskError(f"unknown engine {engine!r}; use local or spark")
    result = finalise({key[0]: v for key, v in acc.items()}, plan, min_ess)
    result["meta"]["engine"] = engine
    result["meta"]["logs"] = str(logs.root)
    result["meta"]["warnings"] = overlap + result["meta"]["warnings"]
    return result
