"""Decision records built column by column by the writer thread: the same records a dict
per row gives, for every shape of request the server logs, and a bad one costs only itself."""

from __future__ import annotations

import datetime as dt
import math
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from frontdesk.decisions.records import decision_schema, private_text
from frontdesk.decisions.store import DECISIONS, DecisionLogDir
from frontdesk.scoring.decision_logging import (
    DecisionLogger,
    DecisionLogSettings,
    PendingDecisions,
)


def reference_rows(p: PendingDecisions) -> list[dict[str, Any]]:
    """A record per text, one dict each, written the plain way: the specification the
    column-by-column build must meet."""
    n, params, s = len(p.ids), p.parameters, p.settings
    out = {name: data for name, (data, _) in p.outputs.items()}

    def one_per_text(v: Any) -> list[Any]:
        return v if isinstance(v, list) and len(v) == n else [None] * n

    def as_dict(v: Any) -> dict[str, Any]:
        return v if isinstance(v, dict) else {}

    def as_str(v: Any) -> str | None:
        return None if v is None else str(v)

    def as_int(v: Any) -> int | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
            return None
        return int(v) if -(2**63) <= v < 2**63 else None

    def as_float(v: Any) -> float | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return None
        return float(v)

    contexts, waits, contact_ids = (
        one_per_text(params.get(k)) for k in ("contexts", "waits", "contact_ids")
    )
    extra = p.extra or [{} for _ in range(n)]
    time = dt.datetime.fromtimestamp(p.time_us // 1_000_000, dt.UTC).replace(
        microsecond=p.time_us % 1_000_000
    )
    rows = []
    for i in range(n):
        ctx = as_dict(contexts[i])
        user = as_dict(ctx.get("user"))
        meta = as_dict(user.get("metadata"))
        turns = [t for t in ctx.get("turns") or [] if isinstance(t, dict)]
        row: dict[str, Any] = {
            "decision_id": p.ids[i], "time": time, "endpoint": p.endpoint, "task": p.task,
            "model": p.model, "model_version": p.version, "role": p.role,
            "shadow_of": p.shadow_of[i] if p.shadow_of else None,
            "contact_id": as_str(contact_ids[i]),
            "text": private_text(p.texts[i], s.log_text),
            "turns": [
                {"role": t.get("role"), "text": private_text(t.get("text"), s.log_text)}
                for t in turns
            ] if s.log_text != "drop" else [],
            "segment": as_str(user.get("segment")), "country": as_str(user.get("country")),
            "plan": as_str(user.get("plan")), "tenure_days": as_int(user.get("tenure_days")),
            "language": as_str(user.get("language")),
            "prior_contacts": as_int(user.get("prior_contacts", meta.get("prior_contacts"))),
            "wait_min": as_float(waits[i]), "latency_ms": p.latency_s * 1000.0,
        }  # fmt: skip
        if p.task == "suggest":
            k = p.outputs["workflow_id"][1][1]
            wf, sc = out["workflow_id"][i * k : (i + 1) * k], out["score"][i * k : (i + 1) * k]
            row["workflow_ids"] = [w for w in wf if w]
            row["scores"] = [float(x) for w, x in zip(wf, sc, strict=True) if w]
            row["abstained"] = bool(out["abstained"][i])
            if "confidence" in out:
                row["confidence"] = float(out["confidence"][i])
            if p.explored:
                row.update(p.explored[i])
            elif p.role != "shadow":
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


USERS = [
    None, "not a context", {"user": 3}, {"turns": "not a list"},
    {"user": {"segment": "smb", "country": "DE", "plan": 7, "tenure_days": 12,
              "language": "de", "metadata": {"prior_contacts": 4}}},
    {"user": {"tenure_days": True, "prior_contacts": 2.0, "metadata": {"prior_contacts": 9}}},
    {"user": {"tenure_days": 2**70, "prior_contacts": None, "metadata": {"prior_contacts": 9}},
     "turns": [{"role": "user", "text": "hi"}, "not a turn", {"role": "agent", "text": None}]},
    {"user": {"tenure_days": float("nan"), "metadata": "x"}, "turns": []},
]  # fmt: skip


