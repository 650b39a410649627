"""model-settings.json (which runtime serves a model version) and the server's own settings."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from ..errors import DataError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SETTINGS_FILE = "model-settings.json"


def valid_name(name: str) -> bool:
    """Model names and versions: letters, digits, ``_ . -``; never a path (no ``..``, no ``/``)."""
    return isinstance(name, str) and bool(NAME_RE.fullmatch(name)) and ".." not in name


class ModelSettings(BaseModel):
    """The settings file of one model version (``MODELS_DIR/<name>/<version>/``)."""

    implementation: str = Field(min_length=1)  # dotted path of a Scorer subclass
    parameters: dict[str, Any] = Field(default_factory=dict)
    max_batch_size: int = Field(default=1, ge=1, le=4096)
    max_batch_time_ms: float = Field(default=0.0, ge=0.0, le=10_000.0)
    name: str = ""  # filled from the folder
    version: str = ""  # filled from the folder
    root: str = ""  # the version folder; relative artifact paths resolve against it

    def path(self, value: str) -> Path:
        p = Path(value)
        return p if p.is_absolute() else Path(self.root) / p

    @classmethod
    def read(cls, folder: Path, name: str, version: str) -> ModelSettings:
        f = folder / SETTINGS_FILE
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(str(f), None, None, "missing") from None
        except json.JSONDecodeError as exc:
            raise DataError(str(f), exc.lineno, None, f"invalid JSON: {exc.msg}") from None
        try:
            return cls(**{**data, "name": name, "version": version, "root": str(folder)})
        except ValidationError as exc:
            e = exc.errors()[0]
            field = ".".join(str(x) for x in e["loc"]) or None
            raise DataError(str(f), None, field, e["msg"]) from None


SERVE_ENV = {
    "request_timeout_s": "FRONTDESK_SERVE_REQUEST_TIMEOUT",
    "body_timeout_s": "FRONTDESK_SERVE_BODY_TIMEOUT",
    "header_timeout_s": "FRONTDESK_SERVE_HEADER_TIMEOUT",
    "keep_alive_s": "FRONTDESK_SERVE_KEEP_ALIVE",
    "chunk": "FRONTDESK_SERVE_CHUNK",
}


@dataclass(frozen=True)
class ServeSettings:
    """How long the server waits for a request, and how it cuts large ones (docs/limits.md).

    The flags of ``frontdesk serve``; each also read from its ``FRONTDESK_SERVE_*``
    variable, so every worker process of ``--workers N`` serves alike.
    """

    request_timeout_s: float = 30.0
    """A request not answered within this is answered 504 (0: no deadline)."""
    body_timeout_s: float = 10.0
    """The whole body must arrive within this after the headers, or 408."""
    header_timeout_s: float = 10.0
    """A request's headers must arrive within this of the connection opening (or of the
    previous answer on it), or the connection gets 408 and is closed."""
    keep_alive_s: int = 5
    """An idle keep-alive connection is closed after this."""
    chunk: int = 32
    """Units of work (each text and turn: one per 80 characters, at most 17) above which a
    request runs on the lane for large requests, in parts of about this size that take
    turns with other large requests."""

    def __post_init__(self) -> None:
        for name in ("request_timeout_s", "body_timeout_s", "header_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v < 1e6):
                raise DataError(SERVE_ENV[name], None, None, f"must be seconds >= 0, not {v!r}")
        for name in ("body_timeout_s", "header_timeout_s"):
            if getattr(self, name) <= 0:
                raise DataError(SERVE_ENV[name], None, None, "must be above 0 seconds")
        if not (isinstance(self.keep_alive_s, int) and self.keep_alive_s >= 1):
            raise DataError(SERVE_ENV["keep_alive_s"], None, None, "must be whole seconds >= 1")
        if not (isinstance(self.chunk, int) and self.chunk >= 1):
            raise DataError(SERVE_ENV["chunk"], None, None, "must be an integer >= 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServeSettings:
        """Defaults, overridden by the ``FRONTDESK_SERVE_*`` variables that are set."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(SERVE_ENV[f.name])
            if raw is None:
                continue
            kind = int if f.name in ("keep_alive_s", "chunk") else float
            try:
                values[f.name] = kind(raw)
            except ValueError:
                what = "an integer" if kind is int else "a number of seconds"
                raise DataError(
                    SERVE_ENV[f.name], None, None, f"must be {what}, got {raw!r}"
                ) from None
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The variables that make :meth:`from_env` give these settings."""
        return {SERVE_ENV[f.name]: str(getattr(self, f.name)) for f in fields(self)}
