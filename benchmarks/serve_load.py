"""Load test of `frontdesk serve`: /v1/suggest at several concurrencies, micro-batching on and off.

The server runs in its own process on 127.0.0.1 (`frontdesk serve`); this
process drives it with C keep-alive connections (a minimal asyncio HTTP/1.1
client, so the client costs little CPU), each sending requests back to back,
for at most N requests or S seconds per level. Reported per level: req/s,
p50/p99 latency, errors. With --datasets the model is a BANKING77 index
(77 workflows + the 10,003 training questions as examples) and the texts are
the 3,080 test questions; without, the bundled demo catalog and its 140
queries. Every request in flight carries a different text: connection j
walks the texts from offset j * len(texts) / C, so no batch can be served by
de-duplicating identical texts. The index is packaged twice:
max_batch_size 1 (off) and 32 with 5 ms (on).

    python benchmarks/serve_load.py [--datasets ../shared/datasets] [--concurrency 1,4,8,16,32]
        [--requests 1500] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import resources
from pathlib import Path

import numpy as np


def demo_questions(out: Path) -> Path:
    """Every bundled demo question (both halves: a workload here, not a measure) in one file."""
    data = Path(str(resources.files("frontdesk") / "data"))
    out.write_text(
        "".join((data / f"demo_queries_{h}.jsonl").read_text() for h in ("tune", "test"))
    )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(models: Path, port: int, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "frontdesk", "serve", str(models), "--port", str(port), *extra],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.5)
    proc.kill()
    sys.exit("server not ready after 120 s")


async def connection(
    port: int, bodies: list[bytes], stop: asyncio.Event, out: list, budget: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while not stop.is_set() and budget[0] > 0:
            budget[0] -= 1
            body = bodies[i % len(bodies)]
            i += 1
            head = (
                f"POST /v1/suggest HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            ok = status_line.split()[1] == b"200" if status_line else False
            out.append((time.perf_counter() - t0, ok))
    finally:
        writer.close()


async def level(
    port: int, bodies: list[bytes], concurrency: int, requests: int, seconds: float
) -> dict:
    out: list = []
    stop = asyncio.Event()
    budget = [requests]
    t0 = time.perf_counter()
    tasks = [
        asyncio.create_task(connection(port, bodies, stop, out, budget)) for _ in range(concurrency)
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=seconds)
    except TimeoutError:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    wall = time.perf_counter() - t0
    lat = np.array([t for t, _ in out]) * 1000
    return {
        "concurrency": concurrency,
        "requests": len(out),
        "errors": sum(not ok for _, ok in out),
        "req_s": len(out) / wall,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=None)
    ap.add_argument("--index", type=Path, default=None, help="reuse this index (with --queries)")
    ap.add_argument("--queries", type=Path, default=None)
    ap.add_argument("--concurrency", default="1,4,8,16,32")
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch-time-ms", type=float, default=2.0, help="max_batch_time_ms")
    ap.add_argument(
        "--batch-sizes", default="1,8,32", help="max_batch_size per run (1: batching off)"
    )
    args = ap.parse_args()
    data = Path(str(resources.files("frontdesk") / "data"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        index = work / "index"
        fd = [sys.executable, "-m", "frontdesk"]
        if args.index is not None:  # reuse a built index and its query file
            index, queries = args.index, args.queries
        elif args.datasets is not None:
            b77 = work / "b77"
            subprocess.run([*fd, "datasets", "import", "banking77", str(args.datasets / "banking77"),
                            "--out", str(b77), "--json"], check=True, capture_output=True)  # fmt: skip
            subprocess.run([*fd, "index", "build", str(b77 / "workflows.jsonl"), "--examples",
                            str(b77 / "train.jsonl"), "--out", str(index), "--json"],
                           check=True, capture_output=True)  # fmt: skip
            queries = b77 / "test.jsonl"
        else:
            subprocess.run([*fd, "index", "build", str(data / "demo_catalog.jsonl"), "--out", str(index),
                            "--json"], check=True, capture_output=True)  # fmt: skip
            queries = demo_questions(work / "demo_queries.jsonl")
        texts = [json.loads(x)["text"] for x in queries.read_text().splitlines() if x.strip()]
        bodies = [
            json.dumps({"text": t, "context": {"user": {"segment": "individual"}}}).encode()
            for t in texts
        ]
        print(f"  {len(texts)} distinct texts from {queries.name}", file=sys.stderr)
        modes = [("off" if b == "1" else f"on-{b}", b) for b in args.batch_sizes.split(",")]
        for mode, size in modes:
            models = work / f"models-{mode}"
            subprocess.run([sys.executable, "-m", "frontdesk", "models", "package", str(index), "--name", "suggest",
                            "--into", str(models), "--max-batch-size", size, "--max-batch-time-ms",
                            str(args.batch_time_ms), "--json"],
                           check=True, capture_output=True)  # fmt: skip
            port = free_port()
            proc = start_server(models, port)
            try:
                asyncio.run(level(port, bodies, 4, 100, 10))  # warm-up
                for c in (int(x) for x in args.concurrency.split(",")):
                    r = asyncio.run(level(port, bodies, c, args.requests, args.seconds))
                    results[(mode, c)] = r
                    print(f"  batching {mode}, concurrency {c}: {r['req_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                          f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}", file=sys.stderr)  # fmt: skip
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    print("| concurrency | max batch | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for c in (int(x) for x in args.concurrency.split(",")):
        for mode, _ in modes:
            r = results[(mode, c)]
            print(
                f"| {c} | {mode} | {r['requests']} | {r['req_s']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
            )
    for c in (int(x) for x in args.concurrency.split(",")):
        for mode, _ in modes:
            if mode != "off" and ("off", c) in results:
                ratio = results[(mode, c)]["req_s"] / results[("off", c)]["req_s"]
                print(f"req/s ratio {mode} / off at concurrency {c}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
