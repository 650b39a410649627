"""logs ingest / join / info on a decision log written by hand: the merge rule and the counts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from frontdesk.decisions.info import logs_info
from frontdesk.decisions.ingest import ingest_outcomes
from frontdesk.decisions.join import join_logs
from frontdesk.decisions.records import decision_schema, outcome_schema
from frontdesk.decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from frontdesk.decisions.writer import write_rows
from frontdesk.errors import DataError, FrontdeskError
from frontdesk.logs import DecisionLogs

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
AGENTS = [{"agent_id": "a1", "channels": ["chat", "phone"], "capacity": 2},
          {"agent_id": "a2", "channels": ["chat"], "capacity": 1}]  # fmt: skip
CHANNELS = {h: {"cost": 1.0, "base_minutes": 8.0, "agent_share": 1.0} for h in ("phone", "chat")}


def did(i: int) -> str:
    return f"{i:032x}"


def decision(i: int, minutes: float, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {
        "decision_id": did(i), "time": T0 + dt.timedelta(minutes=minutes), "endpoint": "v1",
        "task": "route", "model": "route", "model_version": "1", "role": "default",
        "contact_id": f"c{i}", "text": f"text {i}", "turns": [], "segment": "consumer",
        "language": "en", "wait_min": 1.0, "channel": "chat", "agent_id": "a1",
        "propensity": 0.8, "predicted_topic": "cards", "eligible_channels": ["chat", "chat"],
        "eligible_agents": ["a1", "a2"], "eligible_propensities": [0.8, 0.2],
        "explore": "epsilon=0.4", "waiting": False, "latency_ms": 5.0, **kw,
    }  # fmt: skip


def outcome(i: int, seconds: float, seq: int, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"decision_id": did(i), "received": T0 + dt.timedelta(seconds=seconds), "seq": seq,
            "source": "api", **kw}  # fmt: skip


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    store = DecisionLogDir.create(tmp_path / "dlog", organisation="acme")
    store.describe_model("route", "1", {"task": "route", "channels": CHANNELS,
                                        "topics": ["cards", "refunds"], "agents": AGENTS})  # fmt: skip
    rows = [decision(i, minutes=i) for i in range(6)]
    rows.append(decision(6, 7, role="shadow"))
    rows.append(decision(7, 8, waiting=True, channel=None, agent_id=None, propensity=None))
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), rows, 1)
    full = {"resolved": True, "csat": 4, "handle_time": 10.0, "cost": 2.0}
    outs = [
        outcome(0, 600, 0, **full),
        outcome(0, 900, 1, csat=2, topic="refunds"),  # later and partial: csat and topic win
        outcome(0, 950, 2, csat=None),  # a null never overrides a value
        outcome(1, -60, 3, **full),  # received before its decision: kept, counted early
        outcome(2, 700, 4, resolved=False),  # incomplete: not joined
        outcome(99, 700, 5, **full),  # unknown decision
    ]
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outs, 2)
    return store.root


def test_join_merges_field_by_field_and_counts_what_it_left_out(
    log_dir: Path, tmp_path: Path
) -> None:
    counts = join_logs(log_dir, tmp_path / "logs")
    assert counts["shadow"] == 1 and counts["route"]["waiting"] == 1
    assert counts["route"]["joined"] == 2 and counts["route"]["unjoined"] == 4
    assert counts["route"]["no_outcome"] == 3
    assert counts["outcomes"] == {"rows": 6, "decisions": 4, "duplicates": 2, "unknown": 1,
                                  "early": 1}  # fmt: skip
    logs = DecisionLogs.open(tmp_path / "logs")
    rows = logs.read().to_pandas().set_index("contact_id")
    assert list(rows.index) == ["c0", "c1"]
    assert rows.loc["c0", "csat"] == 2 and rows.loc["c0", "topic"] == "refunds"
    assert bool(rows.loc["c0", "resolved"]) and rows.loc["c1", "topic"] == "cards"
    # the utility of the router's definition, from the merged outcome
    assert rows.loc["c0", "utility"] == pytest.approx(1 + 0.5 * 1 / 4 - 0.5 * 10 / 60 - 0.5 * 0.2)
    assert logs.organisation == "acme" and [a.agent_id for a in logs.roster()] == ["a1", "a2"]
    assert logs.meta["join"] == counts


def test_the_window_and_what_it_refuses(log_dir: Path, tmp_path: Path) -> None:
    counts = join_logs(log_dir, tmp_path / "w", since=T0 + dt.timedelta(minutes=1),
                       until=T0 + dt.timedelta(minutes=3))  # fmt: skip
    assert counts["route"]["decisions"] == 2 and counts["route"]["joined"] == 1
    with pytest.raises(FrontdeskError, match="no decision in the window"):
        join_logs(log_dir, tmp_path / "empty", since=T0 + dt.timedelta(days=1))
    with pytest.raises(FrontdeskError, match="already exists"):
        join_logs(log_dir, tmp_path / "w")
    with pytest.raises(FrontdeskError, match="inside the decision log"):
        join_logs(log_dir, log_dir / "joined")


def test_info_verifies_every_file_and_names_a_damaged_one(log_dir: Path, tmp_path: Path) -> None:
    join_logs(log_dir, tmp_path / "logs")
    info = logs_info(tmp_path / "logs")
    assert info["rows"] == 2 and info["joined"] == 2 and info["unjoined"] == 4
    assert info["checksums_verified"] == info["files"] + 1  # and agents.json
    live = logs_info(log_dir)
    assert live["decisions"] == 8 and live["outcomes"] == 6 and live["files_verified"] == 2
    assert live["models"] == {"route/1": {"default": 7, "shadow": 1}}
    f = next((log_dir / DECISIONS).glob("decisions-*.parquet"))
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0xFF  # one flipped byte inside a page
    f.write_bytes(bytes(data))
    with pytest.raises(DataError, match=f.name):
        logs_info(log_dir)


def test_ingest_takes_csv_jsonl_and_parquet_and_refuses_a_bad_record_whole(
    log_dir: Path, tmp_path: Path
) -> None:
    csv_file = tmp_path / "o.csv"
    csv_file.write_text(f"decision_id,resolved,csat,handle_time,cost\n{did(3)},yes,5,7.5,\n")
    jsonl = tmp_path / "o.jsonl"
    jsonl.write_text(json.dumps({"decision_id": did(4), "workflow_used": "refund"}) + "\n")
    parquet = tmp_path / "o.parquet"
    pq.write_table(pa.table({"decision_id": [did(5)], "cost": [float("nan")]}), parquet)
    for f in (csv_file, jsonl, parquet):
        assert ingest_outcomes(log_dir, f)["outcomes"] == 1
    merged = join_logs(log_dir, tmp_path / "logs")["outcomes"]
    assert merged["rows"] == 9
    bad = tmp_path / "bad.csv"
    bad.write_text(f"decision_id,csat\n{did(3)},4\n{did(4)},9\n")
    before = len(list((log_dir / OUTCOMES).iterdir()))
    with pytest.raises(DataError) as exc:
        ingest_outcomes(log_dir, bad)
    assert exc.value.line == 3 and exc.value.field == "csat"
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(json.dumps({"decision_id": did(3), "mood": "ok"}) + "\n")
    with pytest.raises(DataError, match="mood"):
        ingest_outcomes(log_dir, bad_json)
    assert len(list((log_dir / OUTCOMES).iterdir())) == before  # nothing written


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("decision_id,csat,cost\n{id},4,1.0\n{id},4\n", 3, "cost", "fewer cells"),
        ("decision_id,csat\n{id},4,1\n", 2, None, "more cells"),
        ("decision_id,csat,csat\n{id},4,5\n", 1, "csat", "twice"),
    ],
)
def test_ingest_names_the_line_and_field_of_a_ragged_csv(
    log_dir: Path, tmp_path: Path, text: str, line: int, field: str | None, words: str
) -> None:
    bad = tmp_path / "ragged.csv"
    bad.write_text(text.format(id=did(3)))
    before = len(list((log_dir / OUTCOMES).iterdir()))
    with pytest.raises(DataError, match=words) as exc:
        ingest_outcomes(log_dir, bad)
    assert (exc.value.line, exc.value.field) == (line, field)
    assert len(list((log_dir / OUTCOMES).iterdir())) == before


def test_ingest_reads_a_csv_that_begins_with_a_byte_order_mark(
    log_dir: Path, tmp_path: Path
) -> None:
    f = tmp_path / "excel.csv"
    f.write_bytes("\ufeffdecision_id,resolved\n".encode() + f"{did(3)},yes\n".encode())
    assert ingest_outcomes(log_dir, f)["outcomes"] == 1


def test_a_decision_log_folder_is_never_made_of_another_folder(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        DecisionLogDir.create(tmp_path / "busy")
    with pytest.raises(DataError, match="not a decision log"):
        DecisionLogDir.open(tmp_path / "busy")


def test_the_logs_commands_print_json_and_refuse_bad_input_with_exit_2(
    log_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from frontdesk.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["logs", "join", str(log_dir), "--out", str(tmp_path / "j"),
                              "--since", "2026-12-01T09:00", "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["route"]["joined"] == 2
    res = runner.invoke(app, ["logs", "info", str(tmp_path / "j"), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["rows"] == 2
    res = runner.invoke(app, ["logs", "info", str(tmp_path / "j")])
    assert res.exit_code == 0 and "checksums_verified" in res.stdout
    res = runner.invoke(app, ["logs", "join", str(log_dir), "--out", str(tmp_path / "k"),
                              "--since", "yesterday"])  # fmt: skip
    assert res.exit_code == 2 and "--since 'yesterday'" in res.stderr
    res = runner.invoke(app, ["logs", "ingest", str(log_dir), str(tmp_path / "none.csv")])
    assert res.exit_code == 2 and "file not found" in res.stderr
    res = runner.invoke(app, ["serve", str(tmp_path), "--explore-rate", "0.1"])
    assert res.exit_code == 2 and "--decision-log" in res.stderr


def test_repeated_contact_ids_stay_one_row_each(tmp_path: Path) -> None:
    from frontdesk.decisions.records import new_decision_id

    store = DecisionLogDir.create(tmp_path / "dlog")
    store.describe_model("route", "1", {"task": "route", "channels": CHANNELS,
                                        "topics": ["cards"], "agents": AGENTS})  # fmt: skip
    ids = [new_decision_id() for _ in range(3)]  # one process: ids share their first half
    decs = [{**decision(0, i), "decision_id": d, "contact_id": "same"} for i, d in enumerate(ids)]
    write_rows(store.root / DECISIONS, DECISIONS, decision_schema(), decs, 1)
    full = {"resolved": True, "csat": 4, "handle_time": 10.0, "cost": 2.0}
    outs = [{**outcome(0, 600, i, **full), "decision_id": d} for i, d in enumerate(ids)]
    write_rows(store.root / OUTCOMES, OUTCOMES, outcome_schema(), outs, 2)
    join_logs(store.root, tmp_path / "logs")
    got = DecisionLogs.open(tmp_path / "logs").read().column("contact_id").to_pylist()
    assert len(set(got)) == 3 and got[0] == "same"
