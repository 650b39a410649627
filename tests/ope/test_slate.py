"""Suggestion lists off-policy: exact pscores, unbiasedness on known worlds, obp parity, engines."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from frontdesk.artifacts import LOGS, write_manifest
from frontdesk.errors import DataError, FrontdeskError
from frontdesk.lineage import TrainingOverlapError, ranker_training_overlap
from frontdesk.ope.slate import (
    SLATE_ESTIMATORS,
    SlateArrays,
    SuggestionLogs,
    add_up,
    estimate,
    metric_names,
    position_probability,
    prefix_probability,
    row_terms,
    simulate_suggestions,
    slate_arrays,
)

from ..conftest import TINY_CATALOG, write_jsonl
from .compare import worst_gap

ITEMS = [f"w{i}" for i in range(8)]


# -- exact probabilities, by hand ----------------------------------------------------------------


def test_position_and_prefix_probabilities_by_hand() -> None:
    ranked = ["a", "b", "c", "d"]  # window W = 3, p = 0.3; d stays at position 4
    p, w = 0.3, 3
    assert position_probability("a", 0, ranked, w, p) == pytest.approx(0.3 / 3 + 0.7)
    assert position_probability("b", 0, ranked, w, p) == pytest.approx(0.3 / 3)
    assert position_probability("d", 0, ranked, w, p) == 0.0  # d is never in the window
    assert position_probability("d", 3, ranked, w, p) == 1.0
    assert position_probability("c", 3, ranked, w, p) == 0.0
    # prefixes: p (W - a)!/W! + (1 - p) 1{as ranked}
    assert prefix_probability(["a", "b"], ranked, w, p, 2) == pytest.approx(0.3 / 6 + 0.7)
    assert prefix_probability(["b", "a"], ranked, w, p, 2) == pytest.approx(0.3 / 6)
    assert prefix_probability(["b"], ranked, w, p, 1) == pytest.approx(0.3 / 3)
    assert prefix_probability(["c", "b", "a", "d"], ranked, w, p, 4) == pytest.approx(0.3 / 6)
    assert prefix_probability(["c", "b", "a", "x"], ranked, w, p, 4) == 0.0
    assert prefix_probability(["a", "a"], ranked, w, p, 2) == 0.0
    # no exploration: an indicator
    assert prefix_probability(["a", "b"], ranked, 0, 0.0, 2) == 1.0
    assert prefix_probability(["b", "a"], ranked, 0, 0.0, 2) == 0.0


def test_probabilities_match_the_servers_draws(tmp_path: Path) -> None:
    """The server's own draw (DecisionLogger.explore_lists): frequencies and the logged
    shown_propensity match the formulas, so a change on the server side is caught here."""
    from frontdesk.scoring.decision_logging import DecisionLogger, DecisionLogSettings
    from frontdesk.scoring.protocol import InferenceResponse, Tensor

    ranked, p, w, rows, calls = ["a", "b", "c", "d", "e"], 0.4, 3, 1000, 60
    settings = DecisionLogSettings(folder=str(tmp_path), explore_top_k=w, explore_rate=p)
    logger = DecisionLogger(settings, seed=0)
    first = {x: 0 for x in ranked}
    pair = 0
    try:
        for _ in range(calls):
            response = InferenceResponse("suggest", "1", [
                Tensor("workflow_id", [rows, 5], "BYTES", ranked * rows),
                Tensor("score", [rows, 5], "FP64", [0.9, 0.8, 0.7, 0.6, 0.5] * rows),
                Tensor("abstained", [rows], "BOOL", [False] * rows),
            ])  # fmt: skip
            info = logger.explore_lists(response)
            ids = response.outputs[0].data
            for i, entry in enumerate(info):
                shown = list(ids[i * 5 : (i + 1) * 5])
                assert entry["ranked_ids"] == ranked
                mu = prefix_probability(shown, ranked, w, p, len(shown))
                assert entry["shown_propensity"] == pytest.approx(mu, rel=1e-12)
                first[shown[0]] += 1
                pair += shown[:2] == ["c", "a"]
    finally:
        logger.close()
    n = rows * calls
    for x in ranked:
        assert first[x] / n == pytest.approx(position_probability(x, 0, ranked, w, p), abs=0.01)
    assert pair / n == pytest.approx(prefix_probability(["c", "a"], ranked, w, p, 2), abs=0.005)


# -- a synthetic world: explored lists, an agent whose behaviour is known ----------------------


def explored_world(n: int, seed: int, *, length: int = 4, top_k: int = 3, rate: float = 0.5):  # type: ignore[no-untyped-def]
    """Contexts with a right workflow, a logging ranker, lists as the server explores them,
    and a target ranker that orders the logged top 3 otherwise (so it is supported)."""
    rng = np.random.default_rng(seed)
    label = rng.choice(ITEMS, size=n)
    ranked, shown, target, props = [], [], [], []
    for i in range(n):
        others = [x for x in rng.permutation(ITEMS) if x != label[i]]
        r = list(others[:length])
        if rng.random() < 0.6:  # the logging ranker finds the right one, somewhere in its top 3
            r[int(rng.integers(0, 3))] = str(label[i])
        w = min(top_k, length)
        order = list(range(w))
        explored = rng.random() < rate
        if explored:
            rng.shuffle(order)
        stays = order == list(range(w))
        props.append(rate / math.factorial(w) + ((1 - rate) if stays else 0.0))
        shown.append([r[j] for j in order] + r[w:])
        ranked.append(r)
        head = sorted(r[:w], key=lambda x: (x != label[i]) if rng.random() < 0.7 else rng.random())
        target.append(head + r[w:])  # right one first 70 % of the time, where it is in the top 3
    return label, ranked, shown, target, props


THETA = np.array([0.9, 0.6, 0.4, 0.25])  # examination by position


def pbm_used(label, shown, rng):  # type: ignore[no-untyped-def]
    """Position-based agent: uses the right workflow when it is shown at j and j is examined."""
    used = []
    for lab, s in zip(label, shown, strict=True):
        j = s.index(lab) if lab in s else None
        used.append(lab if j is not None and rng.random() < THETA[j] else "searched-elsewhere")
    return used


def cascade_used(label, shown, rng, distractor_rate: float = 0.5):  # type: ignore[no-untyped-def]
    """Cascade agent: reads from the top; takes the right one (p 0.8) or, at a wrong one just
    above it, is misled into it (p ``distractor_rate``): r_j depends on what is above j."""
    used = []
    for lab, s in zip(label, shown, strict=True):
        pick = "searched-elsewhere"
        for j, x in enumerate(s):
            if x == lab:
                pick = lab if rng.random() < 0.8 else pick
                break
            if j + 1 < len(s) and s[j + 1] == lab and rng.random() < distractor_rate:
                pick = x
                break
        used.append(pick)
    return used


def truth_pbm(label, target, k: int) -> float:  # type: ignore[no-untyped-def]
    return float(
        np.mean(
            [
                sum(THETA[j] for j in range(k) if t[j] == lab)
                for lab, t in zip(label, target, strict=True)
            ]
        )
    )


def judge(a: SlateArrays, k: int, estimators=SLATE_ESTIMATORS):  # type: ignore[no-untyped-def]
    """The module's estimates of the lists it keeps (those the logged model showed)."""
    kept = a.take(a.depth > 0)
    return estimate(*add_up(row_terms(kept, estimators, k)), estimators, k)


