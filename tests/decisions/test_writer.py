"""DurableParquetWriter: files cut by size and time, a bounded buffer, nothing partial on disk."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from frontdesk.decisions.store import read_verified
from frontdesk.decisions.writer import DurableParquetWriter, remove_dead_temp_files

SCHEMA = pa.schema([("i", pa.int64())])


def rows(folder: Path) -> list[int]:
    return [
        r for f in sorted(folder.glob("t-*.parquet")) for r in read_verified(f)["i"].to_pylist()
    ]


def test_a_file_is_cut_by_rows_and_by_time(tmp_path: Path) -> None:
    w = DurableParquetWriter(
        tmp_path, SCHEMA, "t", flush_rows=10, flush_seconds=0.3, buffer_rows=100
    )
    w.submit([{"i": i} for i in range(10)])
    assert w.wait(10, timeout=10, urgent=False)  # ten rows: cut without waiting for the clock
    w.submit([{"i": 10}])
    start = time.monotonic()
    assert w.wait(11, timeout=10, urgent=False)
    assert time.monotonic() - start >= 0.2  # one row waited for the time limit
    w.close()
    assert rows(tmp_path) == list(range(11)) and w.files == 2
    assert not list(tmp_path.glob(".*"))


def test_a_full_buffer_drops_and_counts_or_blocks(tmp_path: Path) -> None:
    dropped = []
    w = DurableParquetWriter(
        tmp_path / "d", SCHEMA, "t", flush_rows=5, flush_seconds=60, buffer_rows=5,
        on_drop=dropped.append,
    )  # fmt: skip
    w._cond.acquire()  # hold the writer thread away, as a slow disk would
    try:
        assert w.submit([{"i": i} for i in range(5)]) == 5
        assert w.submit([{"i": 5}]) is None and dropped == [1] and w.dropped_rows == 1
    finally:
        w._cond.release()
    w.close()
    assert rows(tmp_path / "d") == list(range(5))
    b = DurableParquetWriter(tmp_path / "b", SCHEMA, "t", flush_rows=2, flush_seconds=60,
                             buffer_rows=2, when_full="block")  # fmt: skip
    for i in range(9):  # each submit past the bound waits for a write instead of dropping
        b.submit([{"i": i}])
    b.close()
    assert rows(tmp_path / "b") == list(range(9)) and b.dropped_rows == 0


def test_room_is_told_without_blocking_and_waited_for_in_a_thread(tmp_path: Path) -> None:
    w = DurableParquetWriter(tmp_path, SCHEMA, "t", flush_rows=3, flush_seconds=60,
                             buffer_rows=3, when_full="block")  # fmt: skip
    w._cond.acquire()  # hold the writer thread away, as a slow disk would
    try:
        w.submit([{"i": i} for i in range(3)])
        assert not w.has_room(1) and w.has_room(0)
        assert w.wait_for_room(4, timeout=0)  # more than the buffer holds: never waited for
    finally:
        w._cond.release()
    assert w.wait_for_room(1, timeout=10) and w.has_room(3)  # the full file was written
    w.close()
    assert rows(tmp_path) == [0, 1, 2]


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f".t-20260101T000000000000-{dead}.abcd1234-000001.parquet.tmp").write_bytes(b"x")
    live = tmp_path / f".t-20260101T000000000000-{os.getppid()}.abcd1234-000001.parquet.tmp"
    live.write_bytes(b"x")
    assert remove_dead_temp_files(tmp_path, "t") == 1 and live.exists()


CHILD = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from frontdesk.decisions.writer import DurableParquetWriter
    w = DurableParquetWriter(sys.argv[1], pa.schema([("i", pa.int64())]), "t",
                             flush_rows=5000, flush_seconds=0.5, buffer_rows=20000)
    i = 0
    while True:
        w.submit([{"i": j} for j in range(i, i + 50)])
        i += 50
        print(i, flush=True)
        time.sleep(0.05)  # 1,000 rows a second
    """
)


