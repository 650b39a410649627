"""DecisionLogs: a folder of logged routing decisions (Parquet) and what describes it.

Layout (written by ``frontdesk simulate org``; a real organisation's export
needs the same columns): ``world.json`` (format version, channels with cost,
base minutes and agent share, topics, file checksums, and optionally the
``organisation`` the logs belong to), ``agents.json`` (the roster: channels,
languages, capacity, cost per minute, listed skills per topic) and one or
more ``contacts-*.parquet`` files, one row per decision.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import DataError
from .schema import AgentRecord

LOGS_FORMAT_VERSION = 1
REQUIRED_COLUMNS = (
    "contact_id", "day", "wait_min", "segment", "country", "plan", "tenure_days", "language",
    "prior_contacts", "text", "turns", "topic", "channel", "agent_id", "propensity",
    "eligible_channels", "eligible_agents", "resolved", "handle_time", "csat", "cost",
)  # fmt: skip
PROFILE_FIELDS = ("segment", "country", "plan", "tenure_days", "language", "prior_contacts")


class DecisionLogs:
    """Read-only view of a log folder; checks its description and every file's columns."""

    def __init__(self, root: Path, meta: dict[str, Any], files: list[Path]) -> None:
        self.root = root
        self.meta = meta
        self.files = files

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> DecisionLogs:
        root = Path(path)
        meta_path = root / "world.json"
        if not root.is_dir():
            raise DataError(str(root), None, None, "folder not found")
        if not meta_path.is_file():
            hint = (
                " (it is a model folder: give the log folder it was trained on, or new logs)"
                if (root / "manifest.json").is_file()
                else ""
            )
            raise DataError(
                str(meta_path), None, None, f"missing: not a frontdesk log folder{hint}"
            )
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(str(meta_path), exc.lineno, None, f"invalid JSON: {exc.msg}") from None
        if meta.get("format_version") != LOGS_FORMAT_VERSION:
            raise DataError(
                str(meta_path), None, "format_version",
                f"{meta.get('format_version')!r}; this frontdesk reads {LOGS_FORMAT_VERSION}",
            )  # fmt: skip
        for key in ("channels", "topics"):
            if key not in meta:
                raise DataError(str(meta_path), None, key, "missing")
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
        """Files listed in world.json must match their sha256 (a log export may list none)."""
        from .artifacts import sha256_file

        for name, digest in (self.meta.get("files") or {}).items():
            f = self.root / name
            if not f.is_file():
                raise DataError(str(f), None, None, "listed in world.json but missing")
            if sha256_file(f) != digest:
                raise DataError(
                    str(f),
                    None,
                    None,
                    "checksum differs from world.json (modified after it was written)",
                )

    @property
    def world_sha256(self) -> str:
        """Fingerprint of world.json: which organisation (seed, config, files) these logs are."""
        from .artifacts import sha256_file

        return sha256_file(self.root / "world.json")

    @property
    def organisation(self) -> str | None:
        """Which organisation's contacts these are (contact ids are unique within one).

        ``world.json``'s ``organisation`` when given; for simulator logs written
        without one, derived from the simulator's config and contact pool; else None.
        """
        org = self.meta.get("organisation")
        if org:
            return str(org)
        cfg, pool = self.meta.get("config"), (self.meta.get("files") or {}).get("pool.parquet")
        return simulated_organisation(cfg, pool) if cfg and pool else None

    def file_checksums(self) -> dict[str, str]:
        """sha256 of each ``contacts-*.parquet`` (from world.json when listed there)."""
        from .artifacts import sha256_file

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
                str(self.root / "world.json"), None, "config",
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
