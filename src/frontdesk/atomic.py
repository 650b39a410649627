"""Write a folder atomically: build it beside its target, swap it in only when complete."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import FrontdeskError


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
