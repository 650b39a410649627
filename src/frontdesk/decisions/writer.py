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


class WriterClosed(RuntimeError):
    """The writer was closed; nothing more is accepted."""


class DeferredRows:
    """Rows handed over as references and built by the writer thread (``rows()``)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def rows(self) -> list[dict[str, Any]]:
        raise NotImplementedError


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
        self._items: deque[tuple[float, list[dict[str, Any]]]] = deque()
        self._held = 0  # rows accepted and not yet on disk (queued or being written)
        self._accepted = 0  # rows accepted so far (a sequence number for waiters)
        self._durable = 0  # of those, how many are on disk or dropped by a failed write
        self._cond = threading.Condition()
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
        with self._cond:
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
            rows = self._built(taken)
            ok = self._write(rows) if rows else True  # rows that failed to build are counted
            with self._cond:
                self._held -= n
                self._durable += n
                if not ok:
                    self._failed_through = self._durable
                self._cond.notify_all()

    def _built(self, taken: list[Any]) -> list[dict[str, Any]]:
        """The rows of what was taken from the buffer; deferred rows that fail to build are
        dropped and counted (the rest are still written)."""
        rows: list[dict[str, Any]] = []
        for item in taken:
            if not isinstance(item, DeferredRows):
                rows.extend(item)
                continue
            try:
                rows.extend(item.rows())
            except Exception:  # noqa: BLE001 - one bad record never costs the others
                log.exception("%s: could not build %d rows", self.prefix, len(item))
                with self._cond:
                    self.write_errors += 1
                    self.dropped_rows += len(item)
                if self.on_drop is not None:
                    self.on_drop(len(item))
        return rows

    def _write(self, rows: list[dict[str, Any]]) -> bool:
        self._seq += 1
        try:
            write_rows(self.folder, self.prefix, self.schema, rows, self._seq)
        except Exception:  # noqa: BLE001 - a failed write loses these rows, not the server
            log.exception("%s: could not write %d rows to %s", self.prefix, len(rows), self.folder)
            self.write_errors += 1
            self.dropped_rows += len(rows)
            if self.on_drop is not None:
                self.on_drop(len(rows))
            return False
        self.written_rows += len(rows)
        self.files += 1
        if self.on_file is not None:
            self.on_file(len(rows))
        return True


def write_rows(
    folder: Path, prefix: str, schema: Any, rows: list[dict[str, Any]], seq: int
) -> Path:
    """One complete Parquet file of ``rows``: written aside, fsynced, renamed, folder fsynced."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    name = f"{prefix}-{stamp}-{os.getpid()}.{PROCESS_TOKEN}-{seq:06d}.parquet"
    tmp = folder / f".{name}.tmp"
    try:
        table = pa.Table.from_pylist(rows, schema=schema)  # a missing key is a null
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
        fsync_path(tmp)
        os.replace(tmp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_path(folder)
    return folder / name


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
