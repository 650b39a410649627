"""Fair serving and a soak of `frontdesk serve`, on loopback (issue 25, "Hardening").

Two measurements against a real `frontdesk serve` process on 127.0.0.1, the
index packaged with micro-batching 32 / 2 ms (the load benchmark's best):

- head-of-line: normal `/v1/suggest` requests (C keep-alive connections, back
  to back, a different short question each) in windows of S seconds, alone and
  while a maximal legal request is kept in flight (sent again, with new texts,
  as soon as it is answered, 200 or 504), interleaved for `--rounds` rounds and
  pooled per condition (the shared machine's drift falls on both alike). Three
  maximal requests, each at the limits: `v1-turns` (one conversation, 100 turns
  of ~10,000 characters: 1,701 units of encoding work), `v2-texts` (117 texts of
  ~4,000 characters: 1,989 units, under the 2,000-unit `request_units` limit),
  `v2-turns` (40 texts of ~800 characters with 4 turns each: 2,000 units).
  Reported: normal p50/p99/max, and the maximal requests' statuses and seconds.
  Target: normal p99 < 100 ms with one in flight.
- soak: normal traffic at concurrency `--soak-concurrency` for `--soak-seconds`;
  the server's RSS read from /proc every 5 s. Reported: requests, errors, req/s,
  p50/p99 per minute, and RSS growth after the warm-up (the first 10 %, at least
  30 s). Target: 0 errors, growth < 10 %.

    python benchmarks/serve_hardening.py [--index IDX --queries Q.jsonl | --datasets DIR]
        [--concurrency 1,4] [--seconds 15] [--rounds 3] [--kinds v1-turns,v2-texts,v2-turns]
        [--soak-seconds 600] [--soak-concurrency 12] [--skip-hol] [--skip-soak]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import connection, demo_questions, free_port, level, start_server  # noqa: E402

BODY_LIMIT = 1 << 20
SEEDS = itertools.count(1)


def maximal_bodies(seed: int = 0) -> dict[str, tuple[str, bytes]]:
    """The largest legal requests of three shapes, each just under the 1 MiB body limit;
    every text starts with ``seed`` (a new one per send: no encoder cache hits)."""
    sentence = "my card payment was declined at the shop and the money left my account "

    def filler(chars: int, i: int) -> str:
        text = f"{seed}-{i} " + sentence * (chars // len(sentence) + 1)
        return text[:chars]

    v1 = {
        "text": f"{seed}: is there any update on this?",
        "context": {
            "turns": [
                {"role": "user" if i % 2 else "agent", "text": filler(10_000, i)}
                for i in range(100)
            ]
        },
    }
    v2_texts = {
        "inputs": [
            {
                "name": "text",
                "shape": [117],
                "datatype": "BYTES",
                "data": [filler(4_000, i) for i in range(117)],
            }
        ]
    }
    n, per = 40, [4] * 40  # 200 texts of 10 units each
    v2_turns = {
        "inputs": [
            {
                "name": "text",
                "shape": [n],
                "datatype": "BYTES",
                "data": [filler(790, i) for i in range(n)],
            }
        ],
        "parameters": {
            "contexts": [
                {"turns": [{"role": "user", "text": filler(790, 1000 * i + j)} for j in range(t)]}
                for i, t in enumerate(per)
            ]
        },
    }
    out = {
        "v1-turns": ("/v1/suggest", json.dumps(v1).encode()),
        "v2-texts": ("/v2/models/suggest/infer", json.dumps(v2_texts).encode()),
        "v2-turns": ("/v2/models/suggest/infer", json.dumps(v2_turns).encode()),
    }
    for kind, (_, body) in out.items():
        assert len(body) <= BODY_LIMIT, (kind, len(body))
    return out


async def post(port: int, path: str, body: bytes) -> tuple[int, float]:
    """One request on its own connection: (status, seconds)."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
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
        return int(status_line.split()[1]), time.perf_counter() - t0
    finally:
        writer.close()


async def window(port: int, bodies: list[bytes], concurrency: int, seconds: float) -> list:
    """Normal traffic for ``seconds``: every request's (seconds, ok)."""
    out: list = []
    stop = asyncio.Event()
    budget = [10**9]
    tasks = [
        asyncio.create_task(connection(port, bodies, stop, out, budget)) for _ in range(concurrency)
    ]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return out


