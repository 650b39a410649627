"""Lineage: a model records the logged rows it learned from; overlap with other logs is found."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from frontdesk.artifacts import FORMAT_VERSION, ROUTER, write_manifest
from frontdesk.lineage import (
    CONTACTS_FILE,
    LINEAGE_FILE,
    Lineage,
    LineageError,
    LineageTamperedError,
    TrainingOverlapError,
    training_overlap,
)
from frontdesk.loaders import load_catalog
from frontdesk.logs import DecisionLogs
from frontdesk.orgsim import OrgConfig, continue_org, simulate_org
from frontdesk.orgsim.world import pool_from_catalog

from .conftest import own_export

ORG = OrgConfig(seed=3, contacts=300, agents=6, days=3)


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Logs of one organisation (days 0-2), its held-out days 3-4, and another organisation."""
    path = Path(str(resources.files("frontdesk") / "data" / "demo_catalog.jsonl"))
    pool = pool_from_catalog(load_catalog(path))
    root = tmp_path_factory.mktemp("lineage")
    simulate_org(ORG, pool, root / "logs")
    continue_org(root / "logs", root / "fresh", days=2)
    simulate_org(OrgConfig(seed=4, contacts=300, agents=6, days=3), pool, root / "other")
    return {"logs": root / "logs", "fresh": root / "fresh", "other": root / "other"}


def model_folder(tmp: Path, logs: Path, keep_days: set[int] | None = None) -> Path:
    """A model folder (manifest + lineage) that learned from ``logs`` (only ``keep_days``)."""
    folder = tmp / "model"
    folder.mkdir()
    dl = DecisionLogs.open(logs)
    ids, days = dl.contact_days()
    rows = [(i, d) for i, d in zip(ids, days, strict=True) if keep_days is None or d in keep_days]
    Lineage.of_logs(dl, [i for i, _ in rows], [d for _, d in rows]).save(folder)
    write_manifest(folder, {"format_version": FORMAT_VERSION, "kind": ROUTER})
    return folder


def test_lineage_round_trip_and_overlap_with_its_own_logs(org, tmp_path: Path) -> None:
    folder = model_folder(tmp_path, org["logs"])
    lineage = Lineage.load(folder)
    assert lineage.rows == 300 and lineage.days == [0, 1, 2]
    assert lineage.first_contact == "c000-00000" and lineage.last_contact == "c002-00099"
    assert lineage.organisation == DecisionLogs.open(org["logs"]).organisation
    assert len(lineage.contacts) == 300 and np.all(np.diff(lineage.contacts.astype(float)) > 0)
    saved = json.loads((folder / LINEAGE_FILE).read_text())
    assert set(saved["files"]) == {f"contacts-00{d}.parquet" for d in range(3)}
    found = lineage.overlap(DecisionLogs.open(org["logs"]))
    assert found is not None and (found.rows, found.of_rows) == (300, 300)
    assert found.days == [0, 1, 2] and len(found.files) == 3
    assert found.describe("logs/org") == (
        "300 of the 300 rows of logs/org (days 0-2; 3 of the very files it read: "
        "contacts-000.parquet … contacts-002.parquet)"
    )


def test_held_out_days_and_other_organisations_do_not_overlap(org, tmp_path: Path) -> None:
    lineage = Lineage.load(model_folder(tmp_path, org["logs"]))
    assert lineage.overlap(DecisionLogs.open(org["fresh"])) is None
    # Another organisation has the same contact ids (c000-00000 ...) but other contacts.
    assert lineage.overlap(DecisionLogs.open(org["other"])) is None


def test_partial_overlap_names_the_days(org, tmp_path: Path) -> None:
    lineage = Lineage.load(model_folder(tmp_path, org["logs"], keep_days={0, 2}))
    found = lineage.overlap(DecisionLogs.open(org["logs"]))
    assert found is not None and found.rows == 200 and found.days == [0, 2]
    assert len(found.files) == 3  # it read every file, though it kept only some of their rows


