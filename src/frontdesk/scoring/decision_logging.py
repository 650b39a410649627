"""DecisionLogger: the server's side of a decision log (``frontdesk serve --decision-log``).

For every answer of a ``decision_task`` runtime it builds one record per text
(``frontdesk.decisions.records.decision_schema``) and hands it to a background
writer; the request never waits on disk. It also explores suggestion lists
(``explore_top_k`` / ``explore_rate``: for that share of requests the top N
are shown in a uniformly random order, and the log says how likely the shown
order was) and takes outcomes in (``POST /v1/outcomes``), durably before it
answers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import os
import random
from dataclasses import asdict, dataclass
from typing import Any

from ..decisions.records import (
    TEXT_POLICIES,
    check_outcome,
    decision_schema,
    new_decision_id,
    outcome_rows,
    outcome_schema,
    private_text,
)
from ..decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from ..decisions.writer import WHEN_FULL, DeferredRows, DurableParquetWriter
from .protocol import InferenceRequest, InferenceResponse

MAX_OUTCOMES_PER_BATCH = 10_000
ENV_PREFIX = "FRONTDESK_DECISION_LOG"


@dataclass(frozen=True)
class DecisionLogSettings:
    """How the server logs decisions; each field also read from ``FRONTDESK_DECISION_LOG_*``."""

    folder: str
    log_text: str = "keep"  # keep | hash | drop
    explore_top_k: int = 0  # 0: suggestion lists are shown as ranked
    explore_rate: float = 0.0
    when_full: str = "drop"  # drop | block
    flush_rows: int = 1000
    flush_seconds: float = 2.0
    buffer_rows: int = 20_000

    def __post_init__(self) -> None:
        if self.log_text not in TEXT_POLICIES:
            raise ValueError(f"--log-text must be one of {', '.join(TEXT_POLICIES)}")
        if self.when_full not in WHEN_FULL:
            raise ValueError(f"--log-when-full must be one of {', '.join(WHEN_FULL)}")
        if not 0 <= self.explore_rate <= 1 or not math.isfinite(self.explore_rate):
            raise ValueError("--explore-rate must be in [0, 1]")
        if self.explore_top_k < 0 or self.explore_top_k == 1 or self.explore_top_k > 8:
            raise ValueError("--explore-top-k must be 0 (off) or from 2 to 8")
        if self.explore_rate > 0 and not self.explore_top_k:
            raise ValueError("--explore-rate needs --explore-top-k N (how many to reorder)")

    def to_env(self) -> dict[str, str]:
        return {f"{ENV_PREFIX}_{k.upper()}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> DecisionLogSettings | None:
        env = dict(os.environ if env is None else env)
        folder = env.get(f"{ENV_PREFIX}_FOLDER")
        if not folder:
            return None
        kw: dict[str, Any] = {}
        for name, f in cls.__dataclass_fields__.items():
            raw = env.get(f"{ENV_PREFIX}_{name.upper()}")
            if raw is not None and name != "folder":
                kw[name] = {"int": int, "float": float}.get(str(f.type), str)(raw)
        return cls(folder=folder, **kw)


class DecisionLogger:
    """Builds decision and outcome records and owns their two background writers."""

    def __init__(
        self,
        settings: DecisionLogSettings,
        seed: int | None = None,
        on_drop: Any = None,
        on_logged: Any = None,
    ) -> None:
        self.settings = settings
        self.store = DecisionLogDir.create(settings.folder)
        common = {
            "flush_rows": settings.flush_rows,
            "flush_seconds": settings.flush_seconds,
            "buffer_rows": settings.buffer_rows,
            "when_full": settings.when_full,
        }
        self.decisions = DurableParquetWriter(
            self.store.root / DECISIONS, decision_schema(), DECISIONS,
            on_drop=(lambda n: on_drop(DECISIONS, n)) if on_drop else None,
            on_file=(lambda n: on_logged(DECISIONS, n)) if on_logged else None, **common,
        )  # fmt: skip
        self.outcomes = DurableParquetWriter(
            self.store.root / OUTCOMES, outcome_schema(), OUTCOMES,
            on_drop=(lambda n: on_drop(OUTCOMES, n)) if on_drop else None,
            on_file=(lambda n: on_logged(OUTCOMES, n)) if on_logged else None,
            **{**common, "when_full": "drop"},  # an outcome batch is refused (503), never waits
        )  # fmt: skip
        self._rng = random.Random(seed)
        self._seq = itertools.count()

    def close(self) -> None:
        self.decisions.close()
        self.outcomes.close()

    # -- suggestion lists ----------------------------------------------------------------------

    def explore_lists(self, response: InferenceResponse) -> list[dict[str, Any]]:
        """Reorder a share of the served lists in place; per text, what the log records
        (empty when lists are not explored: the records then say so themselves)."""
        s = self.settings
        if s.explore_rate <= 0 or s.explore_top_k < 2:
            return []
        out = {t.name: t for t in response.outputs}
        ids = out.get("workflow_id")
        if ids is None or len(ids.shape) != 2:
            return []
        n, k = ids.shape
        info = []
        for i in range(n):
            row = list(ids.data[i * k : (i + 1) * k])
            shown = sum(1 for w in row if w)
            top = min(s.explore_top_k, shown)
            ranked = [w for w in row if w]
            entry: dict[str, Any] = {
                "ranked_ids": ranked, "explore_top_k": s.explore_top_k,
                "explore_rate": s.explore_rate, "shown_propensity": 1.0,
            }  # fmt: skip
            if top >= 2 and s.explore_rate > 0:
                explored = self._rng.random() < s.explore_rate
                order = list(range(top))
                if explored:
                    self._rng.shuffle(order)
                stays = order == list(range(top))
                uniform = s.explore_rate / math.factorial(top)
                entry["shown_propensity"] = uniform + ((1 - s.explore_rate) if stays else 0.0)
                if not stays:
                    for t in response.outputs:
                        if len(t.shape) == 2 and t.shape[1] == k:
                            part = t.data[i * k : i * k + top]
                            t.data = [  # a new list: a snapshot taken before stays as it was
                                *t.data[: i * k],
                                *[part[j] for j in order],
                                *t.data[i * k + top :],
                            ]
            info.append(entry)
        return info

    # -- records ---------------------------------------------------------------------------------

    def log(
        self,
        task: str,
        model: str,
        version: str,
        role: str,
        request: InferenceRequest,
        response: InferenceResponse,
        latency_s: float,
        endpoint: str,
        explored: list[dict[str, Any]] | None = None,
        shadow_of: list[str] | None = None,
    ) -> list[str] | None:
        """One record per text of ``request``; their decision ids, None when dropped.

        The request path only takes ids and references (the runtime has already
        validated the request; nothing here changes it or the served outputs): the
        writer thread builds the records (``PendingDecisions.rows``).
        """
        texts = request.input("text").data
        n = len(texts)
        ids = [new_decision_id() for _ in range(n)]
        pending = PendingDecisions(
            ids, dt.datetime.now(dt.UTC), task, model, version, role, endpoint, latency_s,
            texts, request.parameters, {t.name: t.data for t in response.outputs},
            {t.name: t.shape for t in response.outputs}, response.log, explored, shadow_of,
            self.settings,
        )  # fmt: skip
        if self.decisions.submit(pending) is None:
            return None  # dropped (buffer full): no id is handed out for a decision not logged
        return ids

    # -- outcomes ----------------------------------------------------------------------------------

    def accept_outcomes(self, body: Any, source: str = "api") -> int | None:
        """Validate a batch (all or nothing) and hand it to the writer; a ticket, None if full.

        Raises ``OutcomeError`` (record and field) or ``ValueError`` (the body's shape).
        """
        if not isinstance(body, dict) or set(body) != {"outcomes"}:
            raise ValueError('the body must be {"outcomes": [...]} and nothing else')
        batch = body["outcomes"]
        if not isinstance(batch, list) or not batch:
            raise ValueError("outcomes must be a non-empty list")
        if len(batch) > MAX_OUTCOMES_PER_BATCH:
            raise ValueError(
                f"{len(batch)} outcomes in one batch; at most {MAX_OUTCOMES_PER_BATCH}"
            )
        rows = outcome_rows([check_outcome(r, i) for i, r in enumerate(batch)], source, self._seq)
        return self.outcomes.submit(rows)


@dataclass
class PendingDecisions(DeferredRows):
    """One request's decisions as the request path handed them over: built into records
    (``decisions.records.decision_schema``) by the writer thread."""

    ids: list[str]
    time: dt.datetime
    task: str
    model: str
    version: str
    role: str
    endpoint: str
    latency_s: float
    texts: list[Any]
    parameters: dict[str, Any]
    outputs: dict[str, list[Any]]
    shapes: dict[str, list[int]]
    extra: list[dict[str, Any]] | None
    explored: list[dict[str, Any]] | None
    shadow_of: list[str] | None
    settings: DecisionLogSettings

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> list[dict[str, Any]]:
        """The records, one per text."""
        n, p, out, s = len(self.ids), self.parameters, self.outputs, self.settings
        contexts, waits, contact_ids = (
            v if isinstance(v, list) and len(v) == n else [None] * n
            for v in (p.get("contexts"), p.get("waits"), p.get("contact_ids"))
        )  # a parameter the runtime did not check never costs the records
        extra = self.extra or [{} for _ in range(n)]
        policy = s.log_text
        rows = []
        for i in range(n):
            ctx = _dict(contexts[i])
            user = _dict(ctx.get("user"))
            meta = _dict(user.get("metadata"))
            turns = [t for t in ctx.get("turns") or [] if isinstance(t, dict)]
            row: dict[str, Any] = {
                "decision_id": self.ids[i], "time": self.time, "endpoint": self.endpoint,
                "task": self.task, "model": self.model, "model_version": self.version,
                "role": self.role, "shadow_of": self.shadow_of[i] if self.shadow_of else None,
                "contact_id": str(contact_ids[i]) if contact_ids[i] is not None else None,
                "text": private_text(self.texts[i], policy),
                "turns": [
                    {"role": t.get("role"), "text": private_text(t.get("text"), policy)}
                    for t in turns
                ] if policy != "drop" else [],
                "segment": _str(user.get("segment")), "country": _str(user.get("country")),
                "plan": _str(user.get("plan")), "tenure_days": _int(user.get("tenure_days")),
                "language": _str(user.get("language")),
                "prior_contacts": _int(user.get("prior_contacts", meta.get("prior_contacts"))),
                "wait_min": _float(waits[i]),
                "latency_ms": self.latency_s * 1000.0,
            }  # fmt: skip
            if self.task == "suggest":
                k = self.shapes["workflow_id"][1]
                wf = out["workflow_id"][i * k : (i + 1) * k]
                sc = out["score"][i * k : (i + 1) * k]
                row["workflow_ids"] = [w for w in wf if w]
                row["scores"] = [float(x) for w, x in zip(wf, sc, strict=True) if w]
                row["abstained"] = bool(out["abstained"][i])
                if "confidence" in out:
                    row["confidence"] = float(out["confidence"][i])
                if self.explored:
                    row.update(self.explored[i])
                elif self.role != "shadow":  # shown as ranked (a shadow's list is never shown)
                    row.update(ranked_ids=row["workflow_ids"], explore_top_k=s.explore_top_k,
                               explore_rate=s.explore_rate, shown_propensity=1.0)  # fmt: skip
            else:
                waiting = not out["agent_id"][i]
                row["waiting"] = waiting
                if not waiting:
                    row["channel"] = out["channel"][i]
                    row["agent_id"] = out["agent_id"][i]
                    row["propensity"] = float(out["propensity"][i])
                    row["expected_utility"] = float(out["expected_utility"][i])
                row.update(extra[i])
            rows.append(row)
        return rows


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _float(v: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _int(v: Any) -> int | None:
    """An int64 value, or None (a value Parquet cannot hold never costs the batch)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return None
    return int(v) if -(2**63) <= v < 2**63 else None
