"""What the decision log costs `/v1/suggest`, and what a `kill -9` under load loses.

Throughput: two `frontdesk serve` processes on 127.0.0.1 serving the same
index (micro-batching 32 / 2 ms), one with `--decision-log`, one without,
driven in turn (off, on, off, on, ...) at one concurrency, ROUNDS times each;
the medians of req/s and their ratio. Crash: a server with a decision log
under the same load is killed with SIGKILL after KILL_AFTER seconds; every
decision id a client received is looked up in the files left: lost = ids
answered but not on disk, against the bound (the ids answered in the last
`--log-flush-seconds` before the kill, plus a write in progress). Then
`frontdesk logs info` must verify every file, and a restarted server on the
same folder must log again (and remove the dead writer's temporary files).

    python benchmarks/decision_log_cost.py [--index IDX --queries Q.jsonl]
        [--concurrency 12] [--rounds 10] [--seconds 5] [--kill-after 6] [--no-crash]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve_load import demo_questions, free_port, start_server  # noqa: E402

FD = [sys.executable, "-m", "frontdesk"]


def start(models: Path, port: int, log_dir: Path | None) -> subprocess.Popen:
    return start_server(models, port, ("--decision-log", str(log_dir)) if log_dir else ())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(
    port: int, bodies: list[bytes], stop: asyncio.Event, out: list, offset: int
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while not stop.is_set():
            body = bodies[i % len(bodies)]
            i += 1
            writer.write(
                (f"POST /v1/suggest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                 f"\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
            )  # fmt: skip
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            payload = await reader.readexactly(length)
            ok = bool(status) and status.split()[1] == b"200"
            did = json.loads(payload).get("decision_id") if ok else None
            out.append((time.monotonic(), ok, did))
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the server was killed
    finally:
        writer.close()


async def drive(port: int, bodies: list[bytes], concurrency: int, seconds: float,
                kill: subprocess.Popen | None = None) -> list:  # fmt: skip
    out: list = []
    stop = asyncio.Event()
    step = max(1, len(bodies) // concurrency)
    tasks = [
        asyncio.create_task(client(port, bodies, stop, out, j * step)) for j in range(concurrency)
    ]
    await asyncio.sleep(seconds)
    if kill is not None:
        os.kill(kill.pid, signal.SIGKILL)
        kill.wait()
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--index", type=Path)
    ap.add_argument("--queries", type=Path)
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--kill-after", type=float, default=6.0)
    ap.add_argument("--flush-seconds", type=float, default=2.0, help="the server's default")
    ap.add_argument("--no-crash", action="store_true", help="measure the cost only")
    args = ap.parse_args()
    data = Path(str(resources.files("frontdesk") / "data"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index, queries = args.index, args.queries
        if index is None:
            index, queries = work / "index", demo_questions(work / "demo_queries.jsonl")
            subprocess.run([*FD, "index", "build", str(data / "demo_catalog.jsonl"), "--out",
                            str(index), "--json"], check=True, capture_output=True)  # fmt: skip
        texts = [json.loads(x)["text"] for x in queries.read_text().splitlines() if x.strip()]
        bodies = [json.dumps({"text": t}).encode() for t in texts]
        models = work / "models"
        subprocess.run([*FD, "models", "package", str(index), "--name", "suggest", "--into",
                        str(models), "--max-batch-size", "32", "--max-batch-time-ms", "2",
                        "--json"], check=True, capture_output=True)  # fmt: skip
        ports = {"off": free_port(), "on": free_port()}
        procs = {"off": start(models, ports["off"], None),
                 "on": start(models, ports["on"], work / "log")}  # fmt: skip
        rates: dict[str, list[float]] = {"off": [], "on": []}
        cpu_ms: dict[str, list[float]] = {"off": [], "on": []}
        errors = 0
        try:
            for mode in ("off", "on"):
                asyncio.run(drive(ports[mode], bodies, 4, 3))  # warm-up
            for r in range(args.rounds):
                # alternate which server goes first, so a drift in load favours neither
                for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    c0 = cpu_seconds(procs[mode].pid)
                    got = asyncio.run(drive(ports[mode], bodies, args.concurrency, args.seconds))
                    cpu = cpu_seconds(procs[mode].pid) - c0
                    errors += sum(not ok for _, ok, _ in got)
                    rates[mode].append(len(got) / args.seconds)
                    cpu_ms[mode].append(1000 * cpu / max(1, len(got)))
                    print(f"  round {r + 1} logging {mode}: {rates[mode][-1]:.0f} req/s, "
                          f"{cpu_ms[mode][-1]:.3f} server CPU ms/request", file=sys.stderr)  # fmt: skip
        finally:
            for p in procs.values():
                p.terminate()
                p.wait(timeout=30)
        med = {m: statistics.median(v) for m, v in rates.items()}
        cpu = {m: statistics.median(v) for m, v in cpu_ms.items()}
        paired = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
        print(f"| logging | req/s, median of {args.rounds} | server CPU ms/request, median "
              "| req/s per round |\n|---|---|---|---|")  # fmt: skip
        for m in ("off", "on"):
            print(f"| {m} | {med[m]:.0f} | {cpu[m]:.3f} | "
                  f"{', '.join(f'{x:.0f}' for x in rates[m])} |")  # fmt: skip
        print(f"throughput on / off: ratio of medians {med['on'] / med['off']:.3f}, median of "
              f"the per-round ratios {statistics.median(paired):.3f}; server CPU per request "
              f"on / off {cpu['on'] / cpu['off']:.3f}; {errors} errors")  # fmt: skip

        if args.no_crash:
            return
        crash_log = work / "crash-log"
        port = free_port()
        proc = start(models, port, crash_log)
        got = asyncio.run(drive(port, bodies, args.concurrency, args.kill_after, kill=proc))
        killed_at = max(t for t, _, _ in got)
        answered = {d for _, ok, d in got if ok and d}
        recent = {d for t, ok, d in got if ok and d and t >= killed_at - args.flush_seconds}
        info = subprocess.run([*FD, "logs", "info", str(crash_log), "--json"],
                              capture_output=True, text=True)  # fmt: skip
        if info.returncode != 0:
            sys.exit(f"logs info failed after the kill: {info.stderr}")
        import pyarrow.parquet as pq

        on_disk = set()
        for f in (crash_log / "decisions").glob("decisions-*.parquet"):
            on_disk |= set(pq.read_table(f, columns=["decision_id"])["decision_id"].to_pylist())
        lost = answered - on_disk
        meta = json.loads(info.stdout)
        print(f"kill -9 after {args.kill_after:.0f} s at concurrency {args.concurrency}: "
              f"{len(answered)} decisions answered, {len(lost)} lost; bound (answered in the "
              f"last {args.flush_seconds:.0f} s): {len(recent)}; lost within the bound: "
              f"{lost <= recent}; files verified: {meta['files_verified']}, temp files left: "
              f"{meta['temp_files']}")  # fmt: skip
        proc = start(models, port, crash_log)
        try:
            resumed = asyncio.run(drive(port, bodies, 2, 2.0))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        after = json.loads(subprocess.run([*FD, "logs", "info", str(crash_log), "--json"],
                                          capture_output=True, text=True, check=True).stdout)  # fmt: skip
        print(
            f"restart: {len(resumed)} more answered; decisions on disk {meta['decisions']} -> "
            f"{after['decisions']}; temp files {meta['temp_files']} -> {after['temp_files']}"
        )


if __name__ == "__main__":
    main()
