"""Lineage: which logged decisions a trained model learned from, and whether given logs overlap.

A model folder that can act as a policy (a router) keeps ``lineage.json``
(the log folder's path, organisation and fingerprint, the
sha256 of every decision file read, the days and contact-id range) and
``lineage_contacts.npy`` (a sorted 64-bit hash of every contact id it
learned from). Both are covered by the folder's manifest, so a tampered
lineage fails the checksum check. ``Lineage.overlap`` compares that with a
log folder: the same decision file, or (within one organisation, or where
either side does not say which organisation it is) the same contact ids.
Off-policy estimates on overlapping rows re-weight the very outcomes the
model was fitted to, and overstate it. A ranker trained on suggestion-list
feedback records the log folder in ``ranker.json`` and the hashes of the
decision and contact ids of its rows in ``feedback_lineage.json`` with two
``.npy`` files (``FeedbackLineage``), as does an index fed by ``index add
--from-feedback`` (accumulated over adds); ``feedback_training_overlap`` and
``ranker_training_overlap`` compare them with suggestion logs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FrontdeskError, IndexIntegrityError

LINEAGE_FILE = "lineage.json"
CONTACTS_FILE = "lineage_contacts.npy"
LINEAGE_FORMAT_VERSION = 1


class LineageError(FrontdeskError):
    """A model's lineage is missing or malformed, so what it learned from is unknown."""


class LineageTamperedError(LineageError):
    """A model folder no longer matches its manifest: neither it nor its lineage can be used."""


class TrainingOverlapError(FrontdeskError):
    """A model would be judged on logged decisions it learned from."""


def contact_hashes(ids: Sequence[str]) -> np.ndarray:
    """A 64-bit hash (blake2b) of each contact id, in order."""
    return np.fromiter(
        (
            int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little")
            for i in ids
        ),
        dtype=np.uint64,
        count=len(ids),
    )


@dataclass(frozen=True)
class Overlap:
    """What a model learned from among some logs: rows, their days, identical files."""

    rows: int
    of_rows: int
    days: list[int]
    files: list[str]
    by_contact_id_only: bool = False  # neither files nor organisation matched: ids alone did

    def describe(self, logs: str) -> str:
        """``2,000 of the 2,000 rows of logs/org (days 0-3; the very files it read: …)``."""
        notes = [f"days {_ranges(self.days)}"] if self.days else []
        if self.files:
            names = self.files if len(self.files) <= 2 else [self.files[0], "…", self.files[-1]]
            notes.append(f"{len(self.files)} of the very files it read: {' '.join(names)}")
        if self.by_contact_id_only:
            notes.append(
                "matched by contact id alone, as the logs or the model name no organisation; "
                'if they are another organisation\'s, say so with "organisation" in their manifest.json'
            )
        if not self.rows:  # the same files, though not (by organisation) the same contacts
            names = self.files if len(self.files) <= 2 else [self.files[0], "…", self.files[-1]]
            return f"{len(self.files)} of the very files of {logs} ({' '.join(names)})"
        where = f"{self.rows:,} of the {self.of_rows:,} rows of {logs}"
        return where + (f" ({'; '.join(notes)})" if notes else "")