@pytest.mark.slow
def test_kill_9_loses_at_most_the_documented_bound_and_a_restart_resumes(tmp_path: Path) -> None:
    for attempt in range(3):
        folder = tmp_path / f"run{attempt}"
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(folder)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        accepted, start = 0, time.monotonic()
        assert proc.stdout is not None
        while time.monotonic() - start < 3.0 + attempt:
            accepted = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        on_disk = rows(folder)  # every file present reads, page checksums verified
        assert on_disk == list(range(len(on_disk)))  # a prefix: nothing out of order or torn
        lost = accepted - len(on_disk)
        # the bound: rows accepted in the last flush_seconds (0.5 s at 1,000 rows/s), plus
        # a write in progress; 1.5 s of rows leaves room for a loaded machine
        assert lost <= 1500, (lost, accepted)
        w = DurableParquetWriter(folder, SCHEMA, "t", flush_rows=1, flush_seconds=1)
        w.submit([{"i": -1}])
        w.close()
        assert not list(folder.glob(".*.tmp")) and rows(folder)[-1] == -1


def test_a_failed_write_is_never_reported_as_on_disk(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import frontdesk.decisions.writer as writer

    def disk_full(*_a, **_k):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    w = DurableParquetWriter(tmp_path, SCHEMA, "t", flush_rows=1, flush_seconds=1, buffer_rows=5)
    monkeypatch.setattr(writer, "write_rows", disk_full)
    assert w.wait(w.submit([{"i": 1}]), timeout=10) is False
    assert w.write_errors == 1 and w.dropped_rows == 1
    monkeypatch.undo()
    assert w.wait(w.submit([{"i": 2}]), timeout=10) is True
    w.close()
    assert rows(tmp_path) == [2]


def test_deferred_rows_are_built_by_the_writer_and_a_bad_one_costs_only_itself(
    tmp_path: Path,
) -> None:
    from frontdesk.decisions.writer import DeferredRows

    class Later(DeferredRows):
        def __init__(self, values: list[int], fail: bool = False) -> None:
            self.values, self.fail, self.built = values, fail, False

        def __len__(self) -> int:
            return len(self.values)

        def rows(self) -> list[dict]:
            self.built = True
            if self.fail:
                raise ValueError("a record that cannot be built")
            return [{"i": v} for v in self.values]

    w = DurableParquetWriter(tmp_path, SCHEMA, "t", flush_rows=100, flush_seconds=60)
    good, bad = Later([0, 1]), Later([2], fail=True)
    w.submit(good)
    w.submit(bad)
    ticket = w.submit([{"i": 3}])
    assert not good.built  # nothing is built on the caller's side
    assert w.wait(ticket, timeout=10)  # the rows that were built are on disk
    w.close()
    assert rows(tmp_path) == [0, 1, 3] and w.dropped_rows == 1 and w.write_errors == 1


def test_only_columns_with_a_value_are_compressed(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    schema = pa.schema(
        [("i", pa.int64()), ("none", pa.string()), ("tags", pa.list_(pa.string())),
         ("pairs", pa.list_(pa.struct([("a", pa.string()), ("b", pa.float64())])))]
    )  # fmt: skip
    w = DurableParquetWriter(tmp_path, schema, "t", flush_rows=10, flush_seconds=60)
    rows = [{"i": i, "tags": ["x"] * i, "pairs": [{"a": "p", "b": 0.5}]} for i in range(10)]
    assert w.wait(w.submit(rows), timeout=10)
    w.close()
    (f,) = tmp_path.glob("t-*.parquet")
    meta = pq.ParquetFile(f).metadata.row_group(0)
    codecs = {meta.column(c).path_in_schema: meta.column(c).compression
              for c in range(meta.num_columns)}  # fmt: skip
    assert codecs == {"i": "ZSTD", "none": "UNCOMPRESSED", "tags.list.element": "ZSTD",
                      "pairs.list.element.a": "ZSTD", "pairs.list.element.b": "ZSTD"}  # fmt: skip
    assert read_verified(f).to_pylist() == [{**r, "none": None} for r in rows]


def test_compression_names_every_column_of_the_log_files(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from frontdesk.decisions.records import decision_schema, outcome_schema
    from frontdesk.decisions.writer import compression

    for schema in (decision_schema(), outcome_schema()):
        pq.write_table(schema.empty_table(), tmp_path / "x.parquet")
        parquet = pq.ParquetFile(tmp_path / "x.parquet").metadata.schema
        assert set(compression(schema.empty_table())) == {
            parquet.column(c).path for c in range(len(parquet))
        }
