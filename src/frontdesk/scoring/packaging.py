"""``frontdesk models package``: copy a model's artifacts into a new repository version folder."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from ..artifacts import (
    ENCODER,
    INDEX,
    MODEL_VERSION,
    RANKER,
    ROUTER,
    WHAT,
    atomic_folder,
    read_manifest,
    write_manifest,
)
from ..errors import FrontdeskError, IndexIntegrityError
from .settings import SETTINGS_FILE, valid_name

RUNTIMES = {
    "suggester": "frontdesk.scoring.runtimes.suggester.SuggesterRuntime",
    "router": "frontdesk.scoring.runtimes.router.RouterRuntime",
    "encoder": "frontdesk.scoring.runtimes.encoder.EncoderRuntime",
    "lightgbm": "frontdesk.scoring.runtimes.lightgbm.LightGBMRuntime",
}
BATCHED = {"suggester", "router", "encoder"}


RUNTIME_OF = {INDEX: "suggester", ROUTER: "router", ENCODER: "encoder"}
"""The runtime that serves each kind of saved folder."""


def detect_kind(source: Path) -> str:
    """The runtime for ``source``: what its manifest's kind says (an index is served as a
    suggester), a LightGBM text model file, or a sentence-transformers folder."""
    if source.is_file():
        return "lightgbm"
    if (source / "manifest.json").is_file():
        try:
            kind = read_manifest(source, verify=False)["kind"]
        except IndexIntegrityError as exc:
            raise FrontdeskError(str(exc)) from None
        if kind not in RUNTIME_OF:
            raise FrontdeskError(
                f"{source}: a frontdesk {WHAT[kind]}, which is not served on its own"
                + (" (package its index with --ranker)" if kind == RANKER else "")
            )
        return RUNTIME_OF[kind]
    if (source / "modules.json").is_file():
        return "encoder"
    raise FrontdeskError(
        f"{source}: not an index, router, LightGBM model or sentence-transformers folder"
    )


def package_model(
    source: str | Path,
    name: str,
    into: str | Path,
    *,
    ranker: str | Path | None = None,
    kind: str | None = None,
    version: str | None = None,
    max_batch_size: int | None = None,
    max_batch_time_ms: float = 5.0,
    parameters: dict[str, Any] | None = None,
    explore_router_only: bool = False,
) -> Path:
    """Write ``INTO/<name>/<version>/`` (next number by default) with artifacts and settings."""
    src = Path(source)
    if not src.exists():
        raise FrontdeskError(f"{src}: not found")
    if not valid_name(name):
        raise FrontdeskError(f"invalid model name {name!r}: letters, digits, '_', '.', '-' only")
    kind = kind or detect_kind(src)
    if src.is_dir() and (src / "manifest.json").is_file():
        try:  # a damaged folder is refused here, not when the server loads the copy
            read_manifest(src)
        except IndexIntegrityError as exc:
            raise FrontdeskError(str(exc)) from None
    if kind not in RUNTIMES:
        raise FrontdeskError(f"unknown model kind {kind!r}; use {', '.join(RUNTIMES)}")
    if explore_router_only and kind != "router":
        raise FrontdeskError(f"--epsilon/--temperature go with a router, not a {kind}")
    if ranker is not None and kind != "suggester":
        raise FrontdeskError("--ranker goes with an index (a suggester)")
    if ranker is not None:
        try:
            read_manifest(Path(ranker), kind=RANKER)
        except IndexIntegrityError as exc:
            raise FrontdeskError(f"--ranker: {exc}") from None
    folder = Path(into) / name
    existing = (
        [int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()]
        if folder.is_dir()
        else []
    )
    version = version or str(max(existing, default=0) + 1)
    if not valid_name(version):
        raise FrontdeskError(f"invalid version {version!r}")
    target = folder / version
    if target.exists():
        raise FrontdeskError(f"{target}: version exists; versions are immutable")
    params = dict(parameters or {})
    with atomic_folder(target, SETTINGS_FILE, "model version") as tmp:
        art = tmp / "artifacts"
        art.mkdir()
        if src.is_file():
            shutil.copy2(src, art / src.name)
            params["model_file"] = f"artifacts/{src.name}"
        else:
            shutil.copytree(src, art / src.name)
            key = {"suggester": "index", "router": "router", "encoder": "model"}[kind]
            params[key] = f"artifacts/{src.name}"
        if ranker is not None:
            shutil.copytree(Path(ranker), art / "ranker")
            params["ranker"] = "artifacts/ranker"
        settings = {
            "implementation": RUNTIMES[kind],
            "parameters": params,
            "max_batch_size": max_batch_size
            if max_batch_size is not None
            else (32 if kind in BATCHED else 1),
            "max_batch_time_ms": max_batch_time_ms if kind in BATCHED else 0.0,
        }
        (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        write_manifest(
            tmp,
            {
                "kind": MODEL_VERSION,
                "model": name,
                "version": version,
                "runtime": kind,
                "source": str(src.resolve()),
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            },
        )
    return target