def estimates(label, ranked, shown, target, props, used, k: int):  # type: ignore[no-untyped-def]
    n = len(label)
    return judge(slate_arrays(shown, ranked, [3] * n, [0.5] * n, target, used, k, props), k)


def test_all_three_unbiased_for_a_position_based_agent() -> None:
    label, ranked, shown, target, props = explored_world(15_000, seed=1)
    used = pbm_used(label, shown, np.random.default_rng(2))
    est = estimates(label, ranked, shown, target, props, used, k=3)
    for k, m in zip((1, 3), metric_names(3), strict=True):
        truth = truth_pbm(label, target, k)
        for e in SLATE_ESTIMATORS:
            v = est[m][e]
            half = (v["ci"][1] - v["ci"][0]) / 2
            assert abs(v["value"] - truth) < 2.2 * half, (m, e, v["value"], truth)
        assert est[m]["sips"]["unsupported_share"] == 0.0
    # the logged acceptance is the plain mean, and IIPS is the tightest here
    assert est["acceptance@3"]["iips"]["ess"] >= est["acceptance@3"]["sips"]["ess"]


def test_rips_and_sips_unbiased_for_a_cascade_agent_where_iips_is_not() -> None:
    label, ranked, shown, target, props = explored_world(25_000, seed=3)
    rng = np.random.default_rng(4)
    used = cascade_used(label, shown, rng)
    est = estimates(label, ranked, shown, target, props, used, k=3)
    # the truth: the expected acceptance@3 of the target's lists, by simulating the agent on them
    reps = [
        np.mean([u in t[:3] for u, t in zip(cascade_used(label, target, rng), target, strict=True)])
        for _ in range(5)
    ]
    truth = float(np.mean(reps))
    m = "acceptance@3"
    for e in ("sips", "rips"):
        half = (est[m][e]["ci"][1] - est[m][e]["ci"][0]) / 2
        assert abs(est[m][e]["value"] - truth) < 2.5 * half, (e, est[m][e]["value"], truth)
    iips = est[m]["iips"]
    assert abs(iips["value"] - truth) > 2 * (iips["ci"][1] - iips["ci"][0]) / 2  # > 4 s.e.