def _pending(
    rng: random.Random, settings: DecisionLogSettings, task: str, n: int | None = None
) -> PendingDecisions:
    n = n or rng.choice([1, 1, 1, 2, 3])
    params: dict[str, Any] = {}
    if rng.random() < 0.8:
        params["contexts"] = [rng.choice(USERS) for _ in range(n)]
    if rng.random() < 0.5:
        params["waits"] = [rng.choice([1, 2.5, "x", float("nan"), None, True]) for _ in range(n)]
    if rng.random() < 0.5:
        params["contact_ids"] = [rng.choice(["c-1", 17, None]) for _ in range(n)]
    if rng.random() < 0.1:
        params["contexts"] = ["wrong length"]
    role = rng.choice(["default", "canary", "shadow", "explicit"])
    explored = None
    extra = None
    if task == "suggest":
        k = rng.choice([1, 3, 5])
        wf = [rng.choice(["a", "b", "c", ""]) for _ in range(n * k)]
        outputs = {
            "workflow_id": (wf, [n, k]),
            "score": ([rng.random() for _ in wf], [n, k]),
            "abstained": ([rng.random() < 0.2 for _ in range(n)], [n]),
        }
        if rng.random() < 0.7:
            outputs["confidence"] = ([rng.random() for _ in range(n)], [n])
        if role != "shadow" and rng.random() < 0.3:
            explored = [
                {"ranked_ids": ["b", "a"], "explore_top_k": 2, "explore_rate": 0.5,
                 "shown_propensity": 0.25}
                for _ in range(n)
            ]  # fmt: skip
        elif rng.random() < 0.2:
            explored = []  # not explored: what explore_lists gives then
    else:
        agents = [rng.choice(["ag-1", ""]) for _ in range(n)]
        outputs = {
            "agent_id": (agents, [n]),
            "channel": (["chat" if a else "" for a in agents], [n]),
            "propensity": ([0.5] * n, [n]),
            "expected_utility": ([1.25] * n, [n]),
        }
        if rng.random() < 0.8:
            extra = [
                {"explore": "epsilon=0.1", "eligible_channels": ["chat", "email"],
                 "eligible_agents": ["ag-1", "ag-2"], "eligible_propensities": [0.9, 0.1],
                 "predicted_topic": "billing"} if a else {"explore": "epsilon=0.1"}
                for a in agents
            ]  # fmt: skip
    return PendingDecisions(
        ids=[f"{rng.getrandbits(128):032x}" for _ in range(n)],
        time_us=1_780_000_000_000_000 + rng.randrange(10**9),
        task=task, model=task, version=rng.choice(["1", "2"]), role=role,
        endpoint=rng.choice(["v1", "v2"]), latency_s=rng.random() / 100,
        texts=[rng.choice(["refund please", "card lost", "ünïcode"]) for _ in range(n)],
        parameters=params, outputs=outputs, extra=extra, explored=explored,
        shadow_of=[f"{j:032x}" for j in range(n)] if role == "shadow" else None,
        settings=settings,
    )  # fmt: skip


@pytest.mark.parametrize("log_text", ["keep", "hash", "drop"])
@pytest.mark.parametrize("tasks", [("suggest",), ("route",), ("suggest", "route")])
def test_columns_hold_exactly_the_records_a_dict_per_row_gives(
    log_text: str, tasks: tuple[str, ...]
) -> None:
    rng = random.Random(f"{log_text}{tasks}")
    settings = DecisionLogSettings(folder="unused", log_text=log_text, explore_top_k=3,
                                   explore_rate=0.2)  # fmt: skip
    schema = decision_schema()
    for _ in range(20):
        items = [_pending(rng, settings, rng.choice(tasks)) for _ in range(rng.randint(1, 12))]
        want = pa.Table.from_pylist([r for p in items for r in reference_rows(p)], schema=schema)
        got = PendingDecisions.to_arrow(items, schema)
        assert got.schema == schema
        assert got.to_pylist() == want.to_pylist()


def test_turns_that_are_not_a_list_are_logged_as_none() -> None:
    settings = DecisionLogSettings(folder="unused")
    p = _pending(random.Random(3), settings, "suggest", n=1)
    p.parameters = {"contexts": [{"turns": 5, "user": {"segment": "smb"}}]}
    (row,) = PendingDecisions.to_arrow([p], decision_schema()).to_pylist()
    assert row["turns"] == [] and row["segment"] == "smb"


def test_a_request_that_cannot_be_built_costs_only_itself(tmp_path: Path) -> None:
    rng = random.Random(1)
    logger = DecisionLogger(DecisionLogSettings(folder=str(tmp_path), flush_seconds=60))
    good = [_pending(rng, logger.settings, "suggest") for _ in range(5)]
    bad = _pending(rng, logger.settings, "suggest")
    del bad.outputs["abstained"]  # a runtime that answered without it
    short = _pending(rng, logger.settings, "route")
    short.outputs["agent_id"] = ([], [0])  # fewer answers than texts
    for p in [*good[:2], bad, *good[2:], short]:
        assert logger.decisions.submit(p) is not None
    assert logger.decisions.flush()
    logger.close()
    rows = DecisionLogDir.open(tmp_path).read(DECISIONS).to_pylist()
    assert [r["decision_id"] for r in rows] == [i for p in good for i in p.ids]
    assert logger.decisions.dropped_rows == len(bad) + len(short)
    assert logger.decisions.write_errors == 2


def test_the_requests_of_a_file_are_built_together_by_the_writer(tmp_path: Path) -> None:
    built: list[int] = []

    class Counted(PendingDecisions):
        __slots__ = ()

        @classmethod
        def to_arrow(cls, items, schema):  # type: ignore[no-untyped-def]
            built.append(len(items))
            return super().to_arrow(items, schema)

    rng = random.Random(2)
    logger = DecisionLogger(DecisionLogSettings(folder=str(tmp_path), flush_seconds=60))
    w = logger.decisions
    items = [_pending(rng, logger.settings, rng.choice(["suggest", "route"])) for _ in range(50)]
    for p in items:
        w.submit(Counted(**{f: getattr(p, f) for f in PendingDecisions.__slots__}))
    assert built == [] and w.flush()  # nothing is built before the file is cut
    assert built == [50] and w.files == 1 and w.written_rows == sum(len(p) for p in items)
    logger.close()