def test_an_export_without_organisation_is_matched_by_contact_id(org, tmp_path: Path) -> None:
    lineage = Lineage.load(model_folder(tmp_path, org["logs"]))
    export = tmp_path / "export"
    shutil.copytree(org["logs"], export)
    own_export(export, drop=("organisation", "files", "bytes"))  # nothing says whose it is
    found = lineage.overlap(DecisionLogs.open(export))
    assert found is not None and found.rows == 300 and len(found.files) == 3
    assert not found.by_contact_id_only  # the very files: no doubt whose contacts they are
    # Re-written (other bytes, same contacts): the contact ids alone match, and it says so.
    import pyarrow.parquet as pq

    for f in export.glob("contacts-*.parquet"):
        pq.write_table(pq.read_table(f), f, compression="gzip")
    found = lineage.overlap(DecisionLogs.open(export))
    assert found is not None and found.rows == 300 and found.files == []
    assert found.by_contact_id_only and '"organisation" in their manifest.json' in found.describe(
        "x"
    )


def test_missing_tampered_or_malformed_lineage_is_refused(org, tmp_path: Path) -> None:
    folder = model_folder(tmp_path, org["logs"])
    # Tampered: the manifest's checksum catches it.
    text = (folder / LINEAGE_FILE).read_text()
    (folder / LINEAGE_FILE).write_text(text.replace('"rows": 300', '"rows": 3'))
    with pytest.raises(LineageError, match=r"lineage\.json: checksum mismatch.*retrain it"):
        Lineage.load(folder)
    # Missing (a model from before lineage existed).
    (folder / LINEAGE_FILE).unlink()
    (folder / CONTACTS_FILE).unlink()
    write_manifest(folder, {"format_version": FORMAT_VERSION, "kind": ROUTER})
    with pytest.raises(LineageError, match=r"no lineage\.json, so which logs it learned from"):
        Lineage.load(folder)
    # Malformed, but consistent with its manifest.
    (folder / LINEAGE_FILE).write_text(json.dumps({"format_version": 1, "logs": "x"}))
    np.save(folder / CONTACTS_FILE, np.zeros(1, dtype=np.uint64))
    write_manifest(folder, {"format_version": FORMAT_VERSION, "kind": ROUTER})
    with pytest.raises(LineageError, match=r"lineage\.json: malformed \(KeyError"):
        Lineage.load(folder)
    (folder / LINEAGE_FILE).write_text("[1, 2]")
    write_manifest(folder, {"format_version": FORMAT_VERSION, "kind": ROUTER})
    with pytest.raises(LineageError, match=r"lineage\.json: not a JSON object"):
        Lineage.load(folder)


def test_training_overlap_refuses_warns_or_passes(org, tmp_path: Path) -> None:
    logs = DecisionLogs.open(org["logs"])
    model = model_folder(tmp_path, org["logs"], keep_days={1})
    with pytest.raises(TrainingOverlapError) as refused:
        training_overlap(logs, [str(model)])
    line = str(refused.value)
    assert "\n" not in line and line.startswith(f"{model} learned from 100 of the 300 rows")
    assert f"--continue {org['logs']}" in line and "--allow-training-overlap" in line
    (warning,) = training_overlap(logs, [str(model)], allow=True)
    assert warning.startswith("training overlap: ") and "(days 1;" in warning
    assert training_overlap(DecisionLogs.open(org["fresh"]), [str(model)]) == []
    assert training_overlap(logs, []) == []  # a policy that learned nothing from logs
    # An organisation's own export (no simulator): no --continue advice, the days instead.
    export = tmp_path / "export"
    shutil.copytree(org["logs"], export)
    own_export(export)
    with pytest.raises(
        TrainingOverlapError, match=r"contacts it did not learn from \(after day 1\)"
    ):
        training_overlap(DecisionLogs.open(export), [str(model)])
    # A tampered model: no waiver helps (the model itself cannot be loaded either).
    text = (model / LINEAGE_FILE).read_text()
    (model / LINEAGE_FILE).write_text(text.replace('"rows": 100', '"rows": 10'))
    with pytest.raises(LineageTamperedError, match="checksum mismatch"):
        training_overlap(logs, [str(model)], allow=True)
    (model / LINEAGE_FILE).write_text(text)
    # A model whose lineage is unknown: refused, or with the waiver, "not checked".
    (model / LINEAGE_FILE).unlink()
    (model / CONTACTS_FILE).unlink()
    write_manifest(model, {"format_version": FORMAT_VERSION, "kind": ROUTER})
    with pytest.raises(LineageError, match=r"no lineage\.json.*--allow-training-overlap"):
        training_overlap(logs, [str(model)])
    (warning,) = training_overlap(logs, [str(model)], allow=True)
    assert warning.startswith("not checked for training overlap: ")