# -- parity with Open Bandit Pipeline 0.5.7 ---------------------------------------------------


def obp_inputs(a: SlateArrays) -> dict[str, np.ndarray]:
    """The arrays in Open Bandit Pipeline's long layout (one entry per row and position)."""
    k = a.reward.shape[1]
    mask = np.arange(k)[None, :] < a.depth[:, None]
    rows, pos = np.nonzero(mask)
    return {
        "slate_id": rows,
        "position": pos,
        "reward": a.reward[mask],
        "pscore": a.pscore[mask],
        "pscore_item_position": a.pscore_item_position[mask],
        "pscore_cascade": a.pscore_cascade[mask],
        "evaluation_policy_pscore": a.target_pscore[mask],
        "evaluation_policy_pscore_item_position": a.target_pscore_item_position[mask],
        "evaluation_policy_pscore_cascade": a.target_pscore_cascade[mask],
    }


def mixed_world():  # type: ignore[no-untyped-def]
    """Explored lists of 5 (top 4), plus the rows the module must handle: an empty logged list
    (left out), unexplored lists (settings 0 or null), a target shorter than the list, logged
    lists shorter than k, and a target that abstains."""
    label, ranked, shown, target, props = explored_world(200, seed=5, length=5, top_k=4)
    used = pbm_used(label, shown, np.random.default_rng(6))
    n = len(label)
    top_k, rate = [4] * n, [0.5] * n
    extra = [  # shown, ranked, top_k, rate, target, used, propensity
        ([], [], 4, 0.5, ["w1", "w2", "w3"], "w1", 1.0),  # empty: left out
        (ITEMS[:5], ITEMS[:5], 0, 0.0, ITEMS[:5], ITEMS[0], 1.0),  # unexplored, agrees
        (ITEMS[:5], ITEMS[:5], None, None, ITEMS[1:6], ITEMS[1], None),  # null settings
        (ITEMS[:5], ITEMS[:5], 0, 0.0, ITEMS[:5], ITEMS[4], 1.0),  # unexplored, used at 5
        (ITEMS[1:6], ITEMS[1:6], 4, 0.5, ITEMS[1:3], ITEMS[1], 0.5 / 24 + 0.5),  # short target
        (ITEMS[:3], ITEMS[:3], 4, 0.5, ITEMS[:5], ITEMS[2], 0.5 / 6 + 0.5),  # shorter than k
        ([ITEMS[1], ITEMS[0], ITEMS[2]], ITEMS[:3], 4, 0.5, ITEMS[:3], ITEMS[0], 0.5 / 6),
        (ITEMS[2:7], ITEMS[2:7], 4, 0.5, [], ITEMS[2], 0.5 / 24 + 0.5),  # the target abstains
    ]
    for sh, ra, tk, rt, ta, us, pr in extra:
        shown.append(sh), ranked.append(ra), top_k.append(tk), rate.append(rt)  # type: ignore[func-returns-value]
        target.append(ta), used.append(us), props.append(pr)  # type: ignore[func-returns-value]
    return shown, ranked, top_k, rate, target, used, props


