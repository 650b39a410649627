"""model-settings.json: which runtime serves a model version, with what parameters."""

from __future__ import annotations

import json
import re
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
