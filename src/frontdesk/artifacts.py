"""Saved folders (indexes, rankers, routers, encoders, decision logs, model versions).

Every folder frontdesk saves shares one scheme, as sentence-transformers'
``modules.json`` names each part's class: it is written atomically (built
beside its target, swapped in only when complete), and it carries
``manifest.json``::

    {"kind": "frontdesk-index", "format_version": 1,
     "loader": "frontdesk.index.store.WorkflowIndex.load",
     "files": {"dense.faiss": "<sha256>", ...}, "bytes": {"dense.faiss": 15405, ...},
     ...what the kind adds (counts, versions, created_at, ...)}

``kind`` says what the folder is, ``loader`` which callable opens it (``load``
here dispatches on it), ``files`` the sha256 of every file (checked on load)
and ``bytes`` their sizes (a quick check where hashing would cost more than the
work, as for a 90 MB encoder on a one-second cold start).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from .errors import FrontdeskError, IndexIntegrityError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

INDEX = "frontdesk-index"
RANKER = "frontdesk-ranker"
ROUTER = "frontdesk-router"
ENCODER = "frontdesk-encoder"
LOGS = "frontdesk-logs"
MODEL_VERSION = "frontdesk-model-version"

LOADERS: dict[str, str] = {
    INDEX: "frontdesk.index.store.WorkflowIndex.load",
    RANKER: "frontdesk.ranking.reranker.LambdaRankReranker.load",
    ROUTER: "frontdesk.routing.router.Router.load",
    ENCODER: "frontdesk.encoding.encoder.ContextEncoder",
    LOGS: "frontdesk.logs.DecisionLogs.open",
    MODEL_VERSION: "frontdesk.scoring.repository.load_version",
}
"""Every kind of saved folder and the callable that opens it (its path the first argument)."""

WHAT = {
    INDEX: "index",
    RANKER: "ranker",
    ROUTER: "router",
    ENCODER: "encoder",
    LOGS: "log folder",
    MODEL_VERSION: "model version",
}

Verify = bool | Literal["quick"]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree(root: Path) -> list[Path]:
    """Every file under ``root`` but its own manifest (a nested folder's manifest counts)."""
    own = root / MANIFEST
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p != own]


def _a(what: str) -> str:
    """``what`` with its article: "an index", "a router"."""
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"


def write_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``root/manifest.json``: ``manifest`` (which names its ``kind``) plus the
    format version, the kind's loader, and the sha256 and size of every file."""
    manifest = dict(manifest)
    kind = manifest.get("kind")
    if kind not in LOADERS:
        raise ValueError(f"unknown artifact kind {kind!r}; known: {', '.join(LOADERS)}")
    manifest.setdefault("format_version", FORMAT_VERSION)
    manifest.setdefault("loader", LOADERS[kind])
    files = _tree(root)
    manifest["files"] = {str(p.relative_to(root)): sha256_file(p) for p in files}
    manifest["bytes"] = {str(p.relative_to(root)): p.stat().st_size for p in files}
    # Not key-sorted: some kinds' maps are ordered (a log folder's channels).
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _shape_error(path: Path, what: str) -> IndexIntegrityError:
    return IndexIntegrityError(f"{path}: {what}; the manifest is damaged — rebuild the folder")