async def window_with_heavy(
    port: int, bodies: list[bytes], concurrency: int, seconds: float, kind: str
) -> tuple[list, list[tuple[int, float]]]:
    """Normal traffic for ``seconds`` while a maximal ``kind`` request is kept in flight;
    then the one in flight is waited for, so the next window starts quiet."""
    stop = asyncio.Event()
    done: list[tuple[int, float]] = []

    async def keep_sending() -> None:
        while not stop.is_set():
            done.append(await post(port, *maximal_bodies(next(SEEDS))[kind]))

    sender = asyncio.create_task(keep_sending())
    await asyncio.sleep(1.0)  # the first one has arrived and is being worked on
    out = await window(port, bodies, concurrency, seconds)
    stop.set()
    await sender
    await asyncio.sleep(2.0)  # the piece running past a 504 ends
    return out, done


def summary(lat: list) -> dict:
    ms = np.array([t for t, _ in lat]) * 1000
    return {
        "requests": len(lat),
        "errors": sum(not ok for _, ok in lat),
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"),
        "max_ms": float(ms.max()) if len(ms) else float("nan"),
    }


async def interleaved(port: int, bodies: list[bytes], c: int, args: argparse.Namespace) -> list:
    """Rounds of (nothing else, then one kind in flight) for every kind, pooled per condition:
    the machine's drift falls on both alike."""
    kinds = args.kinds.split(",")
    pooled: dict[str, list] = {k: [] for k in ["none", *kinds]}
    heavy: dict[str, list] = {k: [] for k in kinds}
    for r in range(args.rounds):
        for kind in kinds:
            base = await window(port, bodies, c, args.seconds)
            lat, done = await window_with_heavy(port, bodies, c, args.seconds, kind)
            pooled["none"] += base
            pooled[kind] += lat
            heavy[kind] += done
            b, h = summary(base), summary(lat)
            say(f"  round {r + 1}, concurrency {c}: nothing else p50 {b['p50_ms']:.1f} / p99 "
                f"{b['p99_ms']:.1f} ms; {kind} in flight p50 {h['p50_ms']:.1f} / p99 "
                f"{h['p99_ms']:.1f} ms; maximal: " + ", ".join(f"{s} in {t:.1f} s" for s, t in done))  # fmt: skip
    return [
        {"concurrency": c, "in_flight": k, **summary(v), "heavy": heavy.get(k, [])}
        for k, v in pooled.items()
    ]


