"""DurableParquetWriter: rows handed over without waiting, on disk as complete Parquet files.

The request path only appends to a bounded in-memory buffer; one background
thread turns the buffer into files. A file is written under a temporary name
(``.NAME.tmp``), fsynced, renamed into place and its folder fsynced, so every
``*.parquet`` present is complete, and pages carry CRC checksums that readers
verify. A file is cut when ``flush_rows`` rows are waiting or the oldest has
waited ``flush_seconds``, so a ``kill -9`` loses at most the rows accepted in
the last ``flush_seconds`` (plus the write in progress), never more than
``buffer_rows``. When the buffer is full, new rows are dropped and counted
(``when_full="drop"``) or the caller waits for room (``"block"``).

What the request path hands over is built into Arrow columns by the writer
thread when a file is cut, many requests at a time (``DeferredRows.to_arrow``):
the Python work it does holds the GIL that requests need, so it is kept to a
few list appends per field, and the Parquet encoding, compression and writes
run inside pyarrow without the GIL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("frontdesk.decisions")
WHEN_FULL = ("drop", "block")
PROCESS_TOKEN = uuid.uuid4().hex[:8]  # tells this process from an earlier one with its pid
CHUNK_ROWS = 1024  # handed-over rows built into one Arrow table at a time


class WriterClosed(RuntimeError):
    """The writer was closed; nothing more is accepted."""


class DeferredRows:
    """Rows handed over as references and built by the writer thread.

    ``to_arrow`` builds many items of one class at once; the default goes through
    dict rows (``rows()``), a subclass may build the columns directly.
    """

    __slots__ = ()

    def __len__(self) -> int:
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @classmethod
    def to_arrow(cls, items: Sequence[DeferredRows], schema: Any) -> Any:
        """``items`` (all of this class) as one Arrow table of ``schema``; raises when any
        of them cannot be built (the writer then builds fewer at a time, down to the one
        at fault)."""
        import pyarrow as pa

        return pa.Table.from_pylist([r for item in items for r in item.rows()], schema=schema)


class DurableParquetWriter:
    """Appends rows (dicts of a fixed Arrow schema) to ``folder/PREFIX-*.parquet``."""

    def __init__(
        self,
        folder: str | Path,
        schema: Any,
        prefix: str,
        *,
        flush_rows: int = 1000,
        flush_seconds: float = 2.0,
        buffer_rows: int = 20_000,
        when_full: str = "drop",
        on_drop: Callable[[int], None] | None = None,
        on_file: Callable[[int], None] | None = None,
    ) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"when_full must be one of {', '.join(WHEN_FULL)}")
        if not (1 <= flush_rows <= buffer_rows) or flush_seconds <= 0:
            raise ValueError("need 1 <= flush_rows <= buffer_rows and flush_seconds > 0")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.prefix = prefix
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self.buffer_rows, self.when_full = buffer_rows, when_full
        self.on_drop, self.on_file = on_drop, on_file
        self.written_rows = self.dropped_rows = self.files = self.write_errors = 0
        remove_dead_temp_files(self.folder, prefix)
        warm_up(schema)
        self._items: deque[tuple[float, Any]] = deque()  # (when accepted, rows)
        self._held = 0  # rows accepted and not yet on disk (queued or being written)
        self._accepted = 0  # rows accepted so far (a sequence number for waiters)
        self._durable = 0  # of those, how many are on disk or dropped by a failed write
        self._lock = threading.RLock()  # taken directly on the request path (no Python frame)
        self._cond = threading.Condition(self._lock)
        self._closing = False
        self._seq = 0
        self._thread = threading.Thread(target=self._run, name=f"frontdesk-{prefix}", daemon=True)
        self._thread.start()

    # -- the request side ----------------------------------------------------------------------

    def submit(self, rows: Sequence[dict[str, Any]] | DeferredRows) -> int | None:
        """Accept ``rows`` (all or none); returns a ticket for ``wait``, None if dropped.

        ``DeferredRows`` are built by the writer thread, just before they are written:
        the caller (a request) only hands over references.
        """
        n = len(rows)
        with self._lock:
            if self._closing:
                raise WriterClosed(f"the {self.prefix} writer is closed")
            while self._held + n > self.buffer_rows:
                if self.when_full == "drop" or n > self.buffer_rows:
                    self.dropped_rows += n
                    if self.on_drop is not None:
                        self.on_drop(n)
                    return None
                self._cond.wait()
                if self._closing:
                    raise WriterClosed(f"the {self.prefix} writer is closed")
            self._items.append(
                (time.monotonic(), rows if isinstance(rows, DeferredRows) else list(rows))
            )
            self._held += n
            self._accepted += n
            ticket = self._accepted
            if len(self._items) == 1 or self._held >= self.flush_rows:
                self._cond.notify_all()  # start the clock of the oldest row, or cut now
            return ticket

    def wait_for_room(self, n: int, timeout: float | None = None) -> bool:
        """Block until ``n`` more rows fit in the buffer (False on ``timeout``); at once for
        more rows than the buffer holds (``submit`` drops those).

        A caller that must not block (an event loop) checks ``has_room`` first
        and runs this in a worker thread only when the buffer is full.
        """
        with self._cond:
            return self._cond.wait_for(
                lambda: self._closing or n > self.buffer_rows or self._held + n <= self.buffer_rows,
                timeout,
            )

    def has_room(self, n: int) -> bool:
        """Whether ``n`` more rows fit now."""
        return self._held + n <= self.buffer_rows

    def wait(self, ticket: int, timeout: float | None = None, urgent: bool = True) -> bool:
        """Block until the rows of ``ticket`` are on disk (True); False when ``timeout``
        passes or a write failed since they were accepted (the caller must not claim them
        written).

        ``urgent`` cuts a file now instead of at the next size or time limit.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if urgent and self._durable < ticket and self._items:
                self._urgent = True
                self._cond.notify_all()
            while self._durable < ticket:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            self._urgent = False
            # False too when a write failed after this ticket's rows were accepted
            return self._failed_through < ticket

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Everything accepted so far on disk."""
        with self._cond:
            ticket = self._accepted
        return self.wait(ticket, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is buffered, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- the writer thread ---------------------------------------------------------------------

    _urgent = False
    _failed_through = 0  # the last ticket whose rows were in a write that failed

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._items:
                        age = time.monotonic() - self._items[0][0]
                        if (
                            self._closing
                            or self._urgent
                            or self._held >= self.flush_rows
                            or age >= self.flush_seconds
                        ):
                            break
                        self._cond.wait(self.flush_seconds - age)
                    elif self._closing:
                        return
                    else:
                        self._cond.wait()
                self._urgent = False
                taken = [self._items.popleft()[1] for _ in range(len(self._items))]
            n = sum(len(t) for t in taken)
            tables, ok = self._built(taken)
            del taken  # what the requests handed over is let go before the write
            table = _concat(tables)
            if table is not None and table.num_rows:  # rows that failed to build are counted
                ok = self._write(table) and ok
            with self._cond:
                self._held -= n
                self._durable += n
                if not ok:
                    self._failed_through = self._durable
                self._cond.notify_all()

    def _built(self, taken: list[Any]) -> tuple[list[Any], bool]:
        """What was taken from the buffer as Arrow tables, and False when plain rows
        failed to convert (a failed write for those who wait on them). Deferred rows that
        fail to build are dropped and counted; the rest are still written."""
        import pyarrow as pa

        tables: list[Any] = []
        ok = True
        chunk: list[Any] = []
        size = 0
        for item in taken + [None]:  # None: the end, which closes the last chunk
            if chunk and (
                item is None or type(item) is not type(chunk[0]) or size + len(item) > CHUNK_ROWS
            ):
                if isinstance(chunk[0], DeferredRows):
                    tables += self._deferred(chunk)
                else:
                    plain = [r for rows in chunk for r in rows]
                    try:
                        tables.append(pa.Table.from_pylist(plain, schema=self.schema))
                    except Exception:  # noqa: BLE001 - these rows are lost, not the others
                        log.exception("%s: could not convert %d rows", self.prefix, len(plain))
                        self._count_lost(len(plain))
                        ok = False
                chunk, size = [], 0
            if item is not None:
                chunk.append(item)
                size += len(item)
        return tables, ok

    def _deferred(self, chunk: list[Any]) -> list[Any]:
        """Tables of deferred items of one class: all at once, else each half on its own,
        down to the items at fault (an item that cannot be built costs only itself, and
        the others are still built many at a time)."""
        try:
            return [type(chunk[0]).to_arrow(chunk, self.schema)]
        except Exception:  # noqa: BLE001 - one bad record never costs the others
            if len(chunk) == 1:
                log.exception("%s: could not build %d rows", self.prefix, len(chunk[0]))
                self._count_lost(len(chunk[0]))
                return []
        half = len(chunk) // 2
        return self._deferred(chunk[:half]) + self._deferred(chunk[half:])

    def _count_lost(self, n: int) -> None:
        with self._cond:
            self.write_errors += 1
            self.dropped_rows += n
        if self.on_drop is not None:
            self.on_drop(n)

    def _write(self, table: Any) -> bool:
        self._seq += 1
        n = table.num_rows
        try:
            write_rows(self.folder, self.prefix, self.schema, table, self._seq)
        except Exception:  # noqa: BLE001 - a failed write loses these rows, not the server
            log.exception("%s: could not write %d rows to %s", self.prefix, n, self.folder)
            self._count_lost(n)
            return False
        self.written_rows += n
        self.files += 1
        if self.on_file is not None:
            self.on_file(n)
        return True


def _concat(tables: list[Any]) -> Any:
    """Tables of one schema as one (their columns chunked, nothing copied); None if none."""
    import pyarrow as pa

    if not tables:
        return None
    return tables[0] if len(tables) == 1 else pa.concat_tables(tables)


def write_rows(folder: Path, prefix: str, schema: Any, rows: Any, seq: int) -> Path:
    """One complete Parquet file of ``rows`` (dicts, or an Arrow table of ``schema``):
    written aside, fsynced, renamed, folder fsynced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{prefix}-{stamp}-{os.getpid()}.{PROCESS_TOKEN}-{seq:06d}.parquet"
    tmp = folder / f".{name}.tmp"
    try:
        table = (
            rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=schema)
        )  # a missing key is a null
        if table.schema != schema:
            raise ValueError(f"the rows are not of the {prefix} schema")
        pq.write_table(table, tmp, compression=compression(table), write_page_checksum=True)
        fsync_path(tmp)
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(folder)
    return folder / name


