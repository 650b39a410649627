"""``frontdesk logs info``: what a log folder or a decision log holds, every file verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artifacts import MANIFEST, read_manifest
from ..errors import DataError, IndexIntegrityError
from .store import DECISIONS, DESCRIPTION, OUTCOMES, DecisionLogDir, read_verified


def logs_info(path: str | Path) -> dict[str, Any]:
    """Counts of a joined/simulated log folder or of a server's decision log.

    Every file is read in full: a log folder's against its manifest's sha256, a
    decision log's Parquet pages against their CRCs. Raises naming the first
    file that fails.
    """
    root = Path(path)
    if (root / DESCRIPTION).is_file():
        return _decision_log_info(root)
    if (root / MANIFEST).is_file() or (root / "world.json").is_file():
        return _log_folder_info(root)
    if not root.is_dir():
        raise DataError(str(root), None, None, "folder not found")
    raise DataError(
        str(root), None, None,
        f"neither a log folder ({MANIFEST}) nor a decision log ({DESCRIPTION})",
    )  # fmt: skip


def _log_folder_info(root: Path) -> dict[str, Any]:
    from ..logs import DecisionLogs

    try:
        meta = read_manifest(root, verify=True) if (root / MANIFEST).is_file() else {}
    except IndexIntegrityError as exc:
        raise DataError(str(root / MANIFEST), None, None, str(exc)) from None
    files = sorted(p for p in root.glob("*.parquet"))
    rows = {"contacts": 0, "suggestions": 0}
    for f in files:
        t = read_verified(f)
        for kind in rows:
            if f.name.startswith(f"{kind}-"):
                rows[kind] += t.num_rows
    if rows["contacts"]:
        DecisionLogs.open(root)  # the routing rows' columns and description
    join = meta.get("join", {})
    return {
        "path": str(root),
        "kind": "log folder",
        "organisation": meta.get("organisation"),
        "rows": rows["contacts"],
        "suggestion_rows": rows["suggestions"],
        "days": meta.get("days", []),
        "files": len(files),
        "checksums_verified": len(meta.get("files", {})),
        "joined": join.get("route", {}).get("joined"),
        "unjoined": join.get("route", {}).get("unjoined"),
        "join": join or None,
        "source": meta.get("source"),
    }


def _decision_log_info(root: Path) -> dict[str, Any]:
    import pyarrow.compute as pc

    store = DecisionLogDir.open(root)
    per_model: dict[str, dict[str, int]] = {}
    n_dec, first, last = 0, None, None
    for _, t in store.tables(DECISIONS):  # every column: a page is checked only when read
        n_dec += t.num_rows
        for m, v, r in zip(
            t.column("model").to_pylist(),
            t.column("model_version").to_pylist(),
            t.column("role").to_pylist(),
            strict=True,
        ):
            key = f"{m}/{v}"
            per_model.setdefault(key, {})
            per_model[key][r] = per_model[key].get(r, 0) + 1
        if t.num_rows:
            lo, hi = pc.min(t.column("time")).as_py(), pc.max(t.column("time")).as_py()
            first = lo if first is None else min(first, lo)
            last = hi if last is None else max(last, hi)
    n_out = sum(t.num_rows for _, t in store.tables(OUTCOMES))
    return {
        "path": str(root),
        "kind": "decision log",
        "organisation": store.organisation,
        "decisions": n_dec,
        "outcomes": n_out,
        "decision_files": len(store.files(DECISIONS)),
        "outcome_files": len(store.files(OUTCOMES)),
        "files_verified": len(store.files(DECISIONS)) + len(store.files(OUTCOMES)),
        "temp_files": len(store.temp_files()),
        "first": first.isoformat() if first else None,
        "last": last.isoformat() if last else None,
        "models": per_model,
    }
