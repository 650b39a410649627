"""Run the `frontdesk` CLI from a benchmark: one JSON result and its wall time per call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def run_cli(*args: str) -> tuple[dict, float]:
    """`python -m frontdesk ARGS --json` offline; exits with stderr if the command fails."""
    cmd = [sys.executable, "-m", "frontdesk", *args, "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr}")
    took = time.perf_counter() - t0
    print(f"  {' '.join(args[:2])} … {took:.0f}s", file=sys.stderr)
    return json.loads(done.stdout), took
