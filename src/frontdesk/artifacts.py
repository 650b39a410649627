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

A write survives a crash at any instant. The writer holds ``.NAME.lock`` (an
flock) and builds ``.NAME.tmp-PID-TAG`` beside the folder; once every file is
written and synced, it writes the commit file ``.frontdesk-commit`` into it
(synced too), then renames ``NAME`` to ``.NAME.old-PID-TAG``, the temporary
folder to ``NAME``, drops the commit file and deletes the old folder (first
renamed ``.NAME.del-PID-TAG``, so a half-deleted folder is never mistaken for a
whole one). Whoever next takes the lock (a writer, or a reader that finds
``NAME`` missing) finishes an interrupted swap: a committed temporary folder is
rolled forward, else the old folder rolled back; then it removes what writers
that are no longer running left behind (PID names the writer; a live one's
folders are kept).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from .errors import DataError, FrontdeskError, IndexIntegrityError
from .limits import loads_json

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COMMIT_FILE = ".frontdesk-commit"
"""Written last into a finished temporary folder: the swap may be rolled forward."""
COMMIT_TEXT = "complete\n"
RECOVER_WAIT_S = 5.0
"""How long a reader that finds a folder mid-swap waits for the live writer to finish it."""

log = logging.getLogger(__name__)

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
    """Every file under ``root`` but its own manifest and commit file (a nested folder's
    count)."""
    own = {root / MANIFEST, root / COMMIT_FILE}
    return [p for p in sorted(root.rglob("*")) if p.is_file() and p not in own]


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
            + (f" (expected {_a(WHAT[kind])})" if kind in WHAT else "")
        )
    try:  # held to the input limits: a damaged manifest is input like any other
        manifest = loads_json(path.read_bytes(), str(path), allow_nan=True)
    except DataError as exc:
        raise IndexIntegrityError(f"unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise _shape_error(path, "not a JSON object")
    found = manifest.get("kind", INDEX)  # indexes named no kind at first
    if not isinstance(found, str) or found not in LOADERS:
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
    recover(path)
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
    recover(root)
    manifest = read_manifest(root, verify=False, kind=kind)
    return resolve_loader(str(manifest["loader"]), root / MANIFEST)(root, **kwargs)


on_step: Callable[[str], None] | None = None
"""Called with the name of each step of a folder write or repair (``STEPS``) as it is
reached; None in use. Crash-injection tests set it to stop a writer exactly there."""

STEPS = (
    "tmp-created",  # the empty temporary folder exists
    "written",  # the caller wrote every file (manifest included)
    "synced",  # every file and folder in it is fsynced
    "committed",  # the commit file is written and synced
    "renamed-old",  # NAME is now .NAME.old-*: no folder at NAME until the next rename
    "renamed-new",  # the temporary folder is NAME
    "uncommitted",  # NAME's commit file is removed
    "old-moved",  # the old folder is .NAME.del-*, about to be deleted
    "done",  # the old folder is deleted
    "restored",  # a repair renamed a leftover to NAME
    "stale-moved",  # a repair renamed a dead writer's leftover to .NAME.del-*
)


def _step(name: str) -> None:
    if on_step is not None:
        on_step(name)


# .NAME.tmp-PID-TAG (being written), .NAME.old-PID-TAG (the replaced folder, whole), and
# .NAME.del-PID-TAG (being deleted); the names frontdesk wrote before PID was in them lack it.
_LEFTOVER = re.compile(r"(?P<stage>tmp|old|del)-(?:(?P<pid>[0-9]+)-)?[0-9a-f]{8}")


def leftovers(out: str | os.PathLike[str]) -> list[tuple[Path, str, int | None]]:
    """What interrupted writes of ``out`` left beside it: (path, stage, writer pid or None),
    stage one of ``tmp``, ``old``, ``del``."""
    out = Path(out)
    prefix = f".{out.name}."
    found: list[tuple[Path, str, int | None]] = []
    try:
        entries = list(os.scandir(out.parent))
    except OSError:
        return found
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        m = _LEFTOVER.fullmatch(entry.name[len(prefix) :])
        if m and entry.is_dir(follow_symlinks=False):
            pid = int(m["pid"]) if m["pid"] else None
            found.append((out.parent / entry.name, m["stage"], pid))
    return sorted(found, key=lambda f: f[0].name)


def _committed(folder: Path) -> bool:
    """Whether a temporary folder was finished: its commit file says so."""
    try:
        return (folder / COMMIT_FILE).read_text() == COMMIT_TEXT
    except (OSError, UnicodeDecodeError):
        return False


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (a zombie is not running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, another user's
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] not in (["Z"], ["X"])


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform syncs a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root`` on disk, so that a commit is never of
    contents still in the page cache (a power cut after the swap keeps whole files)."""
    for p in sorted(root.rglob("*"), reverse=True):
        if p.is_file() and not p.is_symlink():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
        elif p.is_dir():
            _fsync_dir(p)
    _fsync_dir(root)


def _commit(tmp: Path) -> None:
    """Mark a finished temporary folder: synced first, the commit file written last."""
    _step("written")
    _fsync_tree(tmp)
    _step("synced")
    with open(tmp / COMMIT_FILE, "w") as fh:
        fh.write(COMMIT_TEXT)
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(tmp)
    _step("committed")


def _temp_name(out: Path, stage: str) -> Path:
    return out.parent / f".{out.name}.{stage}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.contextmanager
def atomic_folder(
    out: str | os.PathLike[str],
    marker: str | tuple[str, ...],
    what: str,
    kind: str | None = None,
) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``out``; on success it replaces ``out``.

    The write holds ``out``'s lock (``folder_lock``; or uses it, when this thread
    holds it already), which first finishes any write of ``out`` a crash interrupted. On any error the temporary folder is
    removed and ``out`` is left as it was; a crash at any instant leaves ``out``
    whole, or restorable by the next ``recover`` or write (module docstring). An
    existing non-empty ``out`` without the ``marker`` file (or any of the
    ``marker`` files; so not a ``what`` written by frontdesk) is never replaced:
    that is refused up front, as is one whose manifest names another ``kind``
    than the one being written (an index build never replaces a router).
    Readers holding files of the old folder open keep reading them.
    """
    out = Path(out)
    _refuse_foreign(out, marker, what, kind)
    with contextlib.nullcontext() if holds_lock(out) else folder_lock(out):
        _refuse_foreign(out, marker, what, kind)  # again: the lock may have restored it
        tmp = _temp_name(out, "tmp")
        tmp.mkdir()
        _step("tmp-created")
        try:
            yield tmp
            _commit(tmp)
            _swap(tmp, out, marker, what, kind)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


class FolderBusyError(FrontdeskError):
    """Another process (or thread) holds the folder's lock."""


_this_thread = threading.local()  # .held: the lock files this thread holds


def _lock_file(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


def _held() -> set[str]:
    held: set[str] | None = getattr(_this_thread, "held", None)
    if held is None:
        held = _this_thread.held = set()
    return held


def holds_lock(out: str | os.PathLike[str]) -> bool:
    """Whether this thread holds ``out``'s ``folder_lock``."""
    out = Path(out)
    return os.path.realpath(_lock_file(out)) in _held()


@contextlib.contextmanager
def folder_lock(out: str | os.PathLike[str]) -> Iterator[None]:
    """One writer at a time for ``out``: an flock on the sibling file ``.NAME.lock``.

    Taken by every atomic write (one inside a build or update that holds it
    already uses that); a second writer, another thread's or this one's, fails at
    once with a clear error (``FolderBusyError``) instead of waiting or
    overwriting. Taking it first finishes a write of ``out`` that a crash
    interrupted and removes what dead writers left (``repair``). The lock file stays.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    path = _lock_file(out)
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusyError(
                f"{out}: another build or update is writing it; try again"
            ) from None
        key = os.path.realpath(path)
        _held().add(key)
        try:
            repair(out)
            yield
        finally:
            _held().discard(key)
            fcntl.flock(fh, fcntl.LOCK_UN)


def repair(out: str | os.PathLike[str]) -> None:
    """Finish a write of ``out`` that a crash interrupted, then remove what writers that
    no longer run left beside it. The caller holds ``out``'s lock.

    With no folder at ``out``, a committed temporary folder is rolled forward, else
    the newest old folder rolled back. Leftovers of a live writer (its pid runs
    here; this process's own included) are kept: a writer without the lock (an
    older frontdesk) may still be using them.
    """
    out = Path(out)
    found = leftovers(out)
    if not os.path.lexists(out):
        ready = [p for p, stage, _ in found if stage == "tmp" and _committed(p)]
        olds = [p for p, stage, _ in found if stage == "old"]
        pick = max(ready or olds, key=lambda p: p.stat().st_ctime, default=None)
        if pick is not None:
            os.replace(pick, out)
            _fsync_dir(out.parent)
            _step("restored")
            log.warning(
                "%s: restored from %s (%s); a write was interrupted between its renames",
                out,
                pick.name,
                "the finished new version" if ready else "the previous version",
            )
            found = leftovers(out)
    if out.is_dir() and (out / COMMIT_FILE).exists():
        with contextlib.suppress(OSError):
            (out / COMMIT_FILE).unlink()
    for path, stage, pid in found:
        if pid is not None and (pid == os.getpid() or _alive(pid)):
            continue
        trash = path
        if stage != "del":  # a half-deleted folder must never look whole
            trash = _temp_name(out, "del")
            try:
                os.replace(path, trash)
            except OSError:
                continue
            _step("stale-moved")
        shutil.rmtree(trash, ignore_errors=True)


def recover(out: str | os.PathLike[str], wait_s: float = RECOVER_WAIT_S) -> None:
    """Before opening ``out``: if a crashed write left no folder there but one that can
    take its place, restore it (under the lock; ``repair``).

    Does nothing, and needs no write access, when ``out`` exists or nothing can
    restore it. A live writer between its two renames is waited for (up to
    ``wait_s``), never raced.
    """
    out = Path(out)
    if holds_lock(out):  # repaired when this thread took it
        return
    deadline = time.monotonic() + wait_s
    while not os.path.lexists(out):
        found = leftovers(out)
        if not any(stage == "old" or (stage == "tmp" and _committed(p)) for p, stage, _ in found):
            return
        try:
            with folder_lock(out):
                return
        except FolderBusyError:
            if time.monotonic() >= deadline:
                raise FolderBusyError(
                    f"{out}: missing while another process holds its lock and is replacing "
                    "it; try again when that build or update ends"
                ) from None
            time.sleep(0.02)
        except OSError as exc:
            names = ", ".join(p.name for p, _, _ in found)
            raise IndexIntegrityError(
                f"{out}: missing; a write was interrupted, and {names} beside it can take its "
                f"place, but restoring it needs write access to {out.parent} "
                f"({exc.strerror or exc}): open it once as a user who may write there"
            ) from None


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
    """Two renames of the committed ``tmp``, the old folder removed last (restored if the
    second rename fails); a crash anywhere is repaired by the next lock holder."""
    old: Path | None = None
    if os.path.lexists(out):
        _refuse_foreign(out, marker, what, kind)
        old = _temp_name(out, "old")
        os.replace(out, old)
        _step("renamed-old")
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
    else:
        os.replace(tmp, out)
    _fsync_dir(out.parent)
    _step("renamed-new")
    with contextlib.suppress(OSError):  # done: what is left is tidying
        (out / COMMIT_FILE).unlink()
        _step("uncommitted")
        if old is not None:
            trash = _temp_name(out, "del")
            os.replace(old, trash)
            _step("old-moved")
            shutil.rmtree(trash)
    _step("done")
