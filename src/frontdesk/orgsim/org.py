"""Run the simulated organisation over days and write its decision logs as Parquet.

The generative model is documented in :mod:`frontdesk.orgsim.world`. Time
moves in epochs of ``OrgConfig.epoch_minutes``: contacts that arrived wait;
agents whose contacts ended free their slots; the dispatcher decides the
waiting contacts; each decided contact holds one of its agent's slots for
its realised handle time. Contacts nobody can take (every eligible agent
full) wait for the next epoch, and the wait lowers their CSAT. Each day
starts with every agent free and runs until its last contact is decided.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..artifacts import LOGS, MANIFEST, atomic_folder, write_manifest
from ..errors import DataError, FrontdeskError
from ..logs import (
    LEGACY_DESCRIPTION,
    LOG_COLUMNS,
    LOGS_FORMAT_VERSION,
    WORLD_FILE,
    log_schema,
    simulated_organisation,
)
from .dispatch import Decision, Epoch, SequentialDispatcher
from .world import CHANNELS, Contacts, OrgConfig, QueryPool, World


@dataclass
class DayRun:
    """One day under one dispatcher: a decision and outcomes per contact (row order)."""

    contacts: Contacts
    decisions: list[Decision | None]
    decided_at: np.ndarray
    expected: dict[str, np.ndarray]
    realised: dict[str, np.ndarray]
    capacity_violations: int = 0
    max_load_ratio: float = 0.0

    @property
    def wait(self) -> np.ndarray:
        return self.decided_at - self.contacts.arrival


def run_day(world: World, contacts: Contacts, dispatcher: Any, day: int) -> DayRun:
    """Simulate one day's contacts under ``dispatcher`` (see module docstring)."""
    n = len(contacts)
    ag = world.agents
    step = world.config.epoch_minutes
    dispatcher.start_day(day)
    busy: list[tuple[float, int]] = []  # (ends_at, agent)
    load = np.zeros(len(ag), dtype=int)
    decisions: list[Decision | None] = [None] * n
    decided_at = np.full(n, np.nan)
    exp_cols: dict[str, np.ndarray] = {}
    real_cols: dict[str, np.ndarray] = {}
    violations, max_ratio = 0, 0.0
    waiting: list[int] = []
    nxt = 0
    now = float(np.floor(contacts.arrival[0] / step) * step) if n else 0.0
    while nxt < n or waiting:
        now += step
        while nxt < n and contacts.arrival[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        while busy and busy[0][0] <= now:
            _, a = heapq.heappop(busy)
            load[a] -= 1
        if not waiting:
            continue
        free = ag.capacity - load
        epoch = Epoch(world, contacts, np.array(waiting), now, free.copy())
        made = dispatcher.decide(epoch)
        if not made:
            continue
        rows = np.array([d.row for d in made])
        ch = np.array([d.channel for d in made])
        agents = np.array([d.agent for d in made])
        waits = now - contacts.arrival[rows]
        exp = world.expected(contacts, rows, ch, agents, waits)
        real = world.realise(contacts, rows, exp, ch)
        for j, d in enumerate(made):
            decisions[d.row] = d
            decided_at[d.row] = now
            load[d.agent] += 1
            heapq.heappush(busy, (now + float(real["handle_time"][j]), d.agent))
        violations += int((load > ag.capacity).sum())
        max_ratio = max(max_ratio, float((load / ag.capacity).max()))
        for key, vals in exp.items():
            exp_cols.setdefault(key, np.full(n, np.nan))[rows] = vals
        for key, vals in real.items():
            real_cols.setdefault(key, np.full(n, np.nan))[rows] = vals
        decided = set(rows.tolist())
        waiting = [r for r in waiting if r not in decided]
    return DayRun(contacts, decisions, decided_at, exp_cols, real_cols, violations, max_ratio)


def log_table(world: World, run: DayRun, policy: str):  # type: ignore[no-untyped-def]
    """One day's decisions as an Arrow table (the logs' schema; see README)."""
    import pyarrow as pa

    c = run.contacts
    rows: dict[str, list[Any]] = {k: [] for k in LOG_COLUMNS}
    for i, d in enumerate(run.decisions):
        assert d is not None
        conv = world.conversation(c, i)
        prof = conv["context"]["user"]
        wf = world.query_workflow[int(c.query[i])]
        rows["contact_id"].append(c.ids[i])
        rows["day"].append(int(c.day[i]))
        rows["arrival_min"].append(float(c.arrival[i]))
        rows["decided_min"].append(float(run.decided_at[i]))
        rows["wait_min"].append(float(run.decided_at[i] - c.arrival[i]))
        rows["user_id"].append(f"u{int(c.user[i]):06d}")
        for key in ("segment", "country", "plan", "tenure_days", "language", "prior_contacts"):
            rows[key].append(prof[key])
        rows["text"].append(conv["text"])
        rows["turns"].append(conv["context"]["turns"])
        rows["workflow_id"].append(world.workflow_ids[wf])
        rows["topic"].append(world.topics[world.workflow_topic[wf]])
        rows["channel"].append(CHANNELS[d.channel])
        rows["agent_id"].append(world.agents.ids[d.agent])
        rows["propensity"].append(d.propensity)
        rows["eligible_channels"].append([CHANNELS[h] for h in d.eligible_channels])
        rows["eligible_agents"].append([world.agents.ids[a] for a in d.eligible_agents])
        rows["eligible_propensities"].append([float(p) for p in d.eligible_probs])
        rows["policy"].append(policy)
        rows["resolved"].append(bool(run.realised["resolved"][i]))
        rows["handle_time"].append(float(run.realised["handle_time"][i]))
        rows["csat"].append(int(run.realised["csat"][i]))
        rows["cost"].append(float(run.realised["cost"][i]))
        rows["utility"].append(float(run.realised["utility"][i]))
    return pa.table(rows, schema=log_schema())


def pool_table(pool: QueryPool):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.table(
        {
            "text": pool.texts,
            "workflow_id": pool.workflow_ids,
            "topic": [pool.topics.get(w, "general") for w in pool.workflow_ids],
        }
    )


def read_pool(logs_dir: Path) -> QueryPool:
    import pyarrow.parquet as pq

    t = pq.read_table(logs_dir / "pool.parquet").to_pydict()
    return QueryPool(
        texts=t["text"],
        workflow_ids=t["workflow_id"],
        topics=dict(zip(t["workflow_id"], t["topic"], strict=True)),
    )


def simulate_org(
    config: OrgConfig,
    pool: QueryPool,
    out: str | Path,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Simulate ``config.days`` days under the logging policy; write LOGS_DIR atomically.

    LOGS_DIR holds ``contacts-DDD.parquet`` (one per day), ``agents.json``
    (the roster as the organisation knows it), ``pool.parquet`` (the question
    texts contacts are drawn from), ``world.json`` (the simulator's config)
    and ``manifest.json`` (channels, topics, the logged days, file checksums). The hidden outcome model is not
    written: it is regenerated from the seed by ``frontdesk eval router`` and
    ``frontdesk simulate truth``. An existing log folder at ``out`` is
    replaced only with ``overwrite`` (models trained on it point at it).
    """
    _refuse_existing(Path(out), overwrite)
    world = World(config, pool)
    days = list(range(config.days))
    return _write_logs(world, days, config.contacts_per_day, Path(out), {}, progress)


def continue_org(
    logs_dir: str | Path,
    out: str | Path,
    days: int,
    contacts: int | None = None,
    progress: Callable[[int], None] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``days`` more days of the organisation that wrote ``logs_dir``, into a new log folder.

    The same world (roster, users, contact pool, hidden outcome model) and the
    same logging policy; days are numbered after the last logged one, so
    contact ids are new. ``contacts`` spreads that many contacts over the new
    days (default: as many per day as ``logs_dir`` has). These are the
    held-out logs on which a model trained on ``logs_dir`` is judged.
    """
    from ..logs import DecisionLogs

    root = Path(logs_dir)
    target = Path(out).resolve()
    if target == root.resolve() or root.resolve() in target.parents:
        raise FrontdeskError(
            f"{out}: is (inside) the folder being continued; write the new days elsewhere"
        )
    if contacts is not None and contacts < days:
        raise FrontdeskError(f"--contacts {contacts} is fewer than one per day over {days} days")
    _refuse_existing(Path(out), overwrite)
    src = DecisionLogs.open(logs_dir)
    world = rebuild_world(src)
    logged = logged_days(src.meta)
    last = max(logged)
    # The last logged day must be the rebuilt world's own: else the new days are another world's.
    ids, texts = _day_rows(src, last)
    check_texts(world, src, contacts_per_day(src.meta), ids, texts)
    per_day = contacts_per_day(src.meta) if contacts is None else round(contacts / days)
    extra: dict[str, Any] = {"organisation": src.organisation} if src.organisation else {}
    extra |= {
        "continues": {
            "logs": str(root.resolve()),
            "world_sha256": src.world_sha256,
            "days": logged,
        },
    }
    return _write_logs(world, list(range(last + 1, last + 1 + days)), per_day, Path(out), extra,
                       progress)  # fmt: skip


def rebuild_world(logs: Any) -> World:
    """The simulator's world behind a log folder (a DecisionLogs), checked against its roster.

    Refuses, with the file and field, logs the simulator did not write (no or
    a foreign ``config``, no contact pool) and logs whose roster is not the
    rebuilt world's (another world, or another version of the simulator).
    """
    where = str(logs.root / WORLD_FILE)
    cfg = logs.config
    known = set(OrgConfig.__dataclass_fields__)
    unknown = sorted(set(cfg) - known) if isinstance(cfg, dict) else []
    if unknown:
        raise DataError(
            where, None, f"config.{unknown[0]}",
            "not a field of this simulator's configuration (written by another version?)",
        )  # fmt: skip
    try:
        config = OrgConfig.from_json(cfg)
    except (TypeError, ValueError, AttributeError) as exc:
        raise DataError(where, None, "config", f"not a simulator configuration: {exc}") from None
    pool_file = Path(logs.root) / "pool.parquet"
    if not pool_file.is_file():
        raise DataError(str(pool_file), None, None, "missing: the contact pool")
    world = World(config, read_pool(Path(logs.root)))
    roster_file = Path(logs.root) / "agents.json"
    logged = json.loads(roster_file.read_text()) if roster_file.is_file() else None
    rebuilt = json.loads(json.dumps(world.agents.public_rows(world.topics)))
    if logged != rebuilt:
        raise DataError(
            str(roster_file), None, None,
            "not the roster of the world rebuilt from world.json's config: these logs were "
            "written by another world (or another version of the simulator)",
        )  # fmt: skip
    return world


def check_texts(
    world: World, logs: Any, per_day: int, ids: list[str], texts: list[str]
) -> dict[int, Contacts]:
    """Every logged contact's text must be the rebuilt world's contact of that id.

    Returns the rebuilt contacts of each day seen, for the caller to score.
    """
    days: dict[int, Contacts] = {}
    for c, text in zip(ids, texts, strict=True):
        day, j = parse_contact_id(c, logs)
        if day not in days:
            days[day] = world.contacts(day, per_day)
        contacts = days[day]
        if j >= len(contacts) or world.conversation(contacts, j)["text"] != text:
            raise DataError(
                str(logs.root), None, "text",
                f"contact {c} is not the one the rebuilt world has: these logs were not "
                "written by this world (or by another version of the simulator)",
            )  # fmt: skip
    return days


def parse_contact_id(contact_id: str, logs: Any) -> tuple[int, int]:
    """Day and position within the day of a simulator contact id ``cDDD-NNNNN``."""
    head, _, tail = str(contact_id).partition("-")
    if not (head[:1] == "c" and head[1:].isdigit() and tail.isdigit()):
        raise DataError(
            str(logs.root), None, "contact_id",
            f"{contact_id!r} is not a simulator contact id (cDDD-NNNNN)",
        )  # fmt: skip
    return int(head[1:]), int(tail)


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if not overwrite and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FrontdeskError(
            f"{out}: already exists; choose another --out, or pass --overwrite to replace it "
            "(a model trained on logs there would lose them)"
        )


def _day_rows(logs: Any, day: int) -> tuple[list[str], list[str]]:
    import pyarrow.parquet as pq

    f = Path(logs.root) / f"contacts-{day:03d}.parquet"
    if not f.is_file():
        raise DataError(str(f), None, None, f"missing: {logs.description.name} lists day {day}")
    t = pq.read_table(f, columns=["contact_id", "text"])
    return [str(c) for c in t.column("contact_id").to_pylist()], t.column("text").to_pylist()


def logged_days(meta: dict[str, Any]) -> list[int]:
    """The days a simulator log folder holds (from its description, ``DecisionLogs.meta``)."""
    if "days" in meta:
        return [int(d) for d in meta["days"]]
    return list(range(int(meta["config"]["days"])))


def contacts_per_day(meta: dict[str, Any]) -> int:
    """How many contacts each logged day of a simulator log folder has."""
    if "contacts_per_day" in meta:
        return int(meta["contacts_per_day"])
    return OrgConfig.from_json(meta["config"]).contacts_per_day


def pool_digest(pool: QueryPool) -> str:
    """sha256 of a contact pool's content (not of the Parquet bytes, which vary by writer)."""
    text = json.dumps(
        {"texts": pool.texts, "workflow_ids": pool.workflow_ids, "topics": pool.topics},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _write_logs(
    world: World,
    days: list[int],
    per_day: int,
    out: Path,
    extra: dict[str, Any],
    progress: Callable[[int], None] | None,
) -> dict[str, Any]:
    import pyarrow.parquet as pq

    config = world.config
    logger = SequentialDispatcher("logging", config.temperature, config.seed)
    summary: dict[str, Any] = {
        "days": len(days), "logged_days": days, "contacts": 0, "capacity_violations": 0,
    }  # fmt: skip
    with atomic_folder(out, (MANIFEST, LEGACY_DESCRIPTION), "log folder", LOGS) as tmp:
        for day in days:
            run = run_day(world, world.contacts(day, per_day), logger, day)
            name = f"contacts-{day:03d}.parquet"
            pq.write_table(log_table(world, run, "logging"), tmp / name)
            summary["contacts"] += len(run.contacts)
            summary["capacity_violations"] += run.capacity_violations
            if progress:
                progress(1)
        pq.write_table(pool_table(world.pool), tmp / "pool.parquet")
        roster = world.agents.public_rows(world.topics)
        (tmp / "agents.json").write_text(json.dumps(roster, indent=1) + "\n")
        public = world.public_json()
        # Only the simulator needs its world (to rebuild the hidden outcome model).
        world_meta = {"format_version": LOGS_FORMAT_VERSION, "config": public.pop("config")}
        (tmp / WORLD_FILE).write_text(json.dumps(world_meta, indent=2) + "\n")
        write_manifest(
            tmp,
            {
                "kind": LOGS,
                "format_version": LOGS_FORMAT_VERSION,
                "frontdesk_version": __version__,
                "organisation": simulated_organisation(
                    world_meta["config"], pool_digest(world.pool)
                ),
                **public,
                "world": WORLD_FILE,
                "logging_policy": {"name": "rule-softmax", "temperature": config.temperature},
                "days": days,
                "contacts_per_day": per_day,
                **extra,
                "summary": summary,
            },
        )
    return summary
