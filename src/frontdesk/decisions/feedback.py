"""Agents' choices from a joined log folder: each shown suggestion list and what was used.

``read_feedback(LOGS, workflow_ids)`` reads the ``suggestions-*.parquet`` files
``frontdesk logs join`` wrote (the folder's manifest checked, every file's
sha256 verified) and gives, per row, the shown list as logged (its order, how
likely that order was, the exploration settings, the accepted position) and,
where the agent's ``workflow_used`` is a workflow of the index and the text was
logged as is, a ``LabelledQuery`` of the same shape a labelled ``.jsonl`` line
gives (text, earlier turns, profile; ``id`` the decision id). Rows left out
are counted by reason, never dropped silently:

- ``no_workflow_used``: the outcome came back without a workflow;
- ``unknown_workflow``: the workflow is not in the index;
- ``no_text``: the text was logged hashed or dropped (``--log-text``).

Each usable row carries its conversation (``group``: the ``contact_id``, else
the decision id), so validation and folds keep a contact's decisions together
and ``examples(min_count)`` counts contacts, not decisions.

Every list stays in ``lists``, labelled or not: a list nobody accepted from is
what position-bias estimates divide by (``ranking.training.position_bias``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..artifacts import LOGS, MANIFEST, read_manifest, sha256_file
from ..errors import DataError, FrontdeskError, IndexIntegrityError
from ..index.builder import document_key
from ..logs import PROFILE_FIELDS
from ..schema import LabelledQuery
from .records import is_hashed_text
from .store import DESCRIPTION, read_verified

SUGGESTIONS_GLOB = "suggestions-*.parquet"
FEEDBACK_COLUMNS = (
    "decision_id", "contact_id", "text", "turns", *PROFILE_FIELDS, "workflow_ids", "ranked_ids",
    "shown_propensity", "explore_top_k", "explore_rate", "workflow_used", "accepted_rank",
)  # fmt: skip
SKIP_REASONS = ("no_workflow_used", "unknown_workflow", "no_text")


@dataclass(frozen=True)
class ShownList:
    """One logged suggestion list as shown, and the position its workflow was taken from."""

    shown: list[str]  # workflow ids in the order shown
    shown_propensity: float  # the probability of that order (1: shown as ranked)
    explore_top_k: int  # how many of the top were eligible for reordering
    explore_rate: float  # the share of lists that were reordered
    accepted_rank: int | None  # 1-based position of workflow_used in ``shown``
    ranked: list[str] | None = None  # workflow ids as the model ranked them (None: as shown)

    @property
    def shuffled_top(self) -> int:
        """How many of the top positions the server could reorder (0: none)."""
        top = min(self.explore_top_k, len(self.shown))
        return top if top >= 2 and self.explore_rate > 0 else 0

    @property
    def randomised(self) -> bool:
        """Whether this list's order was drawn at random with some probability."""
        return bool(self.shuffled_top) and self.shown_propensity < 1.0

    @property
    def reordered(self) -> bool:
        """Whether the top was actually shown in another order than the model ranked it (at
        a low explore rate most randomised lists are shown as ranked)."""
        n = self.shuffled_top
        return bool(n) and self.ranked is not None and self.shown[:n] != self.ranked[:n]


@dataclass(frozen=True)
class FeedbackRow:
    """A usable row: the labelled query and the list it came with."""

    query: LabelledQuery
    shown: ShownList
    group: str  # the conversation: ``contact_id``, else the decision id


@dataclass
class Feedback:
    """What a joined log folder holds for learning: usable rows, every list, the counts."""

    path: str
    manifest_sha256: str
    files: list[str]
    rows: list[FeedbackRow] = field(default_factory=list)
    lists: list[ShownList] = field(default_factory=list)  # every row's, usable or not
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0))

    @property
    def queries(self) -> list[LabelledQuery]:
        """The usable rows as labelled queries (``id`` = decision id)."""
        return [r.query for r in self.rows]

    def examples(self, min_count: int = 1) -> list[tuple[str, str]]:
        """(workflow id, text) of the usable rows, for ``update_index(examples=...)``: each
        text once per workflow, in first-seen order, kept if agents confirmed it in at least
        ``min_count`` distinct contacts (the same text up to case and spacing,
        ``document_key``; a contact asking twice counts once)."""
        contacts: dict[tuple[str, str], set[str]] = defaultdict(set)
        first: dict[tuple[str, str], str] = {}
        for r in self.rows:
            key = (str(r.query.label), document_key(r.query.text))
            contacts[key].add(r.group)
            first.setdefault(key, r.query.text)
        return [(k[0], first[k]) for k, c in contacts.items() if len(c) >= min_count]

    def example_decisions(self) -> dict[tuple[str, str], list[str]]:
        """Per (workflow id, ``document_key`` of a text), the decision ids of the usable rows
        that gave it (what an index that adds the text learned from)."""
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for r in self.rows:
            out[(str(r.query.label), document_key(r.query.text))].append(str(r.query.id))
        return dict(out)

    def summary(self) -> dict[str, Any]:
        """What the folder gave, for output and for the artifacts that learned from it."""
        return {
            "path": self.path,
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "rows": len(self.lists),
            "used": len(self.rows),
            "skipped": dict(self.skipped),
        }


def refuse_decision_log(root: Path) -> None:
    """Refuse a raw decision log (``serve --decision-log DIR``) where a joined log folder
    is expected, saying how to join it."""
    if (root / DESCRIPTION).is_file() and not (root / MANIFEST).is_file():
        raise FrontdeskError(
            f"{root} is a decision log (serve --decision-log); join it first: "
            f"frontdesk logs join {root} --out LOGS"
        )


