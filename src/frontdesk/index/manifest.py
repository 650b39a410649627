"""manifest.json: what an index holds, what built it, and a sha256 of every file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..errors import IndexIntegrityError

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
