"""DecisionLogDir: the folder ``frontdesk serve --decision-log DIR`` writes, and its readers.

Layout::

    DIR/decision-log.json          format version, organisation, when it was started
    DIR/decisions/decisions-*.parquet
    DIR/outcomes/outcomes-*.parquet
    DIR/models/<name>-<version>.json   each served version's description (channels,
                                       topics and roster of a router), written once

Every Parquet file is complete (written aside, fsynced, renamed) and its pages
carry CRC checksums, which every read here verifies.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError
from .records import DECISION_LOG_FORMAT_VERSION, decision_schema, outcome_schema
from .writer import fsync_path

DESCRIPTION = "decision-log.json"
DECISIONS = "decisions"
OUTCOMES = "outcomes"
MODELS = "models"


class DecisionLogDir:
    """A decision-log folder: created by the server, read by ``logs join`` and ``logs info``."""

    def __init__(self, root: Path, meta: dict[str, Any]) -> None:
        self.root = root
        self.meta = meta

    @classmethod
    def create(cls, path: str | Path, organisation: str | None = None) -> DecisionLogDir:
        """Open ``path`` for writing, creating it (and its description) when new."""
        root = Path(path)
        if root.exists() and not root.is_dir():
            raise DataError(str(root), None, None, "not a folder")
        if root.is_dir() and (root / DESCRIPTION).is_file():
            return cls.open(root)
        if root.is_dir() and any(root.iterdir()):
            raise DataError(
                str(root), None, None,
                f"not empty and not a decision log (no {DESCRIPTION}); give a new folder",
            )  # fmt: skip
        for sub in (DECISIONS, OUTCOMES, MODELS):
            (root / sub).mkdir(parents=True, exist_ok=True)
        meta = {
            "kind": "frontdesk-decision-log",
            "format_version": DECISION_LOG_FORMAT_VERSION,
            "organisation": organisation or f"log-{uuid.uuid4().hex[:16]}",
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        write_json_durably(root / DESCRIPTION, meta)
        return cls(root, meta)

    @classmethod
    def open(cls, path: str | Path) -> DecisionLogDir:
        root = Path(path)
        f = root / DESCRIPTION
        if not root.is_dir():
            raise DataError(str(root), None, None, "folder not found")
        if not f.is_file():
            raise DataError(
                str(f), None, None,
                "missing: not a decision log (`frontdesk serve --decision-log DIR` writes one)",
            )  # fmt: skip
        try:
            meta = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(str(f), None, None, f"unreadable: {exc}") from None
        if not isinstance(meta, dict) or meta.get("kind") != "frontdesk-decision-log":
            raise DataError(str(f), None, "kind", "not a frontdesk decision log")
        if meta.get("format_version") != DECISION_LOG_FORMAT_VERSION:
            raise DataError(
                str(f), None, "format_version",
                f"{meta.get('format_version')!r}; this frontdesk reads "
                f"{DECISION_LOG_FORMAT_VERSION}",
            )  # fmt: skip
        for sub in (DECISIONS, OUTCOMES, MODELS):
            (root / sub).mkdir(exist_ok=True)
        return cls(root, meta)

    @property
    def organisation(self) -> str:
        return str(self.meta["organisation"])

    def files(self, sub: str) -> list[Path]:
        """The complete Parquet files of ``decisions`` or ``outcomes``, in time order."""
        return sorted((self.root / sub).glob(f"{sub}-*.parquet"))

    def temp_files(self) -> list[Path]:
        return sorted(p for sub in (DECISIONS, OUTCOMES) for p in (self.root / sub).glob(".*.tmp"))

    def describe_model(self, name: str, version: str, description: dict[str, Any]) -> None:
        """Record a served version's description (once; a changed one is rewritten)."""
        f = self.root / MODELS / f"{name}-{version}.json"
        body = {"model": name, "version": version, **description}
        if f.is_file():
            try:
                if json.loads(f.read_text()) == body:
                    return
            except ValueError:
                pass
        write_json_durably(f, body)

    def models(self) -> dict[tuple[str, str], dict[str, Any]]:
        out = {}
        for f in sorted((self.root / MODELS).glob("*.json")):
            try:
                d = json.loads(f.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise DataError(str(f), None, None, f"unreadable: {exc}") from None
            out[(str(d.get("model")), str(d.get("version")))] = d
        return out

    def read(self, sub: str, columns: list[str] | None = None) -> Any:
        """Every file of ``sub`` as one Arrow table, each file's page checksums verified."""
        import pyarrow as pa

        schema = decision_schema() if sub == DECISIONS else outcome_schema()
        tables = [t for _, t in self.tables(sub, columns)]
        if not tables:
            empty = schema if columns is None else pa.schema([schema.field(c) for c in columns])
            return empty.empty_table()
        return pa.concat_tables(tables)

    def tables(self, sub: str, columns: list[str] | None = None) -> Iterator[tuple[Path, Any]]:
        """Each file's table; its schema must be the log's (page CRCs do not cover the footer)."""
        schema = decision_schema() if sub == DECISIONS else outcome_schema()
        want = [schema.field(c) for c in columns] if columns is not None else list(schema)
        for f in self.files(sub):
            t = read_verified(f, columns)
            if list(t.schema) != want:
                raise DataError(str(f), None, None, "damaged Parquet file: not the log's columns")
            yield f, t


def read_verified(path: Path, columns: list[str] | None = None) -> Any:
    """A Parquet file, every page's CRC checked; a damaged file names itself."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(str(path), None, None, f"damaged Parquet file: {exc}") from None


def write_json_durably(path: Path, data: dict[str, Any]) -> None:
    """Write a JSON file aside, fsync it, rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)
