"""One scheme for every saved folder: a manifest naming kind, format, loader and checksums."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from frontdesk import artifacts
from frontdesk.artifacts import (
    ENCODER,
    INDEX,
    LOADERS,
    LOGS,
    MANIFEST,
    MODEL_VERSION,
    ROUTER,
    kind_of,
    read_manifest,
)
from frontdesk.errors import FrontdeskError, IndexIntegrityError
from frontdesk.index.store import WorkflowIndex
from frontdesk.logs import DecisionLogs
from frontdesk.routing import Router
from frontdesk.scoring.base import Scorer
from frontdesk.scoring.packaging import detect_kind, package_model

from .conftest import edit_json


@pytest.fixture(scope="module")
def onnx_copy_dir(tiny_index: Path, encoder) -> Path:  # tiny_index: the copy exists by now
    from frontdesk.encoding.onnx_copy import onnx_copy

    folder = onnx_copy(encoder.path, encoder.fingerprint)
    if folder is None:
        pytest.skip("no ONNX copy of the bundled encoder could be built here")
    return folder


def _saved(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if kind == MODEL_VERSION:
        return package_model(request.getfixturevalue("tiny_index"), "s", tmp_path)
    fixture = {INDEX: "tiny_index", ROUTER: "router_dir", LOGS: "org_logs"}
    if kind == ENCODER:
        return request.getfixturevalue("onnx_copy_dir")
    return request.getfixturevalue(fixture[kind])


@pytest.mark.parametrize("kind", [INDEX, ROUTER, LOGS, ENCODER, MODEL_VERSION])
def test_every_saved_folder_names_its_kind_loader_and_every_file(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder = _saved(kind, request, tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["kind"] == kind and manifest["format_version"] == artifacts.FORMAT_VERSION
    assert manifest["loader"] == LOADERS[kind]
    on_disk = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == set(manifest["bytes"]) == on_disk - {MANIFEST}
    assert all(len(d) == 64 for d in manifest["files"].values())
    assert kind_of(folder) == kind
    read_manifest(folder)  # verifies every sha256


def test_one_loader_opens_every_kind(
    tiny_index: Path, router_dir: Path, org_logs: Path, onnx_copy_dir: Path, encoder, tmp_path
) -> None:
    from frontdesk.encoding.encoder import ContextEncoder

    assert isinstance(artifacts.load(tiny_index), WorkflowIndex)
    assert isinstance(artifacts.load(router_dir, encoder=encoder), Router)
    assert isinstance(artifacts.load(org_logs), DecisionLogs)
    enc = artifacts.load(onnx_copy_dir)
    assert isinstance(enc, ContextEncoder) and enc.kind == "onnx"
    version = package_model(tiny_index, "s", tmp_path)
    scorer = artifacts.load(version)
    assert isinstance(scorer, Scorer)
    assert scorer.predict_batch([scorer.warmup()])  # loaded and answering


def test_a_folder_of_another_kind_is_refused_by_name(router_dir: Path, org_logs: Path) -> None:
    with pytest.raises(IndexIntegrityError, match="a frontdesk router, not an index"):
        artifacts.load(router_dir, kind=INDEX)
    with pytest.raises(IndexIntegrityError, match="a frontdesk log folder, not a router"):
        Router.load(org_logs)
    with pytest.raises(IndexIntegrityError, match="a frontdesk router, not an index"):
        WorkflowIndex.load(router_dir)


def test_a_manifest_cannot_name_code_to_run(tiny_index: Path, tmp_path: Path) -> None:
    folder = tmp_path / "index"
    shutil.copytree(tiny_index, folder)
    edit_json(folder / MANIFEST, lambda m: m.update(loader="shutil.rmtree"))
    with pytest.raises(IndexIntegrityError, match="loader 'shutil.rmtree' is not the index's"):
        artifacts.load(folder)
    edit_json(folder / MANIFEST, lambda m: m.update(loader="frontdesk.artifacts.shutil.rmtree"))
    with pytest.raises(IndexIntegrityError, match="is not the index's"):
        artifacts.load(folder)
    # another kind's loader: kind= would no longer say what comes back
    edit_json(folder / MANIFEST, lambda m: m.update(loader=LOADERS[ENCODER]))
    with pytest.raises(IndexIntegrityError, match="is not the index's"):
        artifacts.load(folder, kind=INDEX)
    with pytest.raises(IndexIntegrityError, match="'frontdesk.other' is not one of frontdesk's"):
        artifacts.resolve_loader("frontdesk.other", folder)
    assert folder.is_dir()


def test_a_model_version_may_not_name_other_code(tiny_index: Path, tmp_path: Path) -> None:
    version = package_model(tiny_index, "s", tmp_path)
    (version / "artifacts" / "evil.py").write_text("raise SystemExit('imported')\n")
    edit_json(version / "model-settings.json", lambda s: s.update(implementation="evil.X"))
    artifacts.write_manifest(version, read_manifest(version, verify=False))  # re-signed
    with pytest.raises(IndexIntegrityError, match="'evil.X' is not one of frontdesk's runtimes"):
        artifacts.load(version)


def test_an_index_manifest_without_a_kind_still_reads_as_an_index(
    tiny_index: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "index"
    shutil.copytree(tiny_index, folder)
    edit_json(folder / MANIFEST, lambda m: [m.pop("kind"), m.pop("loader"), m.pop("bytes")])
    assert kind_of(folder) == INDEX
    assert isinstance(artifacts.load(folder), WorkflowIndex)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: [], None),  # the control: unchanged, it loads
        (lambda m: m.update(kind="frontdesk-spaceship"), "kind 'frontdesk-spaceship' is not one"),
        (lambda m: m.update(files=[]), "files must map each file's path to its sha256"),
        (lambda m: m.update(bytes={"x": "12"}), "bytes must map each file's path to its size"),
        (lambda m: m.update(format_version=9), "index format 9, this frontdesk reads format 1"),
        (lambda m: m["files"].pop("workflows.jsonl"), "files not in the manifest: workflows"),
        (lambda m: m["files"].update({"../x": "0" * 64}), "files names '../x', outside the folder"),
    ],
)
def test_a_damaged_manifest_names_what_is_wrong(
    tiny_index: Path, tmp_path: Path, change, message: str | None
) -> None:
    folder = tmp_path / "index"
    shutil.copytree(tiny_index, folder)
    edit_json(folder / MANIFEST, change)
    if message is None:
        read_manifest(folder)
        return
    with pytest.raises(IndexIntegrityError, match=message):
        read_manifest(folder)


def test_a_manifest_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST).write_text("[1, 2]")
    with pytest.raises(IndexIntegrityError, match="not a JSON object"):
        read_manifest(tmp_path)


def test_a_quick_check_catches_a_truncated_file_without_hashing(
    tiny_index: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "index"
    shutil.copytree(tiny_index, folder)
    f = folder / "workflows.jsonl"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(
        IndexIntegrityError, match=r"workflows\.jsonl: \d+ bytes, the manifest says"
    ):
        read_manifest(folder, verify="quick")
    with pytest.raises(IndexIntegrityError, match="checksum mismatch"):
        read_manifest(folder)


def test_packaging_reads_the_kind(
    tiny_index: Path, router_dir: Path, org_logs: Path, tmp_path: Path
) -> None:
    assert detect_kind(tiny_index) == "suggester"
    assert detect_kind(router_dir) == "router"
    with pytest.raises(FrontdeskError, match="a frontdesk log folder, which is not served"):
        detect_kind(org_logs)
    with pytest.raises(FrontdeskError, match="--ranker: .*a frontdesk router, not a ranker"):
        package_model(tiny_index, "s", tmp_path, ranker=router_dir)
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_index, damaged)
    with open(damaged / "workflows.jsonl", "a") as fh:
        fh.write(" ")
    with pytest.raises(FrontdeskError, match=r"workflows\.jsonl: checksum mismatch"):
        package_model(damaged, "d", tmp_path / "models")
    assert not (tmp_path / "models" / "d").exists()


def test_a_tampered_model_version_fails_to_load(tiny_index: Path, tmp_path: Path) -> None:
    version = package_model(tiny_index, "s", tmp_path)
    edit_json(version / "model-settings.json", lambda s: s.update(max_batch_size=7))
    with pytest.raises(IndexIntegrityError, match=r"model-settings\.json: checksum mismatch"):
        artifacts.load(version)


def test_a_saved_folder_is_never_replaced_by_one_of_another_kind(
    router_dir: Path, tiny_catalog: Path, demo_pool, tmp_path: Path, encoder
) -> None:
    from frontdesk import build_index
    from frontdesk.orgsim import OrgConfig, simulate_org

    router = tmp_path / "router"
    shutil.copytree(router_dir, router)
    before = (router / MANIFEST).read_bytes()
    with pytest.raises(FileExistsError, match="is a frontdesk router, not an index"):
        build_index(tiny_catalog, router, encoder=encoder)
    with pytest.raises(FileExistsError, match="is a frontdesk router, not a log folder"):
        simulate_org(OrgConfig(seed=1, contacts=20, agents=4, days=1), demo_pool, router,
                     overwrite=True)  # fmt: skip
    assert (router / MANIFEST).read_bytes() == before
    read_manifest(router, kind=ROUTER)