def read_manifest(
    root: Path,
    verify: Verify = True,
    optional: frozenset[str] = frozenset(),
    kind: str | None = None,
) -> dict[str, Any]:
    """Read and check a manifest: its shape, its kind (``kind``, when given), its format,
    and (``verify``) every file present and unmodified: ``True`` checks each sha256,
    ``"quick"`` only presence and sizes.

    Files in ``optional`` may be absent (the caller degrades); present, they must match.
    An index manifest written before manifests named their kind reads as an index.
    """
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise IndexIntegrityError(f"{root}: folder not found")
    if not path.is_file():
        raise IndexIntegrityError(
            f"{path}: missing; {root} is not a folder saved by frontdesk"
            + (f" (expected a {WHAT[kind]})" if kind in WHAT else "")
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise IndexIntegrityError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise _shape_error(path, "not a JSON object")
    found = manifest.get("kind", INDEX)  # indexes named no kind at first
    if found not in LOADERS:
        raise _shape_error(path, f"kind {found!r} is not one frontdesk saves")
    if kind is not None and found != kind:
        raise IndexIntegrityError(
            f"{root}: a frontdesk {WHAT[found]}, not {_a(WHAT.get(kind, kind))}"
        )
    manifest["kind"] = found
    loader = manifest.setdefault("loader", LOADERS[found])
    if loader != LOADERS[found]:
        raise _shape_error(path, f"loader {loader!r} is not the {WHAT[found]}'s ({LOADERS[found]})")
    fmt = manifest.get("format_version")
    if fmt != FORMAT_VERSION:
        raise IndexIntegrityError(
            f"{path}: {WHAT[found]} format {fmt!r}, this frontdesk reads format "
            f"{FORMAT_VERSION}; rebuild it"
        )
    expected = manifest.get("files", {})
    if not isinstance(expected, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in expected.items()
    ):
        raise _shape_error(path, "files must map each file's path to its sha256")
    outside = [k for k in expected if Path(k).is_absolute() or ".." in Path(k).parts]
    if outside:
        raise _shape_error(path, f"files names {outside[0]!r}, outside the folder")
    sizes = manifest.get("bytes", {})
    if not isinstance(sizes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in sizes.values()
    ):
        raise _shape_error(path, "bytes must map each file's path to its size")
    if verify:
        verify_files(root, manifest, full=verify is True, optional=optional)
    return manifest


def verify_files(
    root: Path,
    manifest: dict[str, Any],
    *,
    full: bool = True,
    optional: frozenset[str] = frozenset(),
) -> None:
    """Every file the (shape-checked) manifest lists is present and unmodified (``full``:
    its sha256; else its size), and no other file is there."""
    expected: dict[str, str] = manifest.get("files", {})
    sizes: dict[str, int] = manifest.get("bytes", {})
    for rel, digest in expected.items():
        f = root / rel
        if not f.is_file():
            if rel in optional:
                continue
            raise IndexIntegrityError(f"{f}: listed in the manifest but missing")
        if not full:
            if rel in sizes and f.stat().st_size != sizes[rel]:
                raise IndexIntegrityError(
                    f"{f}: {f.stat().st_size} bytes, the manifest says {sizes[rel]}; "
                    f"{root} was modified after it was written — rebuild it"
                )
            continue
        actual = sha256_file(f)
        if actual != digest:
            raise IndexIntegrityError(
                f"{f}: checksum mismatch (manifest {digest[:12]}…, file {actual[:12]}…); "
                f"{root} was modified after it was written — rebuild it"
            )
    extra = {str(p.relative_to(root)) for p in _tree(root)} - set(expected)
    if extra:
        raise IndexIntegrityError(f"{root}: files not in the manifest: {', '.join(sorted(extra))}")


def kind_of(path: str | os.PathLike[str]) -> str:
    """What a saved folder is (its manifest's kind), without verifying its files."""
    return str(read_manifest(Path(path), verify=False)["kind"])


def resolve_loader(dotted: str, where: Path) -> Callable[..., Any]:
    """The callable a manifest names: ``frontdesk.module.Name[.attr]``, frontdesk's own only.

    A manifest is data: naming code outside frontdesk would let a folder run it on load.
    """
    if not dotted.startswith("frontdesk.") or dotted not in LOADERS.values():
        raise IndexIntegrityError(
            f"{where}: loader {dotted!r} is not one of frontdesk's ({', '.join(LOADERS.values())})"
        )
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists; something it imports does not
                raise
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj  # type: ignore[no-any-return]
    raise IndexIntegrityError(f"{where}: loader {dotted!r} cannot be imported")


def load(path: str | os.PathLike[str], *, kind: str | None = None, **kwargs: Any) -> Any:
    """Open any folder frontdesk saved, with the loader its manifest names.

    ``kind`` refuses a folder of another kind (a router given where an index is
    expected); ``kwargs`` go to the loader. The loader verifies the files.
    """
    root = Path(path)
    manifest = read_manifest(root, verify=False, kind=kind)
    return resolve_loader(str(manifest["loader"]), root / MANIFEST)(root, **kwargs)


@contextlib.contextmanager
def atomic_folder(
    out: str | os.PathLike[str],
    marker: str | tuple[str, ...],
    what: str,
    kind: str | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out``; on success it replaces ``out``.

    On any error the temporary folder is removed and ``out`` is left as it
    was. An existing non-empty ``out`` without the ``marker`` file (or any of
    the ``marker`` files; so not a ``what`` written by frontdesk) is never
    replaced: that is refused up front, as is one whose manifest names another
    ``kind`` than the one being written (an index build never replaces a router).
    Readers holding files of the old folder open keep reading them.
    """
    out = Path(out)
    _refuse_foreign(out, marker, what, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, out, marker, what, kind)
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


def _refuse_foreign(
    out: Path, marker: str | tuple[str, ...], what: str, kind: str | None = None
) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder; refusing to replace it")
    markers = (marker,) if isinstance(marker, str) else marker
    if out.exists() and not any((out / m).is_file() for m in markers) and any(out.iterdir()):
        raise FileExistsError(
            f"{out}: exists and is not a frontdesk {what}; refusing to replace it"
        )
    if kind is not None and (out / MANIFEST).is_file():
        try:
            found = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("kind", INDEX)
        except (ValueError, AttributeError, RecursionError):
            found = None
        if found != kind:
            name = f"a frontdesk {WHAT[found]}" if found in WHAT else "not frontdesk's"
            raise FileExistsError(
                f"{out}: exists and is {name}, not {_a(what)}; refusing to replace it"
            )


def _swap(tmp: Path, out: Path, marker: str | tuple[str, ...], what: str, kind: str | None) -> None:
    """Two renames, the old folder removed last (restored if the second rename fails)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    _refuse_foreign(out, marker, what, kind)
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
