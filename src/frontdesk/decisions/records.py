"""What a decision log holds: one record per served decision, one per outcome reported.

A **decision** is written by ``frontdesk serve --decision-log DIR`` for every
answer of a suggester or router runtime (``/v1/suggest``, ``/v1/route``, V2
infer), shadow answers included (``role`` ``shadow``). An **outcome** comes
back later, from ``POST /v1/outcomes`` or ``frontdesk logs ingest``, keyed by
the ``decision_id`` the answer carried. Both are Parquet rows with the
schemas below (``docs/decision-log.md`` documents every column).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

DECISION_LOG_FORMAT_VERSION = 1
ID_RE = re.compile(r"^[0-9a-f]{32}$")
ROLES = ("default", "canary", "shadow", "explicit")
TEXT_POLICIES = ("keep", "hash", "drop")
OUTCOME_FIELDS: dict[str, str] = {
    "decision_id": "the id the answer carried (32 hex digits)",
    "resolved": "true or false",
    "csat": "an integer from 1 to 5",
    "handle_time": "minutes, a finite number >= 0",
    "cost": "a finite number >= 0",
    "workflow_used": "the workflow id the agent followed",
    "topic": "the contact's topic as the agent filed it",
}
MAX_ID_CHARS = 200
HASHED_TEXT_PREFIX = "sha256:"  # what ``private_text`` puts before a hashed text's digest
HASHED_TEXT_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


_ID_PREFIX = uuid.uuid4().hex[:16]  # random per process
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_decision_id() -> str:
    """A fresh decision id: 32 lower-case hex digits, unique across processes and restarts.

    A random 64-bit prefix per process and a counter: the cost of a uuid4 (a
    system call for 16 random bytes) on every request is measurable at load.
    """
    return _ID_PREFIX + "%016x" % (next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF)


def decision_schema():  # type: ignore[no-untyped-def]
    """The Arrow schema of ``decisions/*.parquet``."""
    import pyarrow as pa

    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    return pa.schema(
        [
            ("decision_id", s), ("time", pa.timestamp("us", tz="UTC")), ("endpoint", s),
            ("task", s), ("model", s), ("model_version", s), ("role", s), ("shadow_of", s),
            ("contact_id", s), ("text", s),
            ("turns", pa.list_(pa.struct([("role", s), ("text", s)]))),
            ("segment", s), ("country", s), ("plan", s), ("tenure_days", i), ("language", s),
            ("prior_contacts", i), ("wait_min", f),
            # suggestions: the shown list, best first as shown, and how likely that order was
            ("workflow_ids", pa.list_(s)), ("scores", pa.list_(f)), ("abstained", b),
            ("confidence", f), ("shown_propensity", f), ("explore_top_k", i),
            ("explore_rate", f), ("ranked_ids", pa.list_(s)),
            # routing: the chosen pair, its propensity, and every pair considered
            ("channel", s), ("agent_id", s), ("propensity", f), ("expected_utility", f),
            ("predicted_topic", s), ("eligible_channels", pa.list_(s)),
            ("eligible_agents", pa.list_(s)), ("eligible_propensities", pa.list_(f)),
            ("explore", s), ("waiting", b), ("latency_ms", f),
        ]
    )  # fmt: skip


def outcome_schema():  # type: ignore[no-untyped-def]
    """The Arrow schema of ``outcomes/*.parquet``."""
    import pyarrow as pa

    s, f = pa.string(), pa.float64()
    return pa.schema(
        [
            ("decision_id", s), ("received", pa.timestamp("us", tz="UTC")), ("seq", pa.int64()),
            ("source", s), ("resolved", pa.bool_()), ("csat", pa.int64()),
            ("handle_time", f), ("cost", f), ("workflow_used", s), ("topic", s),
        ]
    )  # fmt: skip


class OutcomeError(ValueError):
    """One outcome record is invalid; ``index`` and ``field`` say where."""

    def __init__(self, index: int, field: str | None, message: str) -> None:
        where = f"outcomes[{index}]" + (f".{field}" if field else "")
        super().__init__(f"{where}: {message}")
        self.index, self.field, self.message = index, field, message


def check_outcome(record: Any, index: int) -> dict[str, Any]:
    """One outcome, validated: a dict with ``decision_id`` and any of the optional fields.

    Raises :class:`OutcomeError` naming the record and the field.
    """
    if not isinstance(record, Mapping):
        raise OutcomeError(index, None, "must be an object with a decision_id")
    unknown = sorted(str(k) for k in record if k not in OUTCOME_FIELDS)
    if unknown:
        raise OutcomeError(
            index, unknown[0], f"unknown field; the fields are {', '.join(OUTCOME_FIELDS)}"
        )
    did = record.get("decision_id")
    if did is None:
        raise OutcomeError(index, "decision_id", "missing: the decision_id its answer carried")
    if not isinstance(did, str) or not ID_RE.fullmatch(did):
        raise OutcomeError(
            index, "decision_id", f"{_short(did)} is not a decision id (32 hex digits)"
        )
    out: dict[str, Any] = {"decision_id": did}
    for key in ("resolved", "csat", "handle_time", "cost", "workflow_used", "topic"):
        v = record.get(key)
        if v is None:
            out[key] = None
            continue
        if key == "resolved":
            if not isinstance(v, bool):
                raise OutcomeError(index, key, f"{_short(v)} is not true or false")
        elif key == "csat":
            if (
                isinstance(v, bool)
                or not isinstance(v, int | float)
                or v != int(v)
                or not (1 <= v <= 5)
            ):
                raise OutcomeError(index, key, f"{_short(v)} is not an integer from 1 to 5")
            v = int(v)
        elif key in ("handle_time", "cost"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise OutcomeError(index, key, f"{_short(v)} is not a finite number")
            if v < 0:
                raise OutcomeError(index, key, f"{v!r} is negative")
            v = float(v)
        else:
            if not isinstance(v, str) or not v.strip():
                raise OutcomeError(index, key, f"{_short(v)} is not a non-empty string")
            if len(v) > MAX_ID_CHARS or "\x00" in v:
                raise OutcomeError(index, key, f"longer than {MAX_ID_CHARS} characters or NUL")
        out[key] = v
    return out


def outcome_rows(
    checked: list[dict[str, Any]], source: str, seq: Iterator[int]
) -> list[dict[str, Any]]:
    """Validated outcomes as rows: when received, in which order, from where."""
    now = dt.datetime.now(dt.UTC)
    return [{**r, "received": now, "seq": next(seq), "source": source} for r in checked]


def _short(v: Any) -> str:
    """A value as a message shows it: JSON's words for true, false and null."""
    if v is None or isinstance(v, bool):
        return "null" if v is None else str(v).lower()
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def private_text(text: str | None, policy: str) -> str | None:
    """A logged text under ``--log-text``: as is, ``sha256:<hex>``, or None."""
    if text is None or policy == "keep":
        return text
    if policy == "hash":
        return HASHED_TEXT_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return None


def is_hashed_text(text: Any) -> bool:
    """Whether ``text`` is what ``private_text`` logs under ``--log-text hash``
    (``sha256:`` and 64 lower-case hex digits), not a text as the user wrote it."""
    return isinstance(text, str) and HASHED_TEXT_RE.fullmatch(text) is not None
