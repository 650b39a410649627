"""A folder write killed at any instant leaves the folder whole, or restorable by the next
open or write: never missing, never half old and half new.

Each kill is a real process exit (``os._exit`` in a forked child, so no ``finally`` or
``except`` of the writer runs, and the kernel drops its lock), placed deterministically
at a named step of the write (``artifacts.on_step``) or inside a file being written or
deleted. The slow test kills writers with SIGKILL at random instants.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from frontdesk import artifacts, build_index
from frontdesk.artifacts import (
    COMMIT_FILE,
    MANIFEST,
    ROUTER,
    FolderBusyError,
    atomic_folder,
    folder_lock,
    leftovers,
    read_manifest,
    recover,
    write_manifest,
)
from frontdesk.errors import IndexIntegrityError
from frontdesk.index import builder, update, update_index
from frontdesk.index.store import WorkflowIndex

from .conftest import TINY_CATALOG, write_jsonl

KILLED = 77  # the exit status of a child stopped at its kill point
OLD = TINY_CATALOG  # six workflows
NEW = [*TINY_CATALOG[:3], {"id": "card-frozen", "title": "Card was frozen"}]
THIRD = [{"id": "only-one", "title": "Only workflow"}]
EXTRA = {"id": "invoice-copy", "title": "Send a copy of an invoice"}


def ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


def in_child(action: Callable[[], None], arm: Callable[[], None]) -> int:
    """Run ``action`` in a forked child with its kill point armed by ``arm``; the child's
    exit status (KILLED when the kill point was reached)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            arm()
            action()
            code = 0
        except BaseException:  # noqa: BLE001 - reported by the parent's assertion
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def kill_at(step: str) -> Callable[[], None]:
    """Arm: exit the process when the write reaches ``step``."""

    def arm() -> None:
        def hook(name: str) -> None:
            if name == step:
                os._exit(KILLED)

        artifacts.on_step = hook

    return arm


