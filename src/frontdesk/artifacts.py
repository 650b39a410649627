"""Saved folders (indexes, rankers, routers, encoders, decision logs, model versions).

Two things every saved folder shares: it is written atomically (built beside
its target, swapped in only when complete), and it carries ``manifest.json``,
which says what it is and holds a sha256 of every file, checked on load.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import FrontdeskError, IndexIntegrityError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checksum_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` except the manifest, keyed by relative path."""
    return {
        str(p.relative_to(root)): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    manifest = dict(manifest)
    manifest["files"] = checksum_tree(root)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def read_manifest(
    root: Path, verify: bool = True, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Read and check a manifest: known format, every file present and unmodified.

    Files in ``optional`` may be absent (the caller degrades); present, they must match.
    """
    path = root / MANIFEST
    if not root.is_dir():
        raise IndexIntegrityError(f"{root}: folder not found")
    if not path.is_file():
        raise IndexIntegrityError(
            f"{path}: missing; {root} is not a frontdesk index or model folder"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexIntegrityError(f"{path}: unreadable manifest: {exc}") from None
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise IndexIntegrityError(
            f"{path}: index format {fmt!r}, this frontdesk reads format {FORMAT_VERSION}; "
            "rebuild it"
        )
    if verify:
        expected: dict[str, str] = manifest.get("files", {})
        for rel, digest in expected.items():
            f = root / rel
            if not f.is_file():
                if rel in optional:
                    continue
                raise IndexIntegrityError(f"{f}: listed in the manifest but missing")
            actual = sha256_file(f)
            if actual != digest:
                raise IndexIntegrityError(
                    f"{f}: checksum mismatch (manifest {digest[:12]}…, file {actual[:12]}…); "
                    f"{root} was modified after it was written — rebuild it"
                )
        present = {
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MANIFEST
        }
        extra = present - set(expected)
        if extra:
            raise IndexIntegrityError(
                f"{root}: files not in the manifest: {', '.join(sorted(extra))}"
            )
    return manifest


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike[str], marker: str, what: str) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out``; on success it replaces ``out``.

    On any error the temporary folder is removed and ``out`` is left as it
    was. An existing non-empty ``out`` without the ``marker`` file (so not a
    ``what`` written by frontdesk) is never replaced: that is refused up front.
    Readers holding files of the old folder open keep reading them.
    """
    out = Path(out)
    _refuse_foreign(out, marker, what)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, out, marker, what)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike[str]) -> Iterator[None]:
    """One writer at a time for ``out``: an flock on the sibling file ``.NAME.lock``.

    Taken by index builds and updates; a second writer fails at once with a
    clear error instead of waiting or overwriting. The lock file stays.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FrontdeskError(
                f"{out}: another build or update is writing it; try again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _refuse_foreign(out: Path, marker: str, what: str) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; refusing to replace it")
    if out.exists() and not (out / marker).is_file() and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: exists and is not a frontdesk {what}; refusing to replace it"
        )


def _swap(tmp: Path, out: Path, marker: str, what: str) -> None:
    """Two renames, the old folder removed last (restored if the second rename fails)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    _refuse_foreign(out, marker, what)
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
