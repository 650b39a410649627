"""``frontdesk logs ingest``: outcomes from a ticketing system's export into a decision log.

The same records as ``POST /v1/outcomes`` (``records.OUTCOME_FIELDS``), from
CSV (a header row; empty cells are missing values), JSON Lines or Parquet.
Every record is checked first; one bad record refuses the whole file (with
its line and field) and nothing is written. A good file becomes one outcomes
file, complete or absent.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
from pathlib import Path
from typing import Any

from ..errors import DataError
from .records import OutcomeError, check_outcome, outcome_rows, outcome_schema
from .store import OUTCOMES, DecisionLogDir
from .writer import write_rows

FORMATS = (".csv", ".jsonl", ".parquet")
TRUE, FALSE = {"true", "1", "yes", "y", "t"}, {"false", "0", "no", "n", "f"}


def ingest_outcomes(log_dir: str | Path, source: str | Path) -> dict[str, Any]:
    """Validate every record of ``source`` and append them to ``log_dir``; the counts."""
    store = DecisionLogDir.open(log_dir)
    path = Path(source)
    if not path.is_file():
        raise DataError(str(path), None, None, "file not found")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(str(path), None, None, f"unknown format; use {', '.join(FORMATS)}")
    checked = []
    for line, record in _records(path, suffix):
        try:
            checked.append(check_outcome(record, line))
        except OutcomeError as exc:
            raise DataError(str(path), line, exc.field, exc.message) from None
    if not checked:
        raise DataError(str(path), None, None, "no outcome records")
    rows = outcome_rows(checked, f"ingest:{path.name}", itertools.count())
    written = write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), rows, 0)
    return {"outcomes": len(rows), "file": str(written), "source": str(path)}


def _records(path: Path, suffix: str):  # type: ignore[no-untyped-def]
    """(line number, record dict) pairs; line numbers as a reader would count them."""
    if suffix == ".jsonl":
        with path.open(encoding="utf-8-sig") as fh:  # a byte-order mark, as exports write
            try:
                for i, raw in enumerate(fh, start=1):
                    if not raw.strip():
                        continue
                    try:
                        rec = json.loads(raw, parse_constant=_no_constant)
                    except (ValueError, RecursionError) as exc:
                        raise DataError(str(path), i, None, f"invalid JSON: {exc}") from None
                    yield i, rec
            except UnicodeDecodeError as exc:
                raise DataError(str(path), None, None, f"not UTF-8: {exc}") from None
    elif suffix == ".csv":
        # utf-8-sig: spreadsheets and ticketing exports often begin with a byte-order mark
        with path.open(encoding="utf-8-sig", newline="") as fh:
            try:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                seen = {h for h in header if header.count(h) > 1}
                if seen:
                    raise DataError(str(path), 1, min(seen), "appears twice in the header")
                for row in reader:
                    if None in row:
                        raise DataError(
                            str(path), reader.line_num, None, "more cells than the header"
                        )
                    short = [k for k, v in row.items() if v is None]
                    if short:
                        raise DataError(
                            str(path),
                            reader.line_num,
                            short[0],
                            f"fewer cells than the header ({len(header) - len(short)} of "
                            f"{len(header)})",
                        )
                    yield reader.line_num, {k: _cell(k, v) for k, v in row.items() if v != ""}
            except UnicodeDecodeError as exc:
                raise DataError(str(path), None, None, f"not UTF-8: {exc}") from None
            except csv.Error as exc:
                raise DataError(str(path), None, None, f"invalid CSV: {exc}") from None
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(str(path), None, None, f"unreadable Parquet: {exc}") from None
        for i, rec in enumerate(table.to_pylist(), start=1):
            yield i, {k: v for k, v in rec.items() if not _missing(v)}


def _cell(key: str, value: str) -> Any:
    """A CSV cell as the type its field needs (left as text when it is not one)."""
    v = value.strip()
    if key == "resolved":
        return True if v.lower() in TRUE else False if v.lower() in FALSE else v
    if key in ("csat", "handle_time", "cost"):
        try:
            x = float(v)
        except ValueError:
            return v
        return int(x) if key == "csat" and x.is_integer() else x
    return value


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
