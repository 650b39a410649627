"""What training data says about workflows before reading the query: popularity, profile fit."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..schema import LabelledQuery, UserProfile, Workflow

PROFILE_FIELDS = ("segment", "plan", "country")


@dataclass
class WorkflowPriors:
    """Popularity per workflow and log-lift of (profile value, workflow tag), from labelled rows.

    ``lift[field][value][tag] = log P(tag | field=value) - log P(tag)`` with add-one
    smoothing, so 0 means "no evidence" and positive means this kind of user
    asks about this kind of workflow more than average.
    """

    log_popularity: dict[str, float] = field(default_factory=dict)
    default_log_popularity: float = 0.0
    lift: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @classmethod
    def fit(cls, workflows: Sequence[Workflow], rows: Sequence[LabelledQuery]) -> WorkflowPriors:
        labelled = [q for q in rows if q.label is not None]
        n, w = len(labelled), max(len(workflows), 1)
        counts = Counter(q.label for q in labelled)
        log_pop = {wf.id: math.log((counts[wf.id] + 1) / (n + w)) for wf in workflows}
        tags_of = {wf.id: wf.tags for wf in workflows}
        all_tags = sorted({t for wf in workflows for t in wf.tags})
        lift: dict[str, dict[str, dict[str, float]]] = {}
        if all_tags:
            t_count = Counter(t for q in labelled for t in tags_of.get(q.label or "", []))
            t_total = sum(t_count.values())
            for name in PROFILE_FIELDS:
                by_value: dict[str, Counter[str]] = defaultdict(Counter)
                for q in labelled:
                    value = getattr(q.user, name)
                    if value is not None:
                        by_value[str(value)].update(tags_of.get(q.label or "", []))
                table = {}
                for value, c in by_value.items():
                    total = sum(c.values())
                    table[value] = {
                        t: math.log((c[t] + 1) / (total + len(all_tags)))
                        - math.log((t_count[t] + 1) / (t_total + len(all_tags)))
                        for t in all_tags
                        if c[t] > 0
                    }
                if table:
                    lift[name] = table
        return cls(log_pop, math.log(1 / (n + w)), lift)

    def popularity(self, workflow_id: str) -> float:
        return self.log_popularity.get(workflow_id, self.default_log_popularity)

    def profile_fit(self, user: UserProfile, tags: Sequence[str]) -> list[float]:
        """Per profile field, the best lift over the workflow's tags (0 without evidence)."""
        out = []
        for name in PROFILE_FIELDS:
            value = getattr(user, name)
            table = self.lift.get(name, {}).get(str(value), {}) if value is not None else {}
            out.append(max((table.get(t, 0.0) for t in tags), default=0.0))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "log_popularity": self.log_popularity,
            "default_log_popularity": self.default_log_popularity,
            "lift": self.lift,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> WorkflowPriors:
        return cls(obj["log_popularity"], obj["default_log_popularity"], obj["lift"])
