"""A real uvicorn server on a free loopback port, run in a thread, per test module."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

pytest.importorskip(
    "fastapi", reason="the serve extra is not installed (pip install 'frontdesk[serve]')"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(app: Any) -> Any:
    """Serve ``app`` with uvicorn on 127.0.0.1:<free port>; yield its base URL; stop it."""
    from frontdesk.eval.decision_loop import loopback_server

    return loopback_server(app)


def wait_ready(client: Any, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.get("/v2/health/ready").status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError(f"not ready: {client.get('/v2/health/ready').json()}")
