"""The HTTP/1.1 connection under the scoring app: what uvicorn itself does not bound.

uvicorn (httptools) waits for a request's headers forever and answers a request
too malformed to parse with plain text. This protocol gives the headers
``header_timeout_s`` (from the connection opening, or from the previous answer
on a keep-alive connection) and at most ``MAX_HEAD_BYTES``, answering 408 or 431
as JSON and closing the connection (a connection on which no request has begun
is closed without an answer, which a client would take for its next request's);
malformed HTTP gets a JSON 400. The body's
own time limit is the app's (``body_timeout_s``, 408).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import ServeSettings

MAX_HEAD_BYTES = 64 * 1024  # request line and headers
PROTOCOL = "frontdesk.scoring.connection:GuardedHttpProtocol"
STATUS_TEXT = {400: "Bad Request", 408: "Request Timeout", 431: "Request Header Fields Too Large"}


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a time and size limit on each request's headers."""

    header_timeout_s: float | None = None  # None: ServeSettings.from_env()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.header_timeout_s is None:
            self.header_timeout_s = ServeSettings.from_env().header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._awaiting_head = False

    def _arm(self) -> None:
        """Start waiting for the next request's headers."""
        self._disarm()
        self._awaiting_head = True
        self._head_bytes = 0
        assert self.header_timeout_s is not None
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # on_headers_complete stops the wait when they are whole
        if self._awaiting_head and self.transport is not None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, f"request line and headers over {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete:  # nothing pipelined: wait anew
            self._arm()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self._awaiting_head or self.transport.is_closing():
            return
        if not self._head_bytes:  # idle, no request begun: close as keep-alive does, no answer
            self.transport.close()
            return
        self._refuse(408, f"request headers not received within {self.header_timeout_s:g} s")

    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"invalid HTTP request: {msg.rstrip('.')}")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``{"error": message}`` with ``status`` and close the connection."""
        self._awaiting_head = False
        self._disarm()
        body = json.dumps({"error": message}).encode()
        head = (
            f"HTTP/1.1 {status} {STATUS_TEXT[status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()


def protocol_with(header_timeout_s: float) -> type[GuardedHttpProtocol]:
    """The protocol class with this header timeout (for a uvicorn server made in-process)."""
    return type(
        "GuardedHttpProtocol", (GuardedHttpProtocol,), {"header_timeout_s": header_timeout_s}
    )


def uvicorn_options(settings: ServeSettings, *, in_process: bool = False) -> dict[str, Any]:
    """The ``uvicorn.run``/``uvicorn.Config`` arguments that apply ``settings``' limits.

    ``in_process`` passes the protocol class itself (carrying the header timeout);
    otherwise its import path, whose instances read ``FRONTDESK_SERVE_*`` (workers).
    """
    return {
        "http": protocol_with(settings.header_timeout_s) if in_process else PROTOCOL,
        "timeout_keep_alive": settings.keep_alive_s,
    }
