"""DecisionLogs: a folder of logged routing decisions (Parquet) and what describes it.

Layout (written by ``frontdesk simulate org``; a real organisation's export
needs the same columns): ``manifest.json``, the manifest every saved folder
has (kind ``frontdesk-logs``), which names the channels (cost, base minutes,
agent share), the topics, the days, optionally the ``organisation`` the logs
belong to, and the sha256 of every file; ``agents.json`` (the roster:
channels, languages, capacity, cost per minute, listed skills per topic); one
or more ``contacts-*.parquet`` files, one row per decision. A log folder the
simulator wrote also holds ``world.json`` (its configuration), which only
``simulate truth``, ``simulate org --continue`` and ``eval router`` need.

A folder of an older frontdesk, described by ``world.json`` alone, still reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .artifacts import INDEX, LOGS, MANIFEST, WHAT, read_manifest, sha256_file
from .errors import DataError, IndexIntegrityError
from .schema import AgentRecord

LOGS_FORMAT_VERSION = 1
WORLD_FILE = "world.json"
LEGACY_DESCRIPTION = WORLD_FILE  # before manifest.json, world.json described a log folder
REQUIRED_COLUMNS = (
    "contact_id", "day", "wait_min", "segment", "country", "plan", "tenure_days", "language",
    "prior_contacts", "text", "turns", "topic", "channel", "agent_id", "propensity",
    "eligible_channels", "eligible_agents", "resolved", "handle_time", "csat", "cost",
)  # fmt: skip
PROFILE_FIELDS = ("segment", "country", "plan", "tenure_days", "language", "prior_contacts")
LOG_COLUMNS = (
    "contact_id", "day", "arrival_min", "decided_min", "wait_min", "user_id", *PROFILE_FIELDS,
    "text", "turns", "workflow_id", "topic", "channel", "agent_id", "propensity",
    "eligible_channels", "eligible_agents", "eligible_propensities", "policy", "resolved",
    "handle_time", "csat", "cost", "utility",
)  # fmt: skip
# Columns a log joined from served decisions adds (``frontdesk logs join``).
SERVED_COLUMNS = ("decision_id", "time", "model", "model_version", "role", "workflow_used")


def log_schema(served: bool = False):  # type: ignore[no-untyped-def]
    """The Arrow schema of ``contacts-*.parquet``; ``served`` adds ``SERVED_COLUMNS``.

    Every column is documented in docs/formats.md ("Decision logs").
    """
    import pyarrow as pa

    s, f, i = pa.string(), pa.float64(), pa.int64()
    types = {
        "contact_id": s, "day": i, "arrival_min": f, "decided_min": f, "wait_min": f,
        "user_id": s, "segment": s, "country": s, "plan": s, "tenure_days": i, "language": s,
        "prior_contacts": i, "text": s,
        "turns": pa.list_(pa.struct([("role", s), ("text", s)])),
        "workflow_id": s, "topic": s, "channel": s, "agent_id": s, "propensity": f,
        "eligible_channels": pa.list_(s), "eligible_agents": pa.list_(s),
        "eligible_propensities": pa.list_(f), "policy": s, "resolved": pa.bool_(),
        "handle_time": f, "csat": i, "cost": f, "utility": f,
        "decision_id": s, "time": pa.timestamp("us", tz="UTC"), "model": s,
        "model_version": s, "role": s, "workflow_used": s,
    }  # fmt: skip
    names = (*LOG_COLUMNS, *(SERVED_COLUMNS if served else ()))
    return pa.schema([(k, types[k]) for k in names])


class DecisionLogs:
    """Read-only view of a log folder; checks its description and every file's columns.

    ``meta`` is the manifest, with the simulator's ``world.json`` (when there is
    one) merged in.
    """

    def __init__(self, root: Path, meta: dict[str, Any], files: list[Path]) -> None:
        self.root = root
        self.meta = meta
        self.files = files

    @property
    def description(self) -> Path:
        """The file that describes the folder (``manifest.json``; ``world.json`` if older)."""
        own = self.root / MANIFEST
        return own if own.is_file() else self.root / LEGACY_DESCRIPTION

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> DecisionLogs:
        root = Path(path)
        if not root.is_dir():
            raise DataError(str(root), None, None, "folder not found")
        if (root / MANIFEST).is_file():
            meta = _read_manifest(root, verify)
        elif (root / LEGACY_DESCRIPTION).is_file():
            meta = _read_json(root / LEGACY_DESCRIPTION)
        else:
            raise DataError(str(root / MANIFEST), None, None, "missing: not a frontdesk log folder")
        where = str(root / MANIFEST if (root / MANIFEST).is_file() else root / LEGACY_DESCRIPTION)
        if meta.get("format_version") != LOGS_FORMAT_VERSION:
            raise DataError(
                where, None, "format_version",
                f"{meta.get('format_version')!r}; this frontdesk reads {LOGS_FORMAT_VERSION}",
            )  # fmt: skip
        for key in ("channels", "topics"):
            if key not in meta:
                raise DataError(where, None, key, "missing")
        # By name length first, so contacts-1000 comes after contacts-999.
        files = sorted(root.glob("contacts-*.parquet"), key=lambda f: (len(f.name), f.name))
        if not files:
            raise DataError(str(root), None, None, "no contacts-*.parquet files")
        logs = cls(root, meta, files)
        if verify:
            logs.verify_checksums()
            logs.check_columns()
        return logs

    def verify_checksums(self) -> None:
        """Files listed in the description must match their sha256 (an export may list none);
        where it lists any, every contacts file must be listed."""
        listed = self.meta.get("files") or {}
        unlisted = [f.name for f in self.files if listed and f.name not in listed]
        if unlisted:
            raise DataError(
                str(self.root / unlisted[0]), None, None,
                f"not listed in {self.description.name} (added after it was written?)",
            )  # fmt: skip
        for name, digest in listed.items():
            f = self.root / name
            if not f.is_file():
                raise DataError(
                    str(f), None, None, f"listed in {self.description.name} but missing"
                )
            if sha256_file(f) != digest:
                raise DataError(
                    str(f), None, None,
                    f"checksum differs from {self.description.name} (modified after it was "
                    "written)",
                )  # fmt: skip

    @property
    def world_sha256(self) -> str:
        """The folder's fingerprint: the sha256 of its description, which lists every file's
        (saved by models as ``world_sha256``, the name it had when world.json described logs)."""
        return sha256_file(self.description)

    @property
    def organisation(self) -> str | None:
        """Which organisation's contacts these are (contact ids are unique within one).

        The description's ``organisation`` when given; for simulator logs written
        without one, derived from the simulator's config and contact pool; else None.
        """
        org = self.meta.get("organisation")
        if org:
            return str(org)
        cfg, pool = self.meta.get("config"), (self.meta.get("files") or {}).get("pool.parquet")
        return simulated_organisation(cfg, pool) if cfg and pool else None

    def file_checksums(self) -> dict[str, str]:
        """sha256 of each ``contacts-*.parquet`` (from the description when listed there)."""
        listed = self.meta.get("files") or {}
        return {f.name: listed.get(f.name) or sha256_file(f) for f in self.files}

    @property
    def channels(self) -> list[str]:
        return list(self.meta["channels"])

    @property
    def channel_info(self) -> dict[str, dict[str, float]]:
        return self.meta["channels"]

    @property
    def config(self) -> dict[str, Any]:
        """The simulator's configuration (only logs written by ``simulate org`` have one)."""
        cfg = self.meta.get("config")
        if not cfg:
            raise DataError(
                str(self.root / WORLD_FILE), None, "config",
                "missing: these logs were not written by `frontdesk simulate org`, so the "
                "simulator's world (and its hidden outcome model) cannot be rebuilt from them",
            )  # fmt: skip
        return cfg

    def roster(self) -> list[AgentRecord]:
        path = self.root / "agents.json"
        if not path.is_file():
            raise DataError(str(path), None, None, "missing: the roster of agents")
        rows = json.loads(path.read_text())
        out = []
        for i, row in enumerate(rows, start=1):
            try:
                out.append(AgentRecord.from_json(row))
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(str(path), None, f"[{i}]", f"bad agent record: {exc}") from None
        return out

    def check_columns(self, required: Sequence[str] = REQUIRED_COLUMNS) -> None:
        import pyarrow.parquet as pq

        for f in self.files:
            names = set(pq.read_schema(f).names)
            for col in required:
                if col not in names:
                    raise DataError(str(f), None, col, "missing column")

    def read(self, columns: Sequence[str] | None = None):  # type: ignore[no-untyped-def]
        """Every file as one Arrow table (for training; the engines stream instead)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        return pa.concat_tables([pq.read_table(f, columns=columns) for f in self.files])

    def batches(
        self, columns: Sequence[str] | None = None, batch_size: int = 65_536
    ) -> Iterator[tuple[Path, Any]]:
        """(file, RecordBatch) pairs, streamed: never the whole log in memory."""
        import pyarrow.parquet as pq

        for f in self.files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
                yield f, batch

    def contact_days(self) -> tuple[list[str], list[int]]:
        """Every row's contact id and day, in file order (two columns read, streamed)."""
        ids: list[str] = []
        days: list[int] = []
        for _, batch in self.batches(columns=["contact_id", "day"]):
            ids.extend(str(c) for c in batch.column("contact_id").to_pylist())
            days.extend(int(d) for d in batch.column("day").to_pylist())
        return ids, days

    @staticmethod
    def profile(cols: dict[str, list[Any]], i: int) -> dict[str, Any]:
        """Row ``i``'s user profile (as a UserProfile JSON) from column lists."""
        return {k: cols[k][i] for k in PROFILE_FIELDS if cols.get(k) and cols[k][i] is not None}