def hol(port: int, bodies: list[bytes], args: argparse.Namespace) -> list[dict]:
    rows = []
    for c in (int(x) for x in args.concurrency.split(",")):
        rows += asyncio.run(interleaved(port, bodies, c, args))
    return rows


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def soak(port: int, pid: int, bodies: list[bytes], args: argparse.Namespace) -> dict:
    """Normal traffic in one-minute windows (the last one shorter), RSS sampled meanwhile."""
    samples: list[tuple[float, int]] = []
    stop = asyncio.Event()
    t0 = time.perf_counter()

    async def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter() - t0, rss_kib(pid)))
            await asyncio.sleep(5)

    sampler = asyncio.create_task(sample())
    windows = []
    left = args.soak_seconds
    while left > 0:
        w = min(60.0, left)
        r = await level(port, bodies, args.soak_concurrency, 10**9, w)
        windows.append(r)
        left -= w
        say(f"  soak minute {len(windows)}: {r['req_s']:.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
            f"p99 {r['p99_ms']:.1f} ms, errors {r['errors']}, RSS {samples[-1][1] / 1024:.0f} MiB")  # fmt: skip
    stop.set()
    await sampler
    samples.append((time.perf_counter() - t0, rss_kib(pid)))
    warm = max(30.0, 0.1 * args.soak_seconds)
    after = [kib for t, kib in samples if t >= warm]
    start_kib = after[0] if after else samples[0][1]
    return {
        "seconds": time.perf_counter() - t0,
        "requests": sum(w["requests"] for w in windows),
        "errors": sum(w["errors"] for w in windows),
        "req_s": sum(w["requests"] for w in windows) / (time.perf_counter() - t0),
        "p99_ms_worst_minute": max(w["p99_ms"] for w in windows),
        "p50_ms_median_minute": float(np.median([w["p50_ms"] for w in windows])),
        "rss_mib_after_warmup": start_kib / 1024,
        "rss_mib_end": samples[-1][1] / 1024,
        "rss_mib_max": max(kib for _, kib in samples) / 1024,
        "rss_growth_pct": 100.0 * (samples[-1][1] - start_kib) / start_kib,
        "windows": windows,
    }


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=Path, default=None)
    ap.add_argument("--index", type=Path, default=None, help="reuse this index (with --queries)")
    ap.add_argument("--queries", type=Path, default=None)
    ap.add_argument("--concurrency", default="1,4", help="normal traffic, head-of-line part")
    ap.add_argument("--seconds", type=float, default=15.0, help="per head-of-line window")
    ap.add_argument("--rounds", type=int, default=3, help="head-of-line rounds per kind")
    ap.add_argument("--kinds", default="v1-turns,v2-texts,v2-turns")
    ap.add_argument("--soak-seconds", type=float, default=600.0)
    ap.add_argument("--soak-concurrency", type=int, default=12)
    ap.add_argument("--skip-hol", action="store_true")
    ap.add_argument("--skip-soak", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write every number here too")
    args = ap.parse_args()
    data = Path(str(resources.files("frontdesk") / "data"))
    fd = [sys.executable, "-m", "frontdesk"]
    report: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.index is not None:
            index, queries = args.index, args.queries
        elif args.datasets is not None:
            b77, index = work / "b77", work / "index"
            subprocess.run([*fd, "datasets", "import", "banking77", str(args.datasets / "banking77"),
                            "--out", str(b77), "--json"], check=True, capture_output=True)  # fmt: skip
            subprocess.run([*fd, "index", "build", str(b77 / "workflows.jsonl"), "--examples",
                            str(b77 / "train.jsonl"), "--out", str(index), "--json"],
                           check=True, capture_output=True)  # fmt: skip
            queries = b77 / "test.jsonl"
        else:
            index = work / "index"
            subprocess.run([*fd, "index", "build", str(data / "demo_catalog.jsonl"), "--out",
                            str(index), "--json"], check=True, capture_output=True)  # fmt: skip
            queries = demo_questions(work / "demo_queries.jsonl")
        texts = [json.loads(x)["text"] for x in queries.read_text().splitlines() if x.strip()]
        bodies = [
            json.dumps({"text": t, "context": {"user": {"segment": "individual"}}}).encode()
            for t in texts
        ]
        models = work / "models"
        subprocess.run([*fd, "models", "package", str(index), "--name", "suggest", "--into",
                        str(models), "--max-batch-size", "32", "--max-batch-time-ms", "2",
                        "--json"], check=True, capture_output=True)  # fmt: skip
        port = free_port()
        proc = start_server(models, port)
        try:
            asyncio.run(level(port, bodies, 4, 200, 15))  # warm-up
            if not args.skip_hol:
                say(f"head-of-line, {len(texts)} distinct texts from {queries.name}")
                report["hol"] = hol(port, bodies, args)
            if not args.skip_soak:
                say(f"soak, {args.soak_seconds:.0f} s at concurrency {args.soak_concurrency}")
                report["soak"] = asyncio.run(soak(port, proc.pid, bodies, args))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            err = proc.stderr.read().decode() if proc.stderr else ""  # type: ignore[union-attr]
    tracebacks = err.count("Traceback")
    print(f"server log: {len(err.splitlines())} lines, {tracebacks} tracebacks")
    if "hol" in report:
        print("| normal concurrency | maximal request in flight | normal requests | p50 ms | "
              "p99 ms | max ms | errors | maximal requests answered |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        for r in report["hol"]:
            codes = [s for s, _ in r["heavy"]]
            heavy = ", ".join(f"{codes.count(s)} x {s}" for s in sorted(set(codes))) or "-"
            if r["heavy"]:
                heavy += (
                    f" ({min(t for _, t in r['heavy']):.1f}-{max(t for _, t in r['heavy']):.1f} s)"
                )
            print(f"| {r['concurrency']} | {r['in_flight']} | {r['requests']} | {r['p50_ms']:.1f} | "
                  f"{r['p99_ms']:.1f} | {r['max_ms']:.0f} | {r['errors']} | {heavy} |")  # fmt: skip
    if "soak" in report:
        s = report["soak"]
        print(f"soak: {s['seconds']:.0f} s at concurrency {args.soak_concurrency}, "
              f"{s['requests']} requests, {s['errors']} errors, {s['req_s']:.0f} req/s, "
              f"p50 {s['p50_ms_median_minute']:.1f} ms (median minute), p99 "
              f"{s['p99_ms_worst_minute']:.1f} ms (worst minute); RSS {s['rss_mib_after_warmup']:.0f}"
              f" MiB after warm-up, {s['rss_mib_end']:.0f} MiB at the end (max "
              f"{s['rss_mib_max']:.0f}): {s['rss_growth_pct']:+.1f} %")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