def test_parity_with_obp() -> None:
    pytest.importorskip("obp", reason="obp 0.5.7 not installed (the Makefile's venv has it)")
    from obp.ope import SlateIndependentIPS, SlateRewardInteractionIPS, SlateStandardIPS

    shown, ranked, top_k, rate, target, used, props = mixed_world()
    for k in (1, 3, 5):
        a = slate_arrays(shown, ranked, top_k, rate, target, used, k, props)
        assert (a.depth == 0).sum() == 1  # the empty list: left out here, absent from obp's
        est = judge(a, k)
        x = obp_inputs(a)
        for m in metric_names(k):
            # acceptance@1 is the same slate with the reward at position 1 alone
            reward = x["reward"] if m != "acceptance@1" else np.where(
                x["position"] == 0, x["reward"], 0.0
            )  # fmt: skip
            common = {"slate_id": x["slate_id"], "reward": reward, "position": x["position"]}
            obp = {
                "sips": SlateStandardIPS(len_list=k).estimate_policy_value(
                    **common, pscore=x["pscore"],
                    evaluation_policy_pscore=x["evaluation_policy_pscore"],
                ),
                "iips": SlateIndependentIPS(len_list=k).estimate_policy_value(
                    **common, pscore_item_position=x["pscore_item_position"],
                    evaluation_policy_pscore_item_position=x[
                        "evaluation_policy_pscore_item_position"],
                ),
                "rips": SlateRewardInteractionIPS(len_list=k).estimate_policy_value(
                    **common, pscore_cascade=x["pscore_cascade"],
                    evaluation_policy_pscore_cascade=x["evaluation_policy_pscore_cascade"],
                ),
            }  # fmt: skip
            assert est[m]["n"] == len(shown) - 1
            for e, v in obp.items():
                assert est[m][e]["value"] == pytest.approx(v, rel=1e-9, abs=1e-12), (k, m, e)


# -- what the logs cannot support --------------------------------------------------------------


def test_no_exploration_and_zero_support_are_reported() -> None:
    # row 1: target = logged; row 2: target swaps the top two (never shown without exploration)
    shown = [["a", "b", "c"], ["a", "b", "c"]]
    a = slate_arrays(shown, shown, [0, 0], [0.0, 0.0], [["a", "b"], ["b", "a"]], ["a", "a"], 2,
                     [1.0, 1.0])  # fmt: skip
    est = judge(a, 2)
    assert est["_shares"]["explored"] == 0.0 and est["_shares"]["agrees"] == 0.5
    assert est["acceptance@1"]["sips"]["value"] == 0.5  # row 1 only: an indicator match
    assert est["acceptance@2"]["sips"]["unsupported_share"] == 0.5
    # a target item outside the explored window (W = 2) at position 1
    b = slate_arrays([["a", "b", "c"]], [["a", "b", "c"]], [2], [0.2], [["c", "a"]], ["c"], 2,
                     [0.2 / 2 + 0.8])  # fmt: skip
    assert b.outside_window[0] and not b.target_support_item_position[0, 0]