def simulated_organisation(config: dict[str, Any], pool_sha256: str) -> str:
    """The identity of a simulated organisation: its whole config and its contact pool."""
    text = json.dumps({"config": config, "pool": pool_sha256}, sort_keys=True)
    return "sim-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), exc.lineno, None, f"invalid JSON: {exc.msg}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise DataError(str(path), None, None, f"unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(str(path), None, None, "must be a JSON object")
    return data


def _read_manifest(root: Path, verify: bool) -> dict[str, Any]:
    """The manifest, shape-checked (files are checked by ``verify_checksums``), with the
    simulator's world.json merged in when the manifest names one."""
    path = root / MANIFEST
    kind = None
    with contextlib.suppress(ValueError, RecursionError):  # read_manifest says what is wrong
        raw = json.loads(path.read_text(encoding="utf-8"))
        kind = raw.get("kind", INDEX) if isinstance(raw, dict) else None
    if kind != LOGS and kind in WHAT:
        raise DataError(
                str(path), None, None,
                f"not a frontdesk log folder (it is a model folder, a frontdesk {WHAT[kind]}: "
                "give the log folder it was trained on, or new logs)",
            )  # fmt: skip
    try:
        meta = read_manifest(root, verify=False, kind=LOGS)
    except IndexIntegrityError as exc:
        raise DataError(str(path), None, None, f"not a frontdesk log folder: {exc}") from None
    world = meta.get("world")
    if world:
        if world != WORLD_FILE:
            raise DataError(str(root / MANIFEST), None, "world", f"must be {WORLD_FILE!r}")
        extra = _read_json(root / WORLD_FILE)
        meta = {**extra, **meta}
    return meta
