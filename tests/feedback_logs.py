"""A joined log folder of suggestion decisions written by hand, for the feedback tests.

``joined_feedback(tmp, lists)`` writes each list as one served suggestion
decision (``decisions/``), its outcome with ``workflow_used`` (``outcomes/``),
and joins them with ``logs join``: the folder ``train ranker --feedback`` and
``index add --from-feedback`` read, exactly as the server's loop writes it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from frontdesk.decisions.join import join_logs
from frontdesk.decisions.records import decision_schema, outcome_schema
from frontdesk.decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from frontdesk.decisions.writer import write_rows

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@dataclass
class Served:
    """One served list: the question, the ranked ids, the shown order, what the agent used."""

    text: str | None
    ranked: list[str]
    used: str | None  # workflow_used (None: the outcome came back without one)
    order: list[int] | None = None  # shown position -> ranked position (None: as ranked)
    explore_top_k: int = 0
    explore_rate: float = 0.0
    turns: list[dict[str, str]] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    contact: str | None = None  # the contact id (None: one contact per list, ``c<i>``)

    def shown(self) -> list[str]:
        if self.order is None:
            return list(self.ranked)
        top = len(self.order)
        return [self.ranked[j] for j in self.order] + self.ranked[top:]

    def propensity(self) -> float:
        """As ``DecisionLogger.explore_lists`` logs it."""
        top = min(self.explore_top_k, len(self.ranked))
        if top < 2 or self.explore_rate <= 0:
            return 1.0
        stays = self.order is None or self.order == list(range(len(self.order)))
        uniform = self.explore_rate / math.factorial(top)
        return uniform + ((1 - self.explore_rate) if stays else 0.0)


def did(i: int) -> str:
    return f"{i + 1:032x}"


def joined_feedback(tmp: Path, lists: list[Served], name: str = "logs") -> Path:
    """Decision log + outcomes of ``lists``, joined into ``tmp / name``."""
    store = DecisionLogDir.create(tmp / f"{name}-dlog", organisation="acme")
    decisions, outcomes = [], []
    for i, s in enumerate(lists):
        shown = s.shown()
        decisions.append(
            {
                "decision_id": did(i), "time": T0 + dt.timedelta(minutes=i), "endpoint": "v1",
                "task": "suggest", "model": "suggest", "model_version": "1", "role": "default",
                "contact_id": s.contact or f"c{i}", "text": s.text, "turns": s.turns,
                "segment": s.profile.get("segment"), "country": s.profile.get("country"),
                "plan": s.profile.get("plan"), "tenure_days": s.profile.get("tenure_days"),
                "language": s.profile.get("language"),
                "prior_contacts": s.profile.get("prior_contacts"),
                "workflow_ids": shown, "scores": [1.0 / (j + 1) for j in range(len(shown))],
                "abstained": False, "confidence": 0.5, "shown_propensity": s.propensity(),
                "explore_top_k": s.explore_top_k, "explore_rate": s.explore_rate,
                "ranked_ids": s.ranked, "latency_ms": 3.0,
            }
        )  # fmt: skip
        outcomes.append(
            {"decision_id": did(i), "received": T0 + dt.timedelta(minutes=i, seconds=30),
             "seq": i, "source": "api", "resolved": True, "workflow_used": s.used}
        )  # fmt: skip
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), decisions, 1)
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outcomes, 2)
    join_logs(store.root, tmp / name)
    return tmp / name
