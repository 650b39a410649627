"""The organisation simulator: determinism, the logs' contract, capacity, exact expectations."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from frontdesk.orgsim import OrgConfig, World, run_day, simulate_org
from frontdesk.orgsim.dispatch import BatchDispatcher, SequentialDispatcher, oracle_values
from frontdesk.orgsim.world import CHANNELS, SEGMENTS

from ..conftest import SMALL_ORG_KW, edit_json, own_export

SMALL = OrgConfig(**SMALL_ORG_KW)


def test_same_seed_same_logs_other_seed_other_logs(tmp_path: Path, demo_pool) -> None:
    simulate_org(SMALL, demo_pool, tmp_path / "a")
    simulate_org(SMALL, demo_pool, tmp_path / "b")
    simulate_org(replace(SMALL, seed=6), demo_pool, tmp_path / "c")
    a = pq.read_table(tmp_path / "a" / "contacts-001.parquet")
    assert a.equals(pq.read_table(tmp_path / "b" / "contacts-001.parquet"))
    assert not a.equals(pq.read_table(tmp_path / "c" / "contacts-001.parquet"))
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == [
        "agents.json", "contacts-000.parquet", "contacts-001.parquet", "manifest.json",
        "pool.parquet", "world.json",
    ]  # fmt: skip


def test_logged_propensities_and_eligible_sets(tmp_path: Path, demo_pool, small_world) -> None:
    simulate_org(SMALL, demo_pool, tmp_path / "logs")
    t = pq.read_table(tmp_path / "logs" / "contacts-000.parquet").to_pylist()
    assert len(t) == SMALL.contacts_per_day
    langs = {a: set(small_world.agents.languages[i]) for i, a in enumerate(small_world.agents.ids)}
    for row in t:
        pairs = list(zip(row["eligible_channels"], row["eligible_agents"], strict=True))
        probs = row["eligible_propensities"]
        assert abs(sum(probs) - 1.0) < 1e-9
        chosen = pairs.index((row["channel"], row["agent_id"]))
        assert row["propensity"] == pytest.approx(probs[chosen])
        assert 0 < row["propensity"] <= 1
        assert all(row["language"] in langs[a] for _, a in pairs)  # language is a hard constraint
        assert row["wait_min"] >= 0 and 1 <= row["csat"] <= 5
        assert row["segment"] in SEGMENTS and row["channel"] in CHANNELS
    # The logging policy explores: not every choice is the greedy one.
    assert min(r["propensity"] for r in t) < 0.5


def test_capacity_holds_for_every_policy(small_world: World) -> None:
    contacts = small_world.contacts(3)
    for disp in (
        SequentialDispatcher("random", None),
        SequentialDispatcher("rule", 0.0),
        BatchDispatcher("oracle", oracle_values),
    ):
        run = run_day(small_world, contacts, disp, 3)
        assert run.capacity_violations == 0
        assert run.max_load_ratio <= 1.0
        assert all(d is not None for d in run.decisions)  # every contact is eventually served
        assert (run.wait >= 0).all()


def test_oracle_beats_rule_beats_random(small_world: World) -> None:
    contacts = small_world.contacts(4)
    u = {
        name: float(run_day(small_world, contacts, d, 4).expected["utility"].mean())
        for name, d in {
            "random": SequentialDispatcher("random", None),
            "rule": SequentialDispatcher("rule", 0.0),
            "oracle": BatchDispatcher("oracle", oracle_values),
        }.items()
    }
    assert u["oracle"] > u["rule"] > u["random"]


def test_expected_outcomes_are_the_mean_of_realised_ones(small_world: World) -> None:
    # One contact on one (channel, agent), many independent draws of its random numbers.
    c = small_world.contacts(0, n=1)
    rng = np.random.default_rng(0)
    n = 40_000
    rows = np.zeros(n, dtype=int)
    ch, ag = np.full(n, 1), np.full(n, 2)
    exp = small_world.expected(c, rows, ch, ag, np.full(n, 4.0))
    c.noise = rng.random((n, 6))
    real = small_world.realise(c, np.arange(n), exp, ch)
    real["resolution"] = real.pop("resolved").astype(float)
    for key in ("resolution", "csat", "handle_time", "cost", "utility"):
        se = real[key].std() / np.sqrt(n)
        assert abs(real[key].mean() - exp[key][0]) < 4 * se, key  # unbiased, within 4 SE


def test_conversations_carry_profile_and_follow_ups(small_world: World) -> None:
    c = small_world.contacts(0)
    convs = [small_world.conversation(c, i) for i in range(len(c))]
    follow = [x for x in convs if x["context"]["turns"]]
    assert 0.1 < len(follow) / len(convs) < 0.3  # about 20 % send a vague follow-up
    assert all(x["context"]["turns"][0]["role"] == "user" for x in follow)
    assert set(convs[0]["context"]["user"]) == {
        "segment", "country", "plan", "tenure_days", "language", "prior_contacts",
    }  # fmt: skip


def test_world_needs_agents(demo_pool) -> None:
    with pytest.raises(ValueError, match="at least 4 agents"):
        World(replace(SMALL, agents=2), demo_pool)


def test_continue_writes_later_days_of_the_same_world(tmp_path: Path, demo_pool) -> None:
    import json

    from frontdesk.logs import DecisionLogs
    from frontdesk.orgsim import continue_org

    simulate_org(SMALL, demo_pool, tmp_path / "logs")
    continue_org(tmp_path / "logs", tmp_path / "fresh", days=2)
    continue_org(tmp_path / "fresh", tmp_path / "later", days=1, contacts=50)
    logs, fresh, later = (DecisionLogs.open(tmp_path / n) for n in ("logs", "fresh", "later"))
    assert [f.name for f in fresh.files] == ["contacts-002.parquet", "contacts-003.parquet"]
    assert [f.name for f in later.files] == ["contacts-004.parquet"]
    # The same organisation: config, roster, pool and identity; new days, so new contact ids.
    assert fresh.meta["config"] == logs.meta["config"] == later.meta["config"]
    assert fresh.organisation == logs.organisation == later.organisation is not None
    for name in ("agents.json", "pool.parquet"):
        assert (tmp_path / "fresh" / name).read_bytes() == (tmp_path / "logs" / name).read_bytes()
    old_ids, old_days = logs.contact_days()
    new_ids, new_days = fresh.contact_days()
    assert not set(old_ids) & set(new_ids) and set(new_days) == {2, 3}
    assert len(new_ids) == 2 * SMALL.contacts_per_day
    assert len(later.contact_days()[0]) == 50 and later.meta["contacts_per_day"] == 50
    meta = json.loads((tmp_path / "fresh" / "manifest.json").read_text())
    assert meta["kind"] == "frontdesk-logs" and "config" not in meta  # the simulator's is apart
    assert meta["days"] == [2, 3] and meta["continues"]["days"] == [0, 1]
    assert meta["continues"]["world_sha256"] == logs.world_sha256
    assert meta["logging_policy"] == logs.meta["logging_policy"]
    # A continued day is that day of the same world: its contacts are the world's own.
    world = World(SMALL, demo_pool)
    day2 = pq.read_table(tmp_path / "fresh" / "contacts-002.parquet").to_pylist()
    contacts = world.contacts(2)
    assert [r["text"] for r in day2] == [
        world.conversation(contacts, i)["text"] for i in range(len(contacts))
    ]


def test_continue_refuses_what_it_cannot_continue(tmp_path: Path, demo_pool) -> None:
    import shutil

    from frontdesk.errors import DataError, FrontdeskError
    from frontdesk.orgsim import continue_org

    simulate_org(SMALL, demo_pool, tmp_path / "logs")
    with pytest.raises(FrontdeskError, match=r"is \(inside\) the folder being continued"):
        continue_org(tmp_path / "logs", tmp_path / "logs", days=1)
    export = tmp_path / "export"
    shutil.copytree(tmp_path / "logs", export)
    own_export(export)  # as a real organisation's export: no simulator behind it
    with pytest.raises(DataError, match=r"world\.json: config: missing: .*simulate org"):
        continue_org(export, tmp_path / "out", days=1)
    with pytest.raises(DataError, match="nowhere: folder not found"):
        continue_org(tmp_path / "nowhere", tmp_path / "out2", days=1)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "manifest.json").write_text("{}")
    with pytest.raises(DataError, match="not a frontdesk log folder .it is a model folder"):
        continue_org(tmp_path / "model", tmp_path / "out2", days=1)
    # An existing folder is replaced only when asked.
    continue_org(tmp_path / "logs", tmp_path / "fresh", days=1)
    with pytest.raises(FrontdeskError, match="fresh: already exists; .* --overwrite"):
        continue_org(tmp_path / "logs", tmp_path / "fresh", days=2)
    with pytest.raises(FrontdeskError, match="logs: already exists"):
        simulate_org(SMALL, demo_pool, tmp_path / "logs")
    continue_org(tmp_path / "logs", tmp_path / "fresh", days=2, overwrite=True)
    assert len(list((tmp_path / "fresh").glob("contacts-*.parquet"))) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp folder


def test_truth_on_continued_days_and_refusals(tmp_path: Path, demo_pool) -> None:
    import shutil

    import pyarrow as pa

    from frontdesk.errors import DataError
    from frontdesk.orgsim import continue_org
    from frontdesk.orgsim.truth import true_values

    simulate_org(SMALL, demo_pool, tmp_path / "logs")
    continue_org(tmp_path / "logs", tmp_path / "fresh", days=1, contacts=120)
    t = true_values(tmp_path / "fresh", "rule", metrics=["utility"], segments=["segment"])
    assert set(t["utility"]) >= {"__overall__", "individual"}
    assert -1 < t["utility"]["__overall__"] < 1.5
    # The logging policy's exact value is near its realised mean on its own logs.
    logged = true_values(tmp_path / "fresh", "logging", metrics=["resolution"], segments=[])
    resolved = pq.read_table(tmp_path / "fresh" / "contacts-002.parquet")["resolved"].to_numpy()
    se = resolved.std() / np.sqrt(len(resolved))
    assert abs(logged["resolution"]["__overall__"] - resolved.mean()) < 4 * se
    # Rows the rebuilt world did not write are refused, not mis-scored.
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "fresh", moved)
    f = moved / "contacts-002.parquet"
    table = pq.read_table(f)
    texts = table["text"].to_pylist()
    texts[3] = "a text the simulator never wrote"
    pq.write_table(
        table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts)), f
    )
    edit_json(
        moved / "manifest.json",
        lambda m: [m[k].pop("contacts-002.parquet") for k in ("files", "bytes")],
    )
    with pytest.raises(DataError, match=r"contacts-002\.parquet: not listed in manifest\.json"):
        true_values(moved, "rule", metrics=["utility"], segments=[])
    edit_json(moved / "manifest.json", lambda m: [m.pop("files"), m.pop("bytes")])
    with pytest.raises(DataError, match=r"text: contact c002-\d{5} is not the one the rebuilt"):
        true_values(moved, "rule", metrics=["utility"], segments=[])
    own_export(moved)
    with pytest.raises(DataError, match="config: missing"):
        true_values(moved, "rule", metrics=["utility"], segments=[])


def test_continue_and_truth_refuse_another_world(tmp_path: Path, demo_pool) -> None:
    import shutil

    import pyarrow as pa

    from frontdesk.errors import DataError, FrontdeskError
    from frontdesk.orgsim import continue_org
    from frontdesk.orgsim.truth import true_values

    logs = tmp_path / "logs"
    simulate_org(SMALL, demo_pool, logs)
    with pytest.raises(FrontdeskError, match="fewer than one per day"):
        continue_org(logs, tmp_path / "a", days=3, contacts=2)
    with pytest.raises(FrontdeskError, match=r"is \(inside\) the folder being continued"):
        continue_org(logs, logs / "inner", days=1)

    def copy_with(name: str, change) -> Path:  # type: ignore[no-untyped-def]
        out = tmp_path / name
        shutil.copytree(logs, out)
        edit_json(out / "world.json", lambda world: change(out, world))
        # as an export without checksums: the contents are checked
        edit_json(out / "manifest.json", lambda m: [m.pop("files"), m.pop("bytes")])
        return out

    foreign = copy_with("foreign", lambda out, meta: meta["config"].update(colour="blue"))
    relisted = copy_with(
        "relisted",
        lambda out, meta: (out / "agents.json").write_text(
            (out / "agents.json").read_text().replace('"capacity": 1', '"capacity": 3', 1)
        ),
    )

    def rewrite_day(out: Path, meta: dict) -> None:  # type: ignore[type-arg]
        f = out / "contacts-001.parquet"
        t = pq.read_table(f)
        texts = t["text"].to_pylist()
        texts[0] = "not what this world's contact said"
        pq.write_table(t.set_column(t.schema.get_field_index("text"), "text", pa.array(texts)), f)

    rewritten = copy_with("rewritten", rewrite_day)
    for folder, says in (
        (foreign, r"world\.json: config\.colour: not a field of this simulator"),
        (relisted, r"agents\.json: not the roster of the world rebuilt"),
        (rewritten, r"text: contact c001-00000 is not the one the rebuilt world has"),
    ):
        with pytest.raises(DataError, match=says):
            continue_org(folder, tmp_path / f"{folder.name}-more", days=1)
        with pytest.raises(DataError, match=says):
            true_values(folder, "rule", metrics=["utility"], segments=[])
        assert not (tmp_path / f"{folder.name}-more").exists()
    with pytest.raises(FrontdeskError, match="--segment nosuch: not a column of"):
        true_values(logs, "rule", metrics=["utility"], segments=["nosuch"])
    with pytest.raises(FrontdeskError, match="no metric asked for"):
        true_values(logs, "rule", metrics=[], segments=[])


def test_log_files_are_read_in_day_order_past_day_999(tmp_path: Path) -> None:
    import json

    from frontdesk.logs import DecisionLogs

    for name in ("contacts-1000.parquet", "contacts-999.parquet", "contacts-998.parquet"):
        (tmp_path / name).write_bytes(b"")
    meta = {"format_version": 1, "channels": {}, "topics": []}
    (tmp_path / "world.json").write_text(json.dumps(meta))
    logs = DecisionLogs.open(tmp_path, verify=False)
    assert [f.name for f in logs.files] == [
        "contacts-998.parquet", "contacts-999.parquet", "contacts-1000.parquet",
    ]  # fmt: skip
