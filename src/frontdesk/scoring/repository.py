"""The model repository: versioned folders, their runtimes, traffic routing, and load state.

Layout: ``MODELS_DIR/<name>/<version>/model-settings.json`` (plus artifacts;
``frontdesk models package`` adds the ``manifest.json`` of every saved folder,
checked on load — a version written by hand has none and loads unverified),
and optionally ``MODELS_DIR/<name>/routing.json``::

    {"default": "3", "canary": {"4": 10}, "shadow": "5"}

(10 % of requests without an explicit version go to version 4; version 5
answers every such request in the background, where its result is only
compared and measured). Without ``routing.json`` the latest version (highest
number) serves everything. Only the versions routing needs are loaded.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..artifacts import MANIFEST, MODEL_VERSION, read_manifest
from ..errors import DataError, IndexIntegrityError
from .base import Scorer, load_scorer_class
from .packaging import RUNTIMES
from .settings import SETTINGS_FILE, ModelSettings, valid_name

log = logging.getLogger("frontdesk.scoring")


@dataclass
class Routing:
    """Which version answers (default, canary percentages) and which runs in the shadow."""

    default: str
    canary: dict[str, float] = field(default_factory=dict)  # version -> percent
    shadow: str | None = None

    @property
    def versions(self) -> list[str]:
        vs = [self.default, *self.canary]
        if self.shadow:
            vs.append(self.shadow)
        return list(dict.fromkeys(vs))


@dataclass
class ModelVersion:
    """One version of a model: its state, runtime and micro-batcher."""

    name: str
    version: str
    state: str = "loading"  # loading | ready | failed
    error: str | None = None
    scorer: Scorer | None = None
    settings: ModelSettings | None = None
    batcher: Any = None


def load_version(path: str | Path, *, trust_implementation: bool = False) -> Scorer:
    """One version folder's runtime, loaded and answering (``<name>/<version>/``).

    Only frontdesk's own runtimes unless ``trust_implementation``: a folder's
    settings are data and may not name other code to import (the server, which
    serves the operator's own MODELS_DIR, loads custom runtimes).
    """
    folder = Path(path)
    settings = read_version(folder, folder.parent.name, folder.name)
    if not trust_implementation and settings.implementation not in RUNTIMES.values():
        raise IndexIntegrityError(
            f"{folder / SETTINGS_FILE}: implementation {settings.implementation!r} is not one "
            f"of frontdesk's runtimes; load it with load_version(..., trust_implementation=True) "
            "or serve it from a models folder you trust"
        )
    scorer = load_scorer_class(settings.implementation)(settings)
    scorer.load()
    scorer.predict_batch([scorer.warmup()])  # answered once before it is called ready
    return scorer


def read_version(folder: Path, name: str, version: str) -> ModelSettings:
    """A version's settings, its manifest verified first when it has one."""
    if (folder / MANIFEST).is_file():
        read_manifest(folder, kind=MODEL_VERSION)
    else:
        log.info("model %s version %s has no %s: loaded unverified", name, version, MANIFEST)
    return ModelSettings.read(folder, name, version)


def _version_key(v: str) -> tuple[int, int | str]:
    """Named versions sort before numbered ones: the highest *number* is the latest."""
    return (1, int(v)) if v.isdigit() else (0, v)


class ModelRepository:
    """Scans MODELS_DIR, loads versions (each in isolation), and picks one per request."""

    def __init__(self, root: str | Path, seed: int | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(str(self.root), None, None, "models folder not found")
        self.models: dict[str, dict[str, ModelVersion]] = {}
        self.routes: dict[str, Routing] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)

    def names(self) -> list[str]:
        """Model folders: a valid name holding a version folder or a routing.json."""
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir()
            and valid_name(p.name)
            and (
                (p / "routing.json").is_file()
                or any((v / SETTINGS_FILE).is_file() for v in p.iterdir())
            )
        )

    def versions_on_disk(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        vs = [
            p.name
            for p in folder.iterdir()
            if p.is_dir() and valid_name(p.name) and (p / SETTINGS_FILE).is_file()
        ]
        return sorted(vs, key=_version_key)

    def read_routing(self, name: str) -> Routing:
        versions = self.versions_on_disk(name)
        if not versions:
            raise DataError(
                str(self.root / name), None, None, f"no version folder with {SETTINGS_FILE}"
            )
        f = self.root / name / "routing.json"
        if not f.is_file():
            return Routing(default=versions[-1])
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(str(f), exc.lineno, None, f"invalid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise DataError(str(f), None, None, "must be an object with default, canary, shadow")
        canary_raw = data.get("canary") or {}
        if not isinstance(canary_raw, dict):
            raise DataError(str(f), None, "canary", "must map versions to percentages")
        try:
            canary = {str(k): float(v) for k, v in canary_raw.items()}
        except (TypeError, ValueError):
            raise DataError(str(f), None, "canary", "percentages must be numbers") from None
        default = str(data.get("default", versions[-1]))
        shadow = str(data["shadow"]) if data.get("shadow") is not None else None
        for v in [default, *canary, *([shadow] if shadow else [])]:
            if v not in versions:
                raise DataError(
                    str(f), None, "version", f"{v!r} has no folder under {self.root / name}"
                )
        if sum(canary.values()) > 100 or any(p < 0 for p in canary.values()):
            raise DataError(str(f), None, "canary", "percentages must be >= 0 and sum to <= 100")
        return Routing(default, canary, shadow)

    def register(self, name: str) -> list[ModelVersion]:
        """Read ``name``'s routing and list the versions it needs, in state "loading".

        A model whose folder or routing.json is unusable is registered as one
        failed entry, so requests for it get 503 with the reason.
        """
        try:
            routing = self.read_routing(name)
        except Exception as exc:  # noqa: BLE001 - contained to this model
            failed = ModelVersion(name, "-", state="failed", error=f"{type(exc).__name__}: {exc}")
            with self._lock:
                self.routes[name] = Routing(default="-")
                self.models[name] = {"-": failed}
            return []
        entries = [ModelVersion(name, v) for v in routing.versions]
        with self._lock:
            self.routes[name] = routing
            self.models[name] = {e.version: e for e in entries}
        return entries

    def load(self, name: str, entries: list[ModelVersion] | None = None) -> list[ModelVersion]:
        """Load the versions of ``name`` that routing needs; failures stay contained."""
        entries = entries if entries is not None else self.register(name)
        for e in entries:
            self._load_version(e)
        return entries

    def reload(self, name: str) -> tuple[list[ModelVersion], list[ModelVersion]]:
        """Load ``name`` beside the serving versions, then swap: (new entries, replaced ones).

        Traffic keeps going to the old versions until every new one is ready; if
        one fails, nothing is swapped (the old versions keep serving) and the
        failed entries come back with no replaced ones.
        """
        routing = self.read_routing(name)
        entries = [ModelVersion(name, v) for v in routing.versions]
        for e in entries:
            self._load_version(e)
        if name in self.models and any(e.state != "ready" for e in entries):
            return entries, []
        with self._lock:
            old = list(self.models.get(name, {}).values())
            self.routes[name] = routing
            self.models[name] = {e.version: e for e in entries}
        return entries, old

    def _load_version(self, e: ModelVersion) -> None:
        try:
            settings = read_version(self.root / e.name / e.version, e.name, e.version)
            scorer = load_scorer_class(settings.implementation)(settings)
            scorer.load()
            scorer.predict_batch([scorer.warmup()])  # answered once before it is called ready
            e.settings, e.scorer, e.state = settings, scorer, "ready"
            log.info("model %s version %s ready", e.name, e.version)
        except Exception as exc:  # noqa: BLE001 - any failure marks only this version
            e.state, e.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("model %s version %s failed to load: %s", e.name, e.version, e.error)

    def unload(self, name: str) -> list[ModelVersion] | None:
        """Forget ``name``; returns its versions (None when it was not loaded)."""
        with self._lock:
            self.routes.pop(name, None)
            gone = self.models.pop(name, None)
        return list(gone.values()) if gone is not None else None

    def pick(
        self, name: str, version: str | None
    ) -> tuple[ModelVersion | None, ModelVersion | None]:
        """The version to answer with, and the shadow to run beside it (if any)."""
        versions = self.models.get(name)
        if not versions:
            return None, None
        if version is not None:
            return versions.get(version), None
        routing = self.routes[name]
        chosen = routing.default
        r = self._rng.random() * 100
        acc = 0.0
        for v, pct in routing.canary.items():
            acc += pct
            if r < acc:
                chosen = v
                break
        shadow = (
            versions.get(routing.shadow) if routing.shadow and routing.shadow != chosen else None
        )
        return versions.get(chosen), shadow

    def all_versions(self) -> list[ModelVersion]:
        with self._lock:
            return [e for vs in self.models.values() for e in vs.values()]

    @property
    def ready(self) -> bool:
        entries = self.all_versions()
        return bool(entries) and all(e.state == "ready" for e in entries)