def test_bad_rows_name_their_field() -> None:
    with pytest.raises(DataError, match=r"f\.parquet:3: shown_propensity: 0\.5, but"):
        slate_arrays([["a", "b"]], [["a", "b"]], [2], [0.5], [["a", "b"]], ["a"], 2, [0.5],
                     "f.parquet", 3)  # fmt: skip
    with pytest.raises(DataError, match="workflow_ids: not ranked_ids with at most its top 2"):
        slate_arrays([["c", "a", "b"]], [["a", "b", "c"]], [2], [0.5], [["a"]], ["a"], 1)
    with pytest.raises(DataError, match="ranked_ids: missing on an explored list"):
        slate_arrays([["a", "b"]], [None], [2], [0.5], [["a"]], ["a"], 1)


# -- a tiny log folder, a BM25 index, the command and both engines ------------------------------

# Each example with words of other workflows too, so BM25 ranks four or more of them.
TEXTS = [
    (w["id"], f"{ex}, about a payout, a refund, a key or 2fa")
    for w in TINY_CATALOG
    for ex in w.get("examples", [])
]


def write_logs(folder: Path, index: Path, rows: int = 120, seed: int = 0) -> Path:
    """A joined log folder's suggestion files (two days): the served model is the BM25 index
    with its top and third swapped on 40 % of contexts, its top 3 explored at rate 0.5, and
    an agent that uses the right workflow where it is shown (position-based)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from frontdesk import Suggester

    rng = np.random.default_rng(seed)
    picks = [TEXTS[int(rng.integers(len(TEXTS)))] for _ in range(rows)]
    lists = Suggester.load(index).suggest_many([t for _, t in picks], k=4)
    recs = []
    for i, ((label, text), sugg) in enumerate(zip(picks, lists, strict=True)):
        ranked = [s.workflow_id for s in sugg]
        ranked += [w["id"] for w in TINY_CATALOG if w["id"] not in ranked][: 4 - len(ranked)]
        if rng.random() < 0.4:
            ranked[0], ranked[2] = ranked[2], ranked[0]
        order = [0, 1, 2]
        if rng.random() < 0.5:
            rng.shuffle(order)
        shown = [ranked[j] for j in order] + ranked[3:]
        prop = 0.5 / 6 + (0.5 if order == [0, 1, 2] else 0.0)
        j = shown.index(label) if label in shown else None
        used = label if j is not None and rng.random() < THETA[j] else "api-key-rotate"
        day = 20_000 + i % 2
        recs.append({
            "decision_id": f"d{i:04d}", "day": day,
            "time": dt.datetime(2024, 10, 4 + i % 2, tzinfo=dt.UTC), "contact_id": f"c{i}",
            "model": "suggest", "model_version": "1", "role": "default", "text": text,
            "turns": [], "segment": ["smb", "enterprise"][i % 3 == 0], "country": "US",
            "plan": "standard", "tenure_days": 100, "language": "en", "prior_contacts": 0,
            "workflow_ids": shown, "scores": [1.0, 0.9, 0.8, 0.7], "ranked_ids": ranked,
            "shown_propensity": prop, "explore_top_k": 3, "explore_rate": 0.5,
            "abstained": i == 11, "confidence": None,  # one list the logged model abstained on
            "workflow_used": None if i == 7 else used,  # one outcome without workflow_used
            "accepted_rank": (shown.index(used) + 1) if used in shown else None,
            "tier": None if i % 5 == 0 else 1 + i % 2,  # an int segment column with nulls
        })  # fmt: skip
        if i == 13:  # an empty list (nothing to show)
            recs[-1].update(workflow_ids=[], ranked_ids=[], scores=[], accepted_rank=None,
                            shown_propensity=1.0)  # fmt: skip
        if i == 17:  # a list logged without exploration fields, shown as ranked
            recs[-1].update(workflow_ids=ranked, explore_top_k=None, explore_rate=None,
                            shown_propensity=None)  # fmt: skip
    folder.mkdir(parents=True)
    for day in (20_000, 20_001):
        part = [r for r in recs if r["day"] == day]
        pq.write_table(pa.Table.from_pylist(part), folder / f"suggestions-{day:05d}.parquet")
    (folder / "agents.json").write_text("[]\n")
    write_manifest(folder, {"kind": LOGS, "channels": {}, "topics": [], "days": [20_000, 20_001]})
    return folder


@pytest.fixture(scope="module")
def bm25_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from frontdesk import build_index

    root = tmp_path_factory.mktemp("slate")
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "index", dense=False)
    return write_logs(root / "logs", root / "index"), root / "index"


def test_simulate_suggestions_local(bm25_setup: tuple[Path, Path]) -> None:
    logs, index = bm25_setup
    res = simulate_suggestions(logs, index, k=3, segments=["segment"], batch_size=50)
    meta = res["meta"]
    assert meta["rows"] == 117 and meta["skipped_without_workflow_used"] == 1
    assert meta["left_out_empty"] == 1 and meta["left_out_abstained"] == 1
    assert meta["logged_abstained_share"] == pytest.approx(1 / 119)
    assert any("no workflow_used" in w for w in meta["warnings"])
    assert any("abstained on by the logged model" in w for w in meta["warnings"])
    assert any("were empty" in w for w in meta["warnings"])
    assert meta["explored_share"] == pytest.approx(116 / 117)
    tiers = simulate_suggestions(logs, index, k=3, segments=["tier"])
    assert set(tiers["acceptance@3"]["segments"]) == {"1", "2", "missing"}
    overall = res["acceptance@3"]["overall"]
    assert set(res["acceptance@3"]["segments"]) == {"smb", "enterprise"}
    for e in SLATE_ESTIMATORS:
        assert 0 <= overall[e]["nonzero_share"] <= 1 and overall[e]["ess"] > 0
    # a target that is the logged ranker itself: every estimator is near the logged value
    ranked_of = {}
    for _, batch in SuggestionLogs.open(logs).batches(["decision_id", "ranked_ids"]):
        ranked_of.update(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
    same = simulate_suggestions(
        logs, None, k=3, segments=[],
        target=lambda df: [ranked_of[d] for d in df["decision_id"]],
    )  # fmt: skip
    o = same["acceptance@3"]["overall"]
    for e in SLATE_ESTIMATORS:
        lo, hi = o[e]["difference_ci"]
        assert lo <= 0 <= hi
    assert same["meta"]["target_agrees_share"] == 1.0


def test_cli_smoke_and_errors(bm25_setup: tuple[Path, Path], tmp_path: Path) -> None:
    from frontdesk.cli import app

    logs, index = bm25_setup
    runner = CliRunner()
    res = runner.invoke(
        app, ["simulate", "suggestions", str(logs), "--index", str(index), "--k", "2", "--json"]
    )
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"acceptance@1", "acceptance@2", "meta"}
    assert out["meta"]["estimators"] == list(SLATE_ESTIMATORS)
    table = runner.invoke(app, ["simulate", "suggestions", str(logs), "--index", str(index),
                                "--estimators", "iips", "--segment", "country"])  # fmt: skip
    assert table.exit_code == 0, table.stderr
    assert "acceptance@3" in table.stdout and "iips" in table.stdout
    bad = runner.invoke(app, ["simulate", "suggestions", str(logs), "--index", str(index),
                              "--estimators", "dr"])  # fmt: skip
    assert bad.exit_code == 2 and "unknown estimator 'dr'" in bad.stderr
    too_deep = runner.invoke(
        app, ["simulate", "suggestions", str(logs), "--index", str(index), "--k", "5"]
    )
    assert too_deep.exit_code == 2 and "at most 4 workflows" in too_deep.stderr


def test_a_ranker_that_learned_from_these_logs_is_refused(
    bm25_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    check_ranker = ranker_training_overlap
    logs_dir, _ = bm25_setup
    logs = SuggestionLogs.open(logs_dir)
    ranker = tmp_path / "ranker"
    ranker.mkdir()
    fb = {"path": str(logs_dir), "manifest_sha256": logs.manifest_sha256, "rows": 119}
    (ranker / "ranker.json").write_text(json.dumps({"training": {"feedback": fb}}))
    with pytest.raises(TrainingOverlapError, match="learned from the very logs"):
        check_ranker(ranker, logs)
    assert "training overlap" in check_ranker(ranker, logs, allow=True)[0]
    (ranker / "ranker.json").write_text(json.dumps({"training": {"feedback": {
        "path": "/elsewhere", "manifest_sha256": "0" * 64}}}))  # fmt: skip
    assert check_ranker(ranker, logs) == []
    (ranker / "ranker.json").write_text(json.dumps({"train": str(logs_dir)}))
    assert "what it learned from is not recorded" in check_ranker(ranker, logs)[0]


def test_hashed_texts_and_missing_folders_are_refused(
    bm25_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    logs, index = bm25_setup
    with pytest.raises(DataError, match="no suggestions-"):
        (tmp_path / "empty").mkdir()
        write_manifest(tmp_path / "empty", {"kind": LOGS, "channels": {}, "topics": []})
        simulate_suggestions(tmp_path / "empty", index)
    hashed = tmp_path / "hashed"
    hashed.mkdir()
    for f in logs.glob("suggestions-*.parquet"):
        t = pq.read_table(f)
        t = t.set_column(t.schema.get_field_index("text"), "text",
                         pa.array(["sha256:" + "ab" * 32] * t.num_rows))  # fmt: skip
        pq.write_table(t, hashed / f.name)
    write_manifest(hashed, {"kind": LOGS, "channels": {}, "topics": []})
    with pytest.raises(DataError, match=r"suggestions-20000\.parquet:1: text: hashed"):
        simulate_suggestions(hashed, index, segments=[])
    with pytest.raises(FrontdeskError, match="unknown engine"):
        simulate_suggestions(logs, index, engine="dask")


@pytest.mark.slow
def test_local_and_spark_engines_agree(bm25_setup: tuple[Path, Path]) -> None:
    pytest.importorskip("pyspark", reason="PySpark not installed (pip install 'frontdesk[spark]')")
    logs, index = bm25_setup
    kw = dict(k=3, segments=["segment", "country", "tier"])
    local = simulate_suggestions(logs, index, engine="local", batch_size=37, **kw)
    spark = simulate_suggestions(logs, index, engine="spark", **kw)
    worst, where = worst_gap(local, spark)
    assert worst <= 1e-9, where


# -- missing values, abstention, short lists -----------------------------------------------------


def test_null_exploration_fields_are_no_exploration() -> None:
    """Logs without exploration fields (older logs, or explore_lists gave []): as pandas
    delivers them, NaN for numbers; None for the rest. No exploration, propensity 1."""
    nan = float("nan")
    shown = [["a", "b", "c"]] * 3
    for top_k, rate, prop in ((nan, nan, nan), (None, None, None), (nan, 0.3, 1.0)):
        a = slate_arrays(shown, [None] * 3, [top_k] * 3, [rate] * 3,
                         [["a", "b"], ["b", "a"], []], ["a", "b", "a"], 2, [prop] * 3)  # fmt: skip
        assert list(a.window) == [0, 0, 0] and list(a.depth) == [2, 2, 2]
        est = judge(a, 2)
        assert est["_shares"]["explored"] == 0.0
        assert est["acceptance@2"]["sips"]["value"] == pytest.approx(1 / 3)  # row 1 matches
    # a null propensity on an explored list is not checked; a wrong one is
    slate_arrays([["b", "a"]], [["a", "b"]], [2], [0.5], [["a"]], ["a"], 1, [nan])
    with pytest.raises(DataError, match="explore_top_k: 2.5 is not a whole number"):
        slate_arrays([["a", "b"]], [["a", "b"]], [2.5], [0.5], [["a"]], ["a"], 1)


def test_abstention_on_both_sides() -> None:
    shown = [["a", "b"], ["a", "b"], ["a", "b"]]
    # the logged model abstained on row 2: left out (nothing was shown)
    a = slate_arrays(shown, shown, [2] * 3, [0.5] * 3, [["a", "b"], [], ["a", "b"]],
                     ["a", "a", "a"], 2, abstained=[False, True, None])  # fmt: skip
    assert list(a.depth) == [2, 0, 2] and list(a.logged_abstained) == [False, True, False]
    est = judge(a, 2)
    assert est["acceptance@2"]["n"] == 2
    # the target abstains on row 2: exactly 0 there, weight 0, not unsupported
    b = slate_arrays(shown, shown, [2] * 3, [0.5] * 3, [["a", "b"], [], ["a", "b"]],
                     ["a", "a", "a"], 2)  # fmt: skip
    est = judge(b, 2)
    assert est["_shares"]["target_abstained"] == pytest.approx(1 / 3)
    for e in SLATE_ESTIMATORS:
        assert est["acceptance@2"][e]["unsupported_share"] == 0.0
        assert est["acceptance@2"][e]["nonzero_share"] == pytest.approx(2 / 3)


def test_logged_lists_shorter_than_k_and_unexplored_rows() -> None:
    # k 3, a logged list of 2, the target shows 3: its third position was never shown
    a = slate_arrays([["a", "b"]], [["a", "b"]], [2], [0.5], [["a", "b", "c"]], ["a"], 3,
                     [0.5 / 2 + 0.5])  # fmt: skip
    assert a.beyond_logged[0] and a.depth[0] == 2
    est = judge(a, 3)
    assert est["acceptance@3"]["iips"]["unsupported_share"] == 1.0
    assert est["acceptance@1"]["iips"]["unsupported_share"] == 0.0
    # an unexplored list is no "below the window" row, whatever the target does
    b = slate_arrays([["a", "b", "c"]], [["a", "b", "c"]], [0], [0.0], [["c", "b", "a"]],
                     ["a"], 3, [1.0])  # fmt: skip
    assert not b.below_window[0] and not b.outside_window[0]


def test_one_row_segments_have_no_interval() -> None:
    a = slate_arrays([["a", "b"]], [["a", "b"]], [2], [0.5], [["a", "b"]], ["a"], 2, [0.75])
    est = judge(a, 2)
    assert est["acceptance@2"]["n"] == 1
    assert all(math.isnan(x) for x in est["acceptance@2"]["sips"]["ci"])
    assert all(math.isnan(x) for x in est["acceptance@2"]["logged_ci"])


def test_segments_of_an_int_column_with_nulls_stay_whole() -> None:
    import pandas as pd

    from frontdesk.ope.kernel import OVERALL, segment_keys

    with_null = pd.DataFrame({"tier": [1.0, None, 2.0]})  # an int column with a null, as pandas
    whole = pd.DataFrame({"tier": [1, 2]})
    keys = {k for row in segment_keys(with_null, ["tier"]) + segment_keys(whole, ["tier"])
            for k in row}  # fmt: skip
    assert keys == {OVERALL, "1", "2", "missing"}
    assert segment_keys(pd.DataFrame({"s": ["x", None]}), ["s", "s"])[1][1:] == ["s=missing"] * 2


def test_a_ranker_trained_on_a_window_of_these_logs_is_refused_row_by_row(
    bm25_setup: tuple[Path, Path], tmp_path: Path
) -> None:
    from frontdesk.artifacts import RANKER, write_manifest
    from frontdesk.lineage import FeedbackLineage

    logs_dir, _ = bm25_setup
    logs = SuggestionLogs.open(logs_dir)
    ids = [str(d) for _, b in logs.batches(["decision_id"]) for d in b.column(0).to_pylist()]
    ranker = tmp_path / "ranker"
    ranker.mkdir()
    (ranker / "ranker.json").write_text(json.dumps({"training": {}}))
    # an earlier `logs join --until` window: another folder, the first 40 rows
    FeedbackLineage.of_rows(ids[:40], [], {"path": "/elsewhere"}).save(ranker)
    write_manifest(ranker, {"kind": RANKER})
    with pytest.raises(TrainingOverlapError, match=r"learned from 40 of the .* --since"):
        ranker_training_overlap(ranker, logs)
    warned = ranker_training_overlap(ranker, logs, allow=True)
    assert len(warned) == 1 and "--allow-training-overlap" in warned[0]