@dataclass(frozen=True, eq=False)
class Lineage:
    """What one model learned from (see the module docstring)."""

    logs: str
    organisation: str | None
    world_sha256: str | None
    files: dict[str, str]
    rows: int
    days: list[int]
    first_contact: str
    last_contact: str
    contacts: np.ndarray  # sorted uint64 hashes

    @classmethod
    def of_logs(cls, logs: Any, contact_ids: Sequence[str], days: Sequence[int]) -> Lineage:
        """The lineage of a model trained on these rows (in the order read) of a DecisionLogs."""
        return cls(
            logs=str(Path(logs.root).resolve()),
            organisation=logs.organisation,
            world_sha256=logs.world_sha256,
            files=logs.file_checksums(),
            rows=len(contact_ids),
            days=sorted({int(d) for d in days}),
            first_contact=str(contact_ids[0]) if len(contact_ids) else "",
            last_contact=str(contact_ids[-1]) if len(contact_ids) else "",
            contacts=np.unique(contact_hashes(contact_ids)),
        )

    def to_json(self) -> dict[str, Any]:
        """lineage.json's content (the contact hashes go to their own .npy file)."""
        return {
            "format_version": LINEAGE_FORMAT_VERSION,
            "kind": "decision-logs",
            "logs": self.logs,
            "organisation": self.organisation,
            "world_sha256": self.world_sha256,
            "files": self.files,
            "rows": self.rows,
            "days": self.days,
            "contact_ids": {"first": self.first_contact, "last": self.last_contact},
            "contacts_file": CONTACTS_FILE,
        }

    def save(self, folder: str | Path) -> None:
        """Write lineage.json and the contact hashes into a model folder being built."""
        folder = Path(folder)
        np.save(folder / CONTACTS_FILE, self.contacts)
        (folder / LINEAGE_FILE).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> Lineage:
        """Read a model folder's lineage; the folder's manifest is verified first."""
        from .artifacts import read_manifest

        folder = Path(folder)
        try:
            read_manifest(folder)  # a tampered lineage (or model) fails here
        except IndexIntegrityError as exc:
            raise LineageTamperedError(
                f"{exc}; what it learned from cannot be trusted: retrain it "
                "(`frontdesk train router`)"
            ) from None
        path = folder / LINEAGE_FILE
        if not path.is_file():
            raise LineageError(
                f"{folder}: no {LINEAGE_FILE}, so which logs it learned from is unknown "
                "(trained by an older frontdesk?); retrain it with `frontdesk train router`"
            )
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LineageError(f"{path}: not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise LineageError(f"{path}: not a JSON object")
        if data.get("format_version") != LINEAGE_FORMAT_VERSION:
            raise LineageError(
                f"{path}: format_version {data.get('format_version')!r}; this frontdesk reads "
                f"{LINEAGE_FORMAT_VERSION}"
            )
        try:
            contacts = np.load(folder / str(data.get("contacts_file", CONTACTS_FILE)))
            ids = data["contact_ids"]
            lineage = cls(
                logs=str(data["logs"]),
                organisation=data.get("organisation"),
                world_sha256=data.get("world_sha256"),
                files={str(k): str(v) for k, v in data["files"].items()},
                rows=int(data["rows"]),
                days=[int(d) for d in data["days"]],
                first_contact=str(ids["first"]),
                last_contact=str(ids["last"]),
                contacts=np.asarray(contacts, dtype=np.uint64),
            )
        except FileNotFoundError as exc:
            raise LineageError(f"{path}: {Path(exc.filename).name} is missing") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LineageError(f"{path}: malformed ({type(exc).__name__}: {exc})") from None
        if len(lineage.contacts) > lineage.rows:
            raise LineageError(
                f"{path}: {len(lineage.contacts)} contact hashes for {lineage.rows} rows"
            )
        return lineage

    def overlap(self, logs: Any) -> Overlap | None:
        """The rows of ``logs`` (a DecisionLogs) this model learned from, or None.

        Streams the logs' contact ids and days in batches (two columns read).
        """
        learned_files = set(self.files.values())
        same_files = [n for n, d in logs.file_checksums().items() if d in learned_files]
        other = logs.organisation
        same_org = self.organisation is None or other is None or other == self.organisation
        rows, total, seen_days = 0, 0, set()
        for _, batch in logs.batches(columns=["contact_id", "day"]):
            total += batch.num_rows
            if not (same_org and len(self.contacts)):
                continue
            h = contact_hashes([str(c) for c in batch.column("contact_id").to_pylist()])
            pos = np.searchsorted(self.contacts, h).clip(max=len(self.contacts) - 1)
            hit = self.contacts[pos] == h
            if hit.any():
                rows += int(hit.sum())
                day = np.asarray(batch.column("day").to_numpy(zero_copy_only=False))
                seen_days.update(int(d) for d in np.unique(day[hit]))
        if not rows and not same_files:
            return None
        unnamed = self.organisation is None or other is None
        return Overlap(rows, total, sorted(seen_days), same_files, unnamed and not same_files)


def training_overlap(logs: Any, models: Sequence[str], allow: bool = False) -> list[str]:
    """Refuse (or, with ``allow``, warn about) judging models on logs they learned from.

    ``models`` are model folders (a policy's ``learned_from()``); ``logs`` a
    DecisionLogs. Returns the warnings; raises TrainingOverlapError on an
    overlap and LineageError on a model whose lineage is unknown, unless ``allow``.
    """
    warnings: list[str] = []
    for folder in models:
        try:
            lineage = Lineage.load(folder)
        except LineageTamperedError:
            raise  # the model itself cannot be loaded either: no waiver helps
        except LineageError as exc:
            if not allow:
                raise LineageError(
                    f"{exc}; or pass --allow-training-overlap to judge it unchecked"
                ) from None
            warnings.append(f"not checked for training overlap: {exc}")
            continue
        found = lineage.overlap(logs)
        if found is None:
            continue
        what = (
            f"{folder} learned from {found.describe(str(logs.root))}: estimates there "
            "re-weight the outcomes it was fitted to and overstate it"
        )
        if allow:
            warnings.append(f"training overlap: {what}")
            continue
        last = max(lineage.days) if lineage.days else None
        if logs.meta.get("config"):
            fix = (
                f"judge it on held-out days: `frontdesk simulate org --continue {logs.root} "
                "--days 3 --out LOGS_FRESH`, then `simulate policy LOGS_FRESH`"
            )
        else:
            fix = "judge it on logs of contacts it did not learn from" + (
                f" (after day {last})" if last is not None else ""
            )
        raise TrainingOverlapError(
            f"{what}; {fix} (--allow-training-overlap runs anyway, with a warning)"
        )
    return warnings


def ranker_training_overlap(ranker: str | Path, logs: Any, allow: bool = False) -> list[str]:
    """Refuse a ranker that learned from these logs; warn where it may have.

    ``logs`` offers ``root``, ``manifest_sha256``, ``file_checksums()`` and
    what :meth:`Lineage.overlap` reads (``SuggestionLogs`` does). A ranker with
    ``lineage.json`` is checked like a router (contacts and files). A
    ``feedback`` entry anywhere in its ``ranker.json`` (``train ranker
    --feedback LOGS`` records one under ``training``) naming these logs'
    manifest sha256, one of their files' or their folder refuses it (unless
    ``allow``: then a warning). Without either, a ``ranker.json`` that names
    this folder is a loud warning: what the ranker learned from is not recorded.
    First, its ``feedback_lineage.json`` (``FeedbackLineage``) is checked row by row:
    a ranker trained on a ``logs join --until`` window of the same decision log is
    refused on the bigger folder too.
    """
    folder = Path(ranker)
    warnings = feedback_training_overlap([("ranker", folder)], logs, allow)
    if warnings:  # overlapping rows found (and allowed): the checks below would say it again
        return warnings
    if (folder / LINEAGE_FILE).is_file():
        warnings += training_overlap(logs, [str(folder)], allow)
    try:
        config = json.loads((folder / "ranker.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return warnings  # loading the ranker says what is wrong with it
    mine = {logs.manifest_sha256, *logs.file_checksums().values()}
    root = Path(logs.root).resolve()

    def names_folder(values: Sequence[str]) -> bool:
        for v in values:
            if len(v) > 4096 or v in mine:
                continue
            try:
                p = Path(v).expanduser().resolve()
            except (OSError, RuntimeError, ValueError):
                continue
            if p == root or root in p.parents:
                return True
        return False

    entries = list(_feedback_entries(config))
    if entries:
        found = [v for entry in entries for v in _strings(entry)]
        if mine & set(found) or names_folder(found):
            what = (
                f"{folder} learned from the very logs it would be judged on ({logs.root}: its "
                "ranker.json's feedback names them): estimates there re-weight the choices it "
                "was fitted to and overstate it"
            )
            if not allow:
                raise TrainingOverlapError(
                    f"{what}; judge it on logs joined after its training "
                    "(`frontdesk logs join DIR --since …`) (--allow-training-overlap runs anyway)"
                )
            warnings.append(f"training overlap: {what}")
        return warnings
    if isinstance(config, dict) and names_folder(list(_strings(config))):
        warnings.append(
            f"{folder}: its ranker.json names {logs.root}, and what it learned from is not "
            "recorded (no lineage, no feedback entry): if it was trained on these logs, the "
            "estimates overstate it; judge it on logs joined after its training"
        )
    return warnings


def _strings(x: Any) -> Iterator[str]:
    """Every string in a JSON value, at any depth."""
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from _strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from _strings(v)


def _feedback_entries(x: Any) -> Iterator[Any]:
    """The values of every ``feedback`` key in a JSON object, at any depth."""
    if isinstance(x, dict):
        for key, v in x.items():
            if key == "feedback":
                yield v
            else:
                yield from _feedback_entries(v)


def _ranges(days: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2, 5``."""
    out: list[str] = []
    start = prev = None
    for d in sorted(days):
        if start is None:
            start = prev = d
        elif d == prev + 1:  # type: ignore[operator]
            prev = d
        else:
            out.append(f"{start}-{prev}" if start != prev else f"{start}")
            start = prev = d
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else f"{start}")
    return ", ".join(out)


FEEDBACK_LINEAGE_FILE = "feedback_lineage.json"
FEEDBACK_DECISIONS_FILE = "feedback_decisions.npy"
FEEDBACK_CONTACTS_FILE = "feedback_contacts.npy"
FEEDBACK_LINEAGE_FILES = (FEEDBACK_LINEAGE_FILE, FEEDBACK_DECISIONS_FILE, FEEDBACK_CONTACTS_FILE)


@dataclass(frozen=True, eq=False)
class FeedbackLineage:
    """The logged suggestion rows a ranker or an index learned from (``--feedback``,
    ``--from-feedback``): sorted 64-bit hashes of their decision ids and contact ids, and
    the log folders read. Saved beside the model (``feedback_lineage.json`` and two
    ``.npy`` files), covered by its manifest."""

    decisions: np.ndarray  # sorted uint64 hashes
    contacts: np.ndarray  # sorted uint64 hashes (empty where none was recorded)
    sources: list[dict[str, Any]]

    @classmethod
    def of_rows(
        cls,
        decision_ids: Sequence[str],
        contact_ids: Sequence[str],
        source: dict[str, Any],
    ) -> FeedbackLineage:
        """The lineage of rows of one log folder (``source``: its path, sha256, rows)."""
        return cls(
            np.unique(contact_hashes([str(d) for d in decision_ids if d is not None])),
            np.unique(contact_hashes([str(c) for c in contact_ids if c is not None])),
            [source],
        )

    def merged(self, other: FeedbackLineage | None) -> FeedbackLineage:
        """Both lineages' rows and sources (an index fed from several log folders)."""
        if other is None:
            return self
        return FeedbackLineage(
            np.union1d(other.decisions, self.decisions).astype(np.uint64),
            np.union1d(other.contacts, self.contacts).astype(np.uint64),
            [*other.sources, *self.sources],
        )

    def to_json(self) -> dict[str, Any]:
        """feedback_lineage.json's content (the hashes go to their own .npy files)."""
        return {
            "format_version": LINEAGE_FORMAT_VERSION,
            "kind": "suggestion-feedback",
            "decisions": len(self.decisions),
            "contacts": len(self.contacts),
            "decisions_file": FEEDBACK_DECISIONS_FILE,
            "contacts_file": FEEDBACK_CONTACTS_FILE,
            "sources": self.sources,
        }

    def save(self, folder: str | Path) -> None:
        """Write the lineage into a model folder being built (before its manifest)."""
        folder = Path(folder)
        np.save(folder / FEEDBACK_DECISIONS_FILE, np.asarray(self.decisions, dtype=np.uint64))
        np.save(folder / FEEDBACK_CONTACTS_FILE, np.asarray(self.contacts, dtype=np.uint64))
        (folder / FEEDBACK_LINEAGE_FILE).write_text(json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> FeedbackLineage | None:
        """A model folder's feedback lineage (None: it records none). Its three files must be
        listed in the folder's manifest and match their sha256 (the rest of the folder is
        checked where the model is loaded)."""
        from .artifacts import MANIFEST, sha256_file

        folder = Path(folder)
        path = folder / FEEDBACK_LINEAGE_FILE
        if not path.is_file():
            return None
        try:
            listed = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("files")
        except (OSError, ValueError, AttributeError):
            listed = None
        if not isinstance(listed, dict):
            raise LineageTamperedError(f"{folder / MANIFEST}: missing or unreadable")
        for name in FEEDBACK_LINEAGE_FILES:
            p = folder / name
            if name not in listed or not p.is_file() or sha256_file(p) != listed[name]:
                raise LineageTamperedError(
                    f"{p}: not as its manifest lists it; what the model learned from cannot "
                    "be trusted: rebuild it"
                )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format_version") != LINEAGE_FORMAT_VERSION:
                raise LineageError(
                    f"{path}: format_version {data.get('format_version')!r}; this frontdesk "
                    f"reads {LINEAGE_FORMAT_VERSION}"
                )
            return cls(
                np.asarray(np.load(folder / FEEDBACK_DECISIONS_FILE), dtype=np.uint64),
                np.asarray(np.load(folder / FEEDBACK_CONTACTS_FILE), dtype=np.uint64),
                [dict(s) for s in data.get("sources", [])],
            )
        except (ValueError, TypeError, AttributeError, OSError) as exc:
            raise LineageError(f"{path}: malformed ({type(exc).__name__}: {exc})") from None

    def overlap(self, logs: Any) -> tuple[int, int, int]:
        """(rows of ``logs`` with a decision id learned from, rows with only a contact id
        learned from, all rows), streaming the decision and contact ids."""
        by_decision = by_contact = total = 0
        for _, batch in logs.batches(columns=["decision_id", "contact_id"]):
            total += batch.num_rows
            d = _member(self.decisions, batch.column("decision_id").to_pylist())
            c = _member(self.contacts, batch.column("contact_id").to_pylist())
            by_decision += int(d.sum())
            by_contact += int((c & ~d).sum())
        return by_decision, by_contact, total


def _member(sorted_hashes: np.ndarray, ids: Sequence[Any]) -> np.ndarray:
    """Per id (None: never), whether its hash is in ``sorted_hashes``."""
    present = np.array([i is not None for i in ids], dtype=bool)
    if not len(sorted_hashes) or not present.any():
        return np.zeros(len(ids), dtype=bool)
    h = contact_hashes([str(i) for i in ids])
    pos = np.searchsorted(sorted_hashes, h).clip(max=len(sorted_hashes) - 1)
    return (sorted_hashes[pos] == h) & present


def feedback_training_overlap(
    models: Sequence[tuple[str, str | Path]], logs: Any, allow: bool = False
) -> list[str]:
    """Refuse (or, with ``allow``, warn about) judging a ranker or an index on logged rows
    it learned from, by decision id or contact id (``FeedbackLineage``).

    ``models``: (what, folder) pairs, e.g. ``("ranker", RK)``, ``("index", IDX)``;
    ``logs`` offers ``root`` and ``batches`` (``SuggestionLogs`` does). Returns the
    warnings; raises TrainingOverlapError on an overlap unless ``allow``.
    """
    warnings: list[str] = []
    for what, folder in models:
        lineage = FeedbackLineage.load(folder)
        if lineage is None:
            continue
        by_decision, by_contact, total = lineage.overlap(logs)
        if not (by_decision or by_contact):
            continue
        rows = by_decision + by_contact
        how = f"{by_decision:,} by decision id" + (
            f", {by_contact:,} more by contact id" if by_contact else ""
        )
        found = (
            f"the {what} {folder} learned from {rows:,} of the {total:,} rows of {logs.root} "
            f"({how}): estimates there re-weight the choices it was fitted to and overstate it"
        )
        if allow:
            warnings.append(f"training overlap (--allow-training-overlap): {found}")
            continue
        later = (
            "decisions logged after its training (`frontdesk logs join DLOG --since … --out "
            "LOGS_NEW`)"
            if not by_contact
            else "conversations that started after its training (the rows matched by contact "
            "id are later turns of conversations it learned from: a window from --since still "
            "holds them)"
        )
        raise TrainingOverlapError(
            f"{found}; judge it on {later}, or pass --allow-training-overlap to run anyway"
        )
    return warnings