def kill_mid_manifest() -> None:
    """Arm: write half of the new manifest, then exit (a crash inside a file's write)."""

    def half(root: Path, manifest: dict) -> dict:
        text = json.dumps(manifest, indent=2)
        (Path(root) / MANIFEST).write_text(text[: len(text) // 2])
        os._exit(KILLED)

    builder.write_manifest = half  # type: ignore[assignment]
    update.write_manifest = half  # type: ignore[assignment]


def kill_mid_delete() -> None:
    """Arm: delete half of the old folder's files, then exit."""

    def half(path: str | os.PathLike[str], *args: object, **kwargs: object) -> None:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file())
        for p in files[: max(1, len(files) // 2)]:
            p.unlink()
        os._exit(KILLED)

    artifacts.shutil.rmtree = half  # type: ignore[assignment]


WRITE_STEPS = [s for s in artifacts.STEPS if s not in ("restored", "stale-moved")]
# Which version the folder must hold once reopened, by kill point.
EXPECTED = {
    "mid-manifest": "old",
    "tmp-created": "old",
    "written": "old",
    "synced": "old",
    "committed": "old",  # finished, but NAME was never replaced
    "renamed-old": "new",  # NAME is missing: the committed new one is rolled forward
    "renamed-new": "new",
    "uncommitted": "new",
    "old-moved": "new",
    "mid-delete": "new",
    "done": "new",
}
assert set(EXPECTED) == {*WRITE_STEPS, "mid-manifest", "mid-delete"}


def arm_for(point: str) -> Callable[[], None]:
    return {"mid-manifest": kill_mid_manifest, "mid-delete": kill_mid_delete}.get(
        point, kill_at(point)
    )


def workflow_ids(out: Path) -> list[str]:
    """Open the index as a reader would (verifying every file's sha256)."""
    return WorkflowIndex.load(out).workflow_ids


def only_index_left(parent: Path, out: Path) -> None:
    assert leftovers(out) == []
    assert not (out / COMMIT_FILE).exists()
    assert {p.name for p in parent.iterdir()} == {out.name, f".{out.name}.lock", "cat"}


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """An index of OLD at tmp_path/index, and catalogs OLD, NEW, THIRD, EXTRA."""
    cats = tmp_path / "cat"
    cats.mkdir()
    paths = {
        name: write_jsonl(cats / f"{name}.jsonl", rows)
        for name, rows in (("old", OLD), ("new", NEW), ("third", THIRD), ("extra", [EXTRA]))
    }
    build_index(paths["old"], tmp_path / "index", dense=False)
    return tmp_path / "index", paths


@pytest.mark.parametrize("point", list(EXPECTED))
def test_a_build_killed_at_any_point_leaves_old_or_new(site, point: str) -> None:
    out, cats = site
    status = in_child(lambda: build_index(cats["new"], out, dense=False), arm_for(point))
    assert status == KILLED, f"the build never reached {point}"
    if point == "renamed-old":  # the window the issue found: no folder at NAME at all
        assert not out.exists()
    want = {"old": ids(OLD), "new": ids(NEW)}[EXPECTED[point]]
    assert workflow_ids(out) == want  # opens (a reader restores it), whole and verified
    assert workflow_ids(out) == want  # and again: the repair is done once
    build_index(cats["third"], out, dense=False)  # the next write works and tidies up
    assert workflow_ids(out) == ids(THIRD)
    only_index_left(out.parent, out)


@pytest.mark.parametrize(
    "point", ["mid-manifest", "committed", "renamed-old", "renamed-new", "old-moved", "mid-delete"]
)
def test_an_update_killed_at_any_point_leaves_old_or_new(site, point: str) -> None:
    out, cats = site
    status = in_child(lambda: update_index(out, add=cats["extra"]), arm_for(point))
    assert status == KILLED
    want = ids(OLD) if EXPECTED[point] == "old" else [*ids(OLD), EXTRA["id"]]
    assert workflow_ids(out) == want
    update_index(out, remove=["api-key-rotate"])  # the next update starts from what opened
    assert workflow_ids(out) == [i for i in want if i != "api-key-rotate"]
    only_index_left(out.parent, out)


def write_generic(out: Path, version: str) -> None:
    """A folder of another kind (a router's manifest) through the same atomic write."""
    with atomic_folder(out, MANIFEST, "router", ROUTER) as tmp:
        (tmp / "part").mkdir()
        (tmp / "part" / "weights.txt").write_text(version * 1000)
        (tmp / "config.json").write_text(json.dumps({"version": version}))
        write_manifest(tmp, {"kind": ROUTER})


def generic_version(out: Path) -> str:
    recover(out)
    read_manifest(out, kind=ROUTER)  # every sha256: never a mix of two versions
    version = json.loads((out / "config.json").read_text())["version"]
    assert (out / "part" / "weights.txt").read_text() == version * 1000
    return str(version)


@pytest.mark.parametrize("point", [p for p in EXPECTED if p != "mid-manifest"])
def test_any_saved_folder_killed_at_any_point_leaves_old_or_new(tmp_path, point: str) -> None:
    out = tmp_path / "router"
    write_generic(out, "a")
    assert in_child(lambda: write_generic(out, "b"), arm_for(point)) == KILLED
    assert generic_version(out) == {"old": "a", "new": "b"}[EXPECTED[point]]
    write_generic(out, "c")
    assert generic_version(out) == "c"
    assert leftovers(out) == []


@pytest.mark.parametrize("repair_point", ["restored", "stale-moved", "mid-delete"])
def test_a_repair_killed_at_any_point_is_finished_by_the_next(site, repair_point: str) -> None:
    out, cats = site
    assert in_child(lambda: build_index(cats["new"], out, dense=False), kill_at("renamed-old"))
    assert not out.exists()
    # a reader restores it, and is itself killed part-way
    arm = kill_mid_delete if repair_point == "mid-delete" else kill_at(repair_point)
    assert in_child(lambda: recover(out), arm) == KILLED
    assert workflow_ids(out) == ids(NEW)
    build_index(cats["third"], out, dense=False)
    only_index_left(out.parent, out)


def test_the_next_update_repairs_without_an_open_first(site) -> None:
    out, cats = site
    assert in_child(lambda: build_index(cats["new"], out, dense=False), kill_at("renamed-old"))
    assert not out.exists()
    update_index(out, add=cats["extra"])  # `index add` right after the crash
    assert workflow_ids(out) == [*ids(NEW), EXTRA["id"]]
    only_index_left(out.parent, out)


def test_an_encoder_folder_is_restored_when_its_path_is_resolved(tmp_path: Path) -> None:
    from frontdesk.encoding.model_files import resolve_model

    out = tmp_path / "model"
    write_generic(out, "a")
    assert in_child(lambda: write_generic(out, "b"), kill_at("renamed-old")) == KILLED
    assert resolve_model(out) == out and generic_version(out) == "b"


def test_a_first_build_killed_between_commit_and_rename_is_rolled_forward(
    tmp_path: Path,
) -> None:
    cat = write_jsonl(tmp_path / "c.jsonl", NEW)
    out = tmp_path / "index"
    assert in_child(lambda: build_index(cat, out, dense=False), kill_at("committed")) == KILLED
    assert not out.exists()
    assert workflow_ids(out) == ids(NEW)


def test_a_first_build_killed_before_commit_leaves_nothing_to_open(tmp_path: Path) -> None:
    cat = write_jsonl(tmp_path / "c.jsonl", NEW)
    out = tmp_path / "index"
    assert in_child(lambda: build_index(cat, out, dense=False), kill_at("synced")) == KILLED
    with pytest.raises(IndexIntegrityError, match="folder not found"):
        WorkflowIndex.load(out)
    assert [stage for _, stage, _ in leftovers(out)] == ["tmp"]  # an open removes nothing
    build_index(cat, out, dense=False)
    assert leftovers(out) == []


def test_leftovers_of_an_older_frontdesk_are_rolled_back(site) -> None:
    """The state the issue found: NAME renamed to .NAME.old-TAG (no pid, no commit file),
    the new folder not yet renamed."""
    out, cats = site
    tmp = out.parent / ".index.tmp-0badc0de"
    build_index(cats["new"], out.parent / "other", dense=False)
    shutil.move(out.parent / "other", tmp)
    os.replace(out, out.parent / ".index.old-1a2b3c4d")
    assert workflow_ids(out) == ids(OLD)  # not committed: the old one is rolled back
    build_index(cats["third"], out, dense=False)
    assert leftovers(out) == []


def test_opening_a_whole_folder_writes_nothing(site) -> None:
    """With NAME in place, a reader neither repairs nor cleans: no write access needed."""
    out, cats = site
    assert in_child(lambda: build_index(cats["new"], out, dense=False), kill_at("committed"))
    parent = out.parent
    lock = parent / ".index.lock"
    lock.unlink()  # so that taking the lock would show
    before = sorted(p.name for p in parent.iterdir())
    if os.geteuid() != 0:  # root writes anywhere; elsewhere, prove it on a read-only folder
        parent.chmod(0o555)
    try:
        assert workflow_ids(out) == ids(OLD)
    finally:
        parent.chmod(0o755)
    assert sorted(p.name for p in parent.iterdir()) == before  # no lock taken, nothing removed


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_folders_of_dead_writers_are_removed_and_live_ones_kept(site) -> None:
    out, cats = site
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = dead_pid()
        names = {
            "dead-tmp": f".index.tmp-{dead}-0000beef",
            "dead-old": f".index.old-{dead}-1111beef",
            "dead-del": f".index.del-{dead}-2222beef",
            "live-tmp": f".index.tmp-{live.pid}-3333beef",
            "live-old": f".index.old-{live.pid}-4444beef",
            "legacy-tmp": ".index.tmp-5555beef",  # an older frontdesk's: no pid, so no writer
        }
        for name in names.values():
            (out.parent / name).mkdir()
            (out.parent / name / "big.npy").write_bytes(b"\0" * 4096)
        WorkflowIndex.load(out)  # an open removes nothing
        assert all((out.parent / n).is_dir() for n in names.values())
        build_index(cats["new"], out, dense=False)  # a write removes the dead writers' only
        kept = sorted(p.name for p, _, _ in leftovers(out))
        assert kept == sorted([names["live-old"], names["live-tmp"]])
        assert workflow_ids(out) == ids(NEW)
    finally:
        live.kill()
        live.wait()
    build_index(cats["old"], out, dense=False)  # its writer is gone now
    assert leftovers(out) == []


def test_a_zombie_writer_counts_as_dead(site) -> None:
    """A writer killed but not yet reaped by its parent still has a pid: not a live one."""
    out, cats = site
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{proc.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # exited, not reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (out.parent / f".index.tmp-{proc.pid}-0000beef").mkdir()
    try:
        build_index(cats["new"], out, dense=False)
        assert leftovers(out) == []
    finally:
        proc.wait()


def test_a_reader_waits_for_a_live_writer_between_its_renames(site) -> None:
    """A reader that finds NAME missing while the writer still holds the lock does not
    race it: it waits, and opens what the writer swapped in."""
    out, cats = site
    staged = out.parent / "staged"
    build_index(cats["new"], staged, dense=False)
    locked, swapped = threading.Event(), threading.Event()

    def writer() -> None:
        with folder_lock(out):
            os.replace(out, out.parent / f".index.old-{os.getpid()}-0000beef")
            (staged / COMMIT_FILE).write_text(artifacts.COMMIT_TEXT)
            tmp = out.parent / f".index.tmp-{os.getpid()}-1111beef"
            os.replace(staged, tmp)
            locked.set()
            time.sleep(0.5)
            os.replace(tmp, out)
            (out / COMMIT_FILE).unlink()
            swapped.set()

    t = threading.Thread(target=writer)
    t.start()
    try:
        locked.wait(5)
        assert not out.exists()
        assert workflow_ids(out) == ids(NEW)  # waited for the writer's rename
        assert swapped.is_set()
    finally:
        t.join()


def test_a_reader_gives_up_on_a_writer_stuck_between_its_renames(site) -> None:
    out, _ = site
    old = out.parent / f".index.old-{os.getpid()}-0000beef"
    with folder_lock(out):
        os.replace(out, old)
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                recover(out, wait_s=0.2)
            except BaseException as exc:  # noqa: BLE001 - checked below
                errors.append(exc)

        t = threading.Thread(target=reader)
        t.start()
        t.join()
        assert len(errors) == 1 and isinstance(errors[0], FolderBusyError)
        assert "missing while another process holds its lock" in str(errors[0])
        assert old.is_dir()  # untouched
        os.replace(old, out)


def test_a_second_writer_in_the_same_thread_is_turned_away(site) -> None:
    out, cats = site
    with folder_lock(out), pytest.raises(FolderBusyError, match="another build or update"):
        build_index(cats["new"], out, dense=False)
    assert workflow_ids(out) == ids(OLD)


# -- real SIGKILLs at random instants -------------------------------------------------------

WRITER = """
import sys, time
from frontdesk import artifacts, build_index
from frontdesk.index import update_index
out, old, new, extra, stretch = sys.argv[1:6]
if float(stretch):  # every step of the swap lasts longer: kills land in it more often
    artifacts.on_step = lambda step: time.sleep(float(stretch))
print("ready", flush=True)
i = 0
while True:
    build_index(new if i % 2 else old, out, dense=False)
    update_index(out, add=extra)
    i += 1
"""


def state_at_kill(out: Path) -> str:
    """What a kill left: NAME present or missing, and the stages of the leftovers."""
    stages = sorted(
        {
            stage + ("(committed)" if stage == "tmp" and (p / COMMIT_FILE).is_file() else "")
            for p, stage, _ in leftovers(out)
        }
    )
    return ("present" if out.exists() else "MISSING") + "".join(f" +{s}" for s in stages)


@pytest.mark.slow
@pytest.mark.parametrize("stretch", [0.0, 0.05])
def test_writers_killed_at_random_instants_never_lose_the_index(site, stretch: float) -> None:
    out, cats = site
    rng = random.Random(25)
    runs = 15
    outcomes: dict[str, int] = {}
    whole = {
        tuple(ids(OLD)),
        tuple(ids(NEW)),
        (*ids(OLD), EXTRA["id"]),
        (*ids(NEW), EXTRA["id"]),
    }
    for _ in range(runs):
        args = [str(out), *(str(cats[k]) for k in ("old", "new", "extra")), str(stretch)]
        proc = subprocess.Popen([sys.executable, "-c", WRITER, *args], stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = state_at_kill(out)
        outcomes[state] = outcomes.get(state, 0) + 1
        assert tuple(workflow_ids(out)) in whole, state
    build_index(cats["old"], out, dense=False)
    assert leftovers(out) == []
    print(f"\n{runs} kill -9 runs (steps stretched {stretch}s): {outcomes}; all reopened whole")