def compression(table: Any) -> dict[str, str]:
    """Per column: zstd, or none for a column without a value (its pages hold only null
    flags, and each compressed column costs a compressor's setup: most of a small file's
    encoding time)."""
    return {
        leaf: "none" if column.null_count == len(column) else "zstd"
        for field, column in zip(table.schema, table.columns, strict=True)
        for leaf in _leaf_paths(field.name, field.type)
    }


def _leaf_paths(path: str, type_: Any) -> list[str]:
    """The Parquet column paths of an Arrow field (what per-column options are keyed by)."""
    import pyarrow as pa

    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return _leaf_paths(f"{path}.list.element", type_.value_type)
    if pa.types.is_struct(type_):
        return [leaf for f in type_ for leaf in _leaf_paths(f"{path}.{f.name}", f.type)]
    return [path]


def warm_up(schema: Any) -> None:
    """Convert and encode an empty table of ``schema`` in memory: what pyarrow loads on
    first use (pandas among it, seconds of GIL on a busy machine) is loaded now, before
    a server answers, not by the writer thread under load."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([], schema=schema)
    pq.write_table(table, pa.BufferOutputStream(), compression="zstd", write_page_checksum=True)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a rename is durable once its folder is synced)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_dead_temp_files(folder: Path, prefix: str) -> int:
    """Remove ``.PREFIX-*.tmp`` files of writers no longer running.

    A temporary name holds its writer's pid and process token: the file is kept
    only while that process runs (the same pid with another token is an
    earlier process, as after a container restart).
    """
    removed = 0
    for f in folder.glob(f".{prefix}-*.parquet.tmp"):
        pid_text, _, token = f.name.split("-")[-2].partition(".")
        if pid_text.isdigit():
            pid = int(pid_text)
            mine = pid == os.getpid()
            if (mine and token == PROCESS_TOKEN) or (not mine and _alive(pid)):
                continue
        with contextlib.suppress(OSError):
            f.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