def manifest_error(root: Path, exc: IndexIntegrityError) -> DataError:
    """A log folder's manifest problem as a DataError naming the manifest once (the
    message of ``read_manifest`` often starts with that path already)."""
    path, reason = str(root / MANIFEST), str(exc)
    return DataError(path, None, None, reason.removeprefix(f"{path}: "))


def read_feedback(path: str | Path, workflow_ids: Iterable[str]) -> Feedback:
    """The suggestion rows of the joined log folder ``path`` (see the module docstring).

    Raises ``DataError`` naming the file, the row and the field: a folder that
    is not a verified log folder, one without suggestion files, a missing
    column, or a value that cannot be what ``logs join`` wrote.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(str(root), None, None, "folder not found (a `frontdesk logs join` --out)")
    refuse_decision_log(root)
    try:
        read_manifest(root, verify=True, kind=LOGS)
    except IndexIntegrityError as exc:
        raise manifest_error(root, exc) from None
    files = sorted(root.glob(SUGGESTIONS_GLOB), key=lambda f: (len(f.name), f.name))
    if not files:
        raise DataError(
            str(root), None, None,
            f"no {SUGGESTIONS_GLOB} files: no suggestion list with an outcome was joined",
        )  # fmt: skip
    known = set(workflow_ids)
    fb = Feedback(str(root), sha256_file(root / MANIFEST), [f.name for f in files])
    for f in files:
        table = read_verified(f)
        missing = [c for c in FEEDBACK_COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(
                str(f), None, missing[0], "missing column (not written by `frontdesk logs join`?)"
            )
        cols = {c: table.column(c).to_pylist() for c in FEEDBACK_COLUMNS}
        for i in range(table.num_rows):
            rec = {c: cols[c][i] for c in FEEDBACK_COLUMNS}
            shown = _shown_list(rec, str(f), i + 1)
            fb.lists.append(shown)
            used = rec["workflow_used"]
            if used is None:
                fb.skipped["no_workflow_used"] += 1
            elif used not in known:
                fb.skipped["unknown_workflow"] += 1
            elif not _plain_text(rec["text"]):
                fb.skipped["no_text"] += 1
            else:
                group = rec["contact_id"] or rec["decision_id"]
                fb.rows.append(FeedbackRow(_query(rec, str(f), i + 1), shown, str(group)))
    return fb


def _plain_text(text: Any) -> bool:
    """Whether ``text`` was logged as the user wrote it: a non-blank string, not hashed
    (``records.is_hashed_text``) nor dropped."""
    return isinstance(text, str) and bool(text.strip()) and not is_hashed_text(text)


def _shown_list(rec: dict[str, Any], path: str, row: int) -> ShownList:
    """The row's list as shown, checked: ``DataError`` naming ``path``, ``row`` and the field
    for a value ``logs join`` cannot have written."""
    shown = rec["workflow_ids"]
    if shown is None or not all(isinstance(w, str) and w for w in shown):
        raise DataError(path, row, "workflow_ids", "must be a list of workflow ids")
    p = rec["shown_propensity"]
    if p is None or not isinstance(p, float | int) or not (0 < p <= 1):  # NaN fails the range
        raise DataError(path, row, "shown_propensity", f"{p!r} is not a probability in (0, 1]")
    rate = rec["explore_rate"] if rec["explore_rate"] is not None else 0.0
    if not (0 <= rate <= 1):
        raise DataError(path, row, "explore_rate", f"{rate!r} is not in [0, 1]")
    top_k = rec["explore_top_k"] if rec["explore_top_k"] is not None else 0
    if top_k < 0:
        raise DataError(path, row, "explore_top_k", f"{top_k!r} is negative")
    rank, used = rec["accepted_rank"], rec["workflow_used"]
    if rank is not None:
        rank = int(rank)
        if not (1 <= rank <= len(shown)) or shown[rank - 1] != used:
            raise DataError(
                path, row, "accepted_rank",
                f"{rank} is not the position of workflow_used {used!r} in workflow_ids",
            )  # fmt: skip
    elif used is not None and used in shown:
        rank = shown.index(used) + 1  # a folder that left it out: the position is known
    ranked = rec["ranked_ids"]
    if ranked is not None and not all(isinstance(w, str) and w for w in ranked):
        raise DataError(path, row, "ranked_ids", "must be a list of workflow ids")
    return ShownList(
        list(shown), float(p), int(top_k), float(rate), rank,
        list(ranked) if ranked is not None else None,
    )  # fmt: skip


def _number(v: Any) -> Any:
    """A profile value as a ``.jsonl`` line would hold it: a whole float (an integer column
    with nulls, through pandas) as an int, NaN as missing."""
    if isinstance(v, float):
        if math.isnan(v):
            return None
        if v.is_integer():
            return int(v)
    return v


def _query(rec: dict[str, Any], path: str, row: int) -> LabelledQuery:
    """The row as the labelled query a ``.jsonl`` line would give."""
    user = {k: _number(rec[k]) for k in PROFILE_FIELDS if _number(rec[k]) is not None}
    turns = [t for t in (rec["turns"] or []) if _plain_text((t or {}).get("text"))]
    obj = {
        "id": rec["decision_id"],
        "text": rec["text"],
        "context": {"turns": turns, "user": user},
        "label": rec["workflow_used"],
    }
    try:
        return LabelledQuery.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or None
        raise DataError(path, row, loc, str(err["msg"])) from None
