"""train ranker --feedback: logged agents' choices as labelled rows, weighted by position.

Fixtures are joined log folders written by hand (``tests/feedback_logs.py``):
every list is one served decision with its logged propensity, joined by
``logs join`` as the server's own log would be.
"""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from frontdesk import LabelledQuery, build_index
from frontdesk.artifacts import sha256_file, write_manifest
from frontdesk.cli import app
from frontdesk.decisions.feedback import ShownList, read_feedback
from frontdesk.errors import DataError
from frontdesk.loaders import load_queries
from frontdesk.ranking import LambdaRankReranker
from frontdesk.ranking.features import CandidateSet
from frontdesk.ranking.training import (
    RankerTrainingConfig,
    estimate_position_bias,
    expand_rows,
    feedback_rows,
    group_weights,
    split_validation,
    train_ranker,
    warn_if_validation_overlaps,
)
from frontdesk.ranking.training.feedback import combine
from frontdesk.ranking.training.position_bias import CORRECTION_OFF, NO_RANDOMISED
from frontdesk.retrieval.ranked import Ranked

from ..conftest import TINY_CATALOG, write_jsonl
from ..feedback_logs import Served, joined_feedback
from .test_ranker import PHRASES

IDS = [w["id"] for w in TINY_CATALOG]


def shown_list(order: list[int], rate: float, rank: int | None, top: int = 2) -> ShownList:
    """A list of ``top`` workflows reordered by ``order``, logged as the server logs it."""
    stays = order == list(range(top))
    p = rate / math.factorial(top) + ((1 - rate) if stays else 0.0)
    ranked = ["a", "b", "c", "d", "e", "f"][:top]
    return ShownList([ranked[j] for j in order], p, top, rate, rank, ranked)


# -- θ from the randomised lists ------------------------------------------------------------------


def test_theta_is_recovered_through_the_logged_propensities() -> None:
    # Explore rate 0.5 over the top 2: 150 lists shown as ranked (p = 0.75), 50 swapped
    # (p = 0.25). The ranked top is right 80 % of the time, the second 20 %; agents look at
    # position 1 always (θ1 = 1) and position 2 half the time (θ2 = 0.5).
    as_ranked = [shown_list([0, 1], 0.5, 1)] * 120  # 150 · 0.8 · θ1
    as_ranked += [shown_list([0, 1], 0.5, 2)] * 15  # 150 · 0.2 · θ2
    as_ranked += [shown_list([0, 1], 0.5, None)] * 15  # nothing taken
    swapped = [shown_list([1, 0], 0.5, 1)] * 10  # 50 · 0.2 · θ1 (the weaker one now first)
    swapped += [shown_list([1, 0], 0.5, 2)] * 20  # 50 · 0.8 · θ2
    swapped += [shown_list([1, 0], 0.5, None)] * 20
    bias = estimate_position_bias(as_ranked + swapped)
    assert bias.theta == pytest.approx([1.0, 0.5])
    # the raw acceptance rates by position would say 35 / 130 = 0.27: relevance, not looking;
    # what θ rests on is the 30 acceptances in the 50 lists actually swapped
    assert bias.accepted_by_position == [10, 20]
    assert (bias.randomised_lists, bias.used_lists, bias.lists) == (200, 200, 200)
    assert bias.reordered_lists == 50 and bias.to_json()["reordered_lists"] == 50
    assert [bias.weight(k) for k in (1, 2, 3, None)] == pytest.approx([1.0, 2.0, 2.0, 1.0])
    assert "intervention harvesting" in bias.source


def test_weights_are_clipped_and_nothing_is_corrected_without_randomised_lists() -> None:
    lists = [shown_list([1, 0], 1.0, 1)] * 40 + [shown_list([1, 0], 1.0, 2)] * 2
    with pytest.warns(UserWarning, match=r"clipped to \[0.2, 1\]: θ = \[1.000, 0.200\]"):
        clipped = estimate_position_bias(lists, max_weight=5)  # θ2 = 0.05: 1/θ2 = 20
    assert clipped.theta == [1.0, 0.2] and clipped.raw_theta == [1.0, 0.05]
    assert clipped.weight(2) == 5.0
    position_only = [ShownList(["a", "b"], 1.0, 0, 0.0, 1, ["a", "b"])] * 50
    bias = estimate_position_bias(position_only)
    assert not bias.corrects and bias.source == NO_RANDOMISED and bias.weight(2) == 1.0
    off = estimate_position_bias(lists, correct=False)
    assert not off.corrects and off.source == CORRECTION_OFF
    few = estimate_position_bias(lists[:10])  # 10 acceptances: θ would be noise
    assert not few.corrects and "fewer than 30" in few.source


def test_theta_is_made_non_increasing_and_a_never_looked_at_position_is_clipped() -> None:
    lists = [shown_list([2, 0, 1], 1.0, 1, top=3)] * 20  # θ2 > θ1 by noise, θ3 = 0
    lists += [shown_list([1, 2, 0], 1.0, 2, top=3)] * 25
    lists += [shown_list([0, 2, 1], 1.0, None, top=3)] * 10
    with pytest.warns(UserWarning, match="made non-increasing"):
        bias = estimate_position_bias(lists, max_weight=10)
    assert bias.raw_theta == pytest.approx([1.0, 1.25, 0.0])
    assert bias.theta == pytest.approx([1.0, 1.0, 0.1])
    assert [bias.weight(k) for k in (1, 2, 3)] == pytest.approx([1.0, 1.0, 10.0])


def test_a_low_explore_rate_is_not_corrected_on_a_few_dozen_reordered_lists() -> None:
    # N = 5, p = 0.01, 3000 lists: ~30 reordered, the rest shown as ranked (each weighing
    # about 1/(5!·0.99)); the agent looks at k with θ = 1, .6, .35, .2, .1 and the ranked
    # top is right. Thousands of acceptances, a dozen of them in reordered lists.
    rng = random.Random(0)
    theta, p, lists = [1.0, 0.6, 0.35, 0.2, 0.1], 0.01, []
    for _ in range(3000):
        order = list(range(5))
        if rng.random() < p:
            rng.shuffle(order)
        pos = order.index(0) + 1
        lists.append(shown_list(order, p, pos if rng.random() < theta[pos - 1] else None, 5))
    bias = estimate_position_bias(lists)
    assert sum(s.accepted_rank is not None for s in lists) > 2500
    assert bias.reordered_lists < 60 and sum(bias.accepted_by_position) < 30
    assert not bias.corrects and "acceptances in lists actually reordered" in bias.source
    assert [bias.weight(k) for k in range(1, 6)] == [1.0] * 5


def test_group_weights_follow_their_rows_and_average_one() -> None:
    def cands(ids: list[int]) -> CandidateSet:
        ranked = Ranked(np.asarray(ids), np.linspace(1, 0, len(ids)))
        return CandidateSet(ranked, ranked, ranked)

    rows = [
        LabelledQuery(text="q1", label="a"),
        LabelledQuery(text="q2", label="b"),
        LabelledQuery(text="q3", label=None),  # out of scope: no group
        LabelledQuery(text="q4", label="c"),  # its workflow not among the candidates: no group
    ]
    pos = {"a": 0, "b": 1, "c": 2}
    w = group_weights(rows, [cands([0, 1]), cands([1, 0, 3]), cands([0]), cands([0, 1])],
                      [1.0, 3.0, 9.0, 9.0], pos)  # fmt: skip
    assert w.tolist() == pytest.approx([0.5, 0.5, 1.5, 1.5, 1.5])  # mean of (1, 3) is 2
    # a labelled file's row (None) weighs 1; the feedback rows average 1 among themselves
    w = group_weights(rows[:2] * 2, [cands([0, 1]), cands([1, 0, 3])] * 2,
                      [None, None, 1.0, 3.0], pos)  # fmt: skip
    assert w.tolist() == pytest.approx([1, 1, 1, 1, 1, 0.5, 0.5, 1.5, 1.5, 1.5])


# -- reading the log folder -----------------------------------------------------------------------


def test_feedback_rows_are_the_queries_a_jsonl_line_gives_and_skips_are_counted(
    tmp_path: Path,
) -> None:
    profile = {"segment": "smb", "country": "US", "tenure_days": 420, "prior_contacts": 2}
    turns = [{"role": "user", "text": "hello"}, {"role": "agent", "text": "hi, how can I help"}]
    logs = joined_feedback(
        tmp_path,
        [
            Served("my payout is late", IDS[:3], "payout-delayed", turns=turns, profile=profile),
            Served("any news", IDS[:3], None),  # no workflow_used
            Served("gift card balance", IDS[:3], "gift-cards"),  # not in the index
            Served("sha256:" + "0" * 64, IDS[:3], "payout-failed"),  # logged --log-text hash
            Served("sha256: is that a hash?", IDS[:3], "payout-failed"),  # a real text
            Served(
                "refund it",
                IDS[:3],
                "refund-issue",
                order=[2, 0, 1],
                explore_top_k=3,
                explore_rate=0.2,
            ),  # fmt: skip
        ],
    )
    fb = read_feedback(logs, IDS)
    assert fb.skipped == {"no_workflow_used": 1, "unknown_workflow": 1, "no_text": 1}
    assert len(fb.lists) == 6 and len(fb.rows) == 3
    assert fb.rows[1].query.text == "sha256: is that a hash?"
    line = {"id": fb.rows[0].query.id, "text": "my payout is late", "label": "payout-delayed",
            "context": {"turns": turns, "user": profile}}  # fmt: skip
    (expected,) = load_queries(write_jsonl(tmp_path / "q.jsonl", [line]))
    assert fb.rows[0].query == expected
    refund = fb.rows[2].shown
    assert refund.reordered and refund.ranked == IDS[:3] and not fb.rows[0].shown.reordered
    assert refund.accepted_rank == 1 and refund.randomised  # shown first after the swap
    assert refund.shown_propensity == pytest.approx(0.2 / 6)
    summary = fb.summary()
    assert summary["manifest_sha256"] == sha256_file(logs / "manifest.json")
    assert summary["used"] == 3 and summary["rows"] == 6
    assert [r.group for r in fb.rows] == ["c0", "c4", "c5"]  # the contact ids


def _rewrite(logs: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """Change the suggestions file with ``change(table) -> table`` and re-sign the folder,
    so only the content is wrong, not the checksums."""
    (f,) = logs.glob("suggestions-*.parquet")
    pq.write_table(change(pq.read_table(f)), f)
    meta = json.loads((logs / "manifest.json").read_text())
    (logs / "manifest.json").unlink()
    write_manifest(logs, meta)
    return f


def test_bad_feedback_is_refused_naming_the_file_row_and_field(tmp_path: Path) -> None:
    import pyarrow as pa

    lists = [Served("my payout is late", IDS[:3], "payout-delayed"),
             Served("payout bounced", IDS[:3], "payout-failed")]  # fmt: skip
    with pytest.raises(DataError, match="folder not found"):
        read_feedback(tmp_path / "nope", IDS)
    logs = joined_feedback(tmp_path, lists, "a")
    f = _rewrite(logs, lambda t: t.drop(["workflow_used"]))
    with pytest.raises(DataError, match=f"{f}: workflow_used: missing column"):
        read_feedback(logs, IDS)
    logs = joined_feedback(tmp_path, lists, "b")

    def wrong_rank(t: pa.Table) -> pa.Table:
        return t.set_column(t.schema.get_field_index("accepted_rank"), "accepted_rank",
                            pa.array([1, 3], pa.float64()))  # fmt: skip

    f = _rewrite(logs, wrong_rank)
    with pytest.raises(DataError, match=f"{f}:2: accepted_rank: 3 is not the position"):
        read_feedback(logs, IDS)
    logs = joined_feedback(tmp_path, lists, "c")

    def zero_propensity(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("shown_propensity")
        return t.set_column(i, "shown_propensity", pa.array([1.0, 0.0]))

    f = _rewrite(logs, zero_propensity)
    with pytest.raises(DataError, match=f"{f}:2: shown_propensity: 0.0 is not a probability"):
        read_feedback(logs, IDS)
    bad_turn = [Served("hi", IDS[:3], "payout-delayed", turns=[{"role": "bot", "text": "x"}])]
    logs = joined_feedback(tmp_path, bad_turn, "d")
    with pytest.raises(DataError, match=r"suggestions-\d+\.parquet:1: context\.turns\.0\.role"):
        read_feedback(logs, IDS)
    (next(logs.glob("suggestions-*.parquet"))).write_bytes(b"tampered")
    with pytest.raises(DataError, match="checksum mismatch"):
        read_feedback(logs, IDS)


# -- validation and its overlap ---------------------------------------------------------------------


def _phrase_rows() -> list[LabelledQuery]:
    return [LabelledQuery(text=t, label=w) for w, ts in PHRASES.items() for t in ts]


def test_validation_is_carved_from_the_feedback_rows_only() -> None:
    rows = _phrase_rows()  # 36 rows, 6 per workflow: the first 18 a file's, the rest feedback
    config = RankerTrainingConfig(folds=3, top_n=6)
    data = expand_rows(rows, config)
    split = split_validation(data, None, config, carve_from=range(18, 36))
    assert split.carved and all(i >= 18 for i in split.carved)
    assert not set(split.carved) & set(split.trains(data))
    assert {i for i in split.trains(data) if i < data.n_given} >= set(range(18))


def test_one_contacts_decisions_stay_on_one_side_of_validation_and_in_one_fold(
    tmp_path: Path,
) -> None:
    # every question asked twice in one contact (two decisions), and once more in another
    # contact in other words: a conversation never trains the ranker it validates
    lists = []
    for n, (w, texts) in enumerate(PHRASES.items()):
        for i, t in enumerate(texts):
            lists += [Served(t, IDS[:3], w, contact=f"c{n}-{i}")] * 2
    fb = feedback_rows(joined_feedback(tmp_path, lists), IDS)
    assert len(fb.rows) == 72 and fb.record()["contacts"] == 36
    file_rows = [LabelledQuery(text="a file's question", label=IDS[0])]
    given, weights, carve_from, groups = combine(file_rows, fb)
    assert weights[0] is None and groups is not None and len(set(groups)) == 37
    assert groups[1] == groups[2] and groups[1] != groups[3]  # one contact, two decisions
    config = RankerTrainingConfig(folds=3, top_n=6, augment_context=0.0)
    data = expand_rows(given, config, groups)
    split = split_validation(data, None, config, carve_from)
    carved = set(split.carved)
    assert carved and 0 not in carved
    for i in range(1, len(given), 2):  # the pairs: both carved or neither, one fold
        assert (i in carved) == (i + 1 in carved)
        assert data.fold[i] == data.fold[i + 1]
    # the same text from two contacts is one group too
    twice = [Served("my payout is late", IDS[:3], "payout-delayed", contact=c) for c in "xy"]
    fb2 = feedback_rows(joined_feedback(tmp_path, twice, "twice"), IDS)
    assert len(set(combine([], fb2)[3] or [])) == 1
    # a --val row with a feedback contact's id is an overlap
    val = [LabelledQuery(id="c0-0", text="other words", label=IDS[0])]
    with pytest.warns(UserWarning, match="VALIDATION OVERLAPS TRAINING: 1 of the 1"):
        assert warn_if_validation_overlaps(fb, val) == 1


def test_a_val_file_holding_feedback_rows_is_warned_about(tmp_path: Path) -> None:
    logs = joined_feedback(tmp_path, [Served("My payout is  late", IDS[:3], "payout-delayed")])
    fb = feedback_rows(logs, IDS)
    val = [LabelledQuery(text="my payout is late", label="payout-delayed"),
           LabelledQuery(text="something else", label="payout-delayed")]  # fmt: skip
    with pytest.warns(UserWarning, match="VALIDATION OVERLAPS TRAINING: 1 of the 2 --val rows"):
        assert warn_if_validation_overlaps(fb, val) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_validation_overlaps(fb, val[1:]) == 0


# -- training ---------------------------------------------------------------------------------------


def explored_feedback() -> list[Served]:
    """Every phrase served twice (in two wordings), its top 3 always shown in a random order (rate 1); the agent
    takes the right workflow when shown at 1, every other time at 2, every fourth time at 3;
    plus three lists nothing came back for and one of a workflow not in the index."""
    out = []
    orders = [[0, 1, 2], [1, 0, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1], [0, 2, 1]]
    seen = {1: 0, 2: 0, 3: 0}
    for n, (w, texts) in enumerate(PHRASES.items()):
        others = [i for i in IDS if i != w]
        for i, t in enumerate(texts + [f"{x}, please" for x in texts]):  # two wordings
            ranked = [w, others[(n + i) % 5], others[(n + i + 1) % 5], others[(n + i + 2) % 5]]
            order = orders[(n + i) % 6]
            rank = order.index(0) + 1
            seen[rank] += 1
            taken = rank == 1 or (rank == 2 and seen[2] % 2 == 0) or seen[rank] % 4 == 0
            out.append(Served(t, ranked, w if taken else None, order, 3, 1.0))
    out += [Served("hello?", IDS[:3], None)] * 3
    out.append(Served("gift card balance", IDS[:3], "gift-cards"))
    return out


@pytest.fixture(scope="module")
def feedback_index(tmp_path_factory: pytest.TempPathFactory, encoder) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("feedback")
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "index", examples=_phrase_rows(), encoder=encoder)
    return root / "index", joined_feedback(root, explored_feedback())


def test_train_ranker_from_feedback_weighs_each_group_by_its_position(
    feedback_index: tuple[Path, Path], tmp_path: Path, monkeypatch, encoder
) -> None:
    index_dir, logs = feedback_index
    seen: list = []
    fit = LambdaRankReranker.fit

    def spy(train, val, *args, weights=None, val_weights=None, **kw):  # type: ignore[no-untyped-def]
        seen.append((train, weights, val, val_weights))
        return fit(train, val, *args, weights=weights, val_weights=val_weights, **kw)

    monkeypatch.setattr(LambdaRankReranker, "fit", staticmethod(spy))
    fb = feedback_rows(logs, IDS)
    theta = fb.bias.theta
    assert len(theta) == 3 and theta[0] == 1.0 and theta[2] < theta[1] < 1.0
    assert fb.weights == [fb.bias.weight(r.shown.accepted_rank) for r in fb.feedback.rows]
    config = train_ranker(index_dir, [], tmp_path / "rk", folds=3, top_n=6, encoder=encoder,
                          feedback=fb, augment_context=0.0)  # fmt: skip
    recorded = config["training"]["feedback"]
    assert recorded["used"] == len(fb.rows) and recorded["rows"] == len(explored_feedback())
    assert recorded["skipped"] == {"no_workflow_used": 3 + sum(
        1 for s in explored_feedback() if s.used is None and s.text != "hello?"
    ), "unknown_workflow": 1, "no_text": 0}  # fmt: skip
    assert recorded["manifest_sha256"] == fb.feedback.manifest_sha256
    assert recorded["position_bias"]["theta"] == pytest.approx(theta, abs=1e-6)
    assert recorded["weighted"] and recorded["rows_from_file"] == 0
    assert config["training"]["val_source"].startswith("carved from the feedback rows")
    saved = json.loads((tmp_path / "rk" / "ranker.json").read_text())
    assert saved["training"]["feedback"] == recorded
    ((train, weights, val, val_weights),) = seen
    # each group's weight is its row's 1/θ (up to the common scale): rank-3 rows weigh most
    sizes = np.cumsum([0, *train[2][:-1]])
    per_group = weights[sizes]
    assert set(np.round(per_group / per_group.min(), 4)) <= {
        round(1 / t / (1 / theta[0]), 4) for t in theta
    }
    assert per_group.max() / per_group.min() == pytest.approx(1 / theta[2], rel=1e-4)
    assert np.mean(per_group) == pytest.approx(1.0, rel=1e-5)
    # validation, carved from the same feedback, is weighed the same way for early stopping
    assert recorded["early_stopping_weighted"] and len(val_weights) == len(val[1])
    val_groups = val_weights[np.cumsum([0, *val[2][:-1]])]
    assert val_groups.max() > val_groups.min() and np.mean(val_groups) == pytest.approx(1.0)


def test_cli_train_ranker_from_feedback_and_what_it_refuses(
    feedback_index: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir, logs = feedback_index
    runner = CliRunner()
    res = runner.invoke(app, ["train", "ranker", str(index_dir), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "give LABELLED queries, --feedback LOGS, or both" in res.output
    empty = joined_feedback(tmp_path, [Served("hi", IDS[:3], None)], "empty")
    res = runner.invoke(app, ["train", "ranker", str(index_dir), "--feedback", str(empty),
                              "--out", str(tmp_path / "x")])  # fmt: skip
    assert res.exit_code == 2 and "no usable feedback row (1 rows: 1 without" in res.output
    # a file's rows and the feedback: the union, validation from the feedback alone
    file_rows = [q.model_dump() for q in _phrase_rows()[::3]]  # 2 per workflow
    train = write_jsonl(tmp_path / "t.jsonl", file_rows)
    res = runner.invoke(app, ["train", "ranker", str(index_dir), str(train), "--feedback",
                              str(logs), "--no-position-correction", "--folds", "3", "--top-n",
                              "6", "--out", str(tmp_path / "rk"), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    f = out["training"]["feedback"]
    assert f["rows_from_file"] == 12 and out["training"]["rows"] == 12 + f["used"]
    assert f["position_bias"]["source"] == CORRECTION_OFF and not f["weighted"]  # all weigh 1
    assert f["skipped"]["unknown_workflow"] == 1


def test_too_few_feedback_rows_to_carve_a_validation_are_refused_saying_what_to_do(
    tmp_path: Path,
) -> None:
    from frontdesk.errors import FrontdeskError
    from frontdesk.ranking.training.validation import MIN_CARVED_PER_LABEL

    # a few dozen lists spread over the workflows: no workflow has 6 contacts
    lists = [
        Served(f"question {i} about {w}", IDS[:3], w)
        for i in range(MIN_CARVED_PER_LABEL - 1)
        for w in IDS[:6]
    ]
    fb = feedback_rows(joined_feedback(tmp_path, lists), IDS)
    given, _, carve_from, groups = combine([], fb)
    config = RankerTrainingConfig(folds=3, top_n=6, augment_context=0.0)
    data = expand_rows(given, config, groups)
    with pytest.raises(FrontdeskError, match=r"pass --val FILE.*log more lists") as exc:
        split_validation(data, None, config, carve_from)
    assert f"at least {MIN_CARVED_PER_LABEL} feedback rows" in str(exc.value)
    assert MIN_CARVED_PER_LABEL == 6  # round(0.1 n) first reaches 1 at n = 6


def test_feedback_lineage_holds_every_rows_decision_and_contact(tmp_path: Path) -> None:
    from frontdesk.lineage import contact_hashes

    lists = [Served("my payout is late", IDS[:3], "payout-delayed", contact="k1"),
             Served("reset my 2fa", IDS[:3], "login-2fa")]  # fmt: skip
    fb = feedback_rows(joined_feedback(tmp_path, lists), IDS)
    lineage = fb.lineage()
    assert len(lineage.decisions) == 2
    assert set(lineage.contacts.tolist()) == set(contact_hashes(["k1", "c1"]).tolist())
    assert lineage.sources[0]["manifest_sha256"] == fb.feedback.manifest_sha256


def test_a_raw_decision_log_is_refused_saying_to_join_it(tmp_path: Path) -> None:
    joined_feedback(tmp_path, [Served("reset my 2fa", IDS[:3], "login-2fa")])
    dlog = tmp_path / "logs-dlog"
    with pytest.raises(Exception, match=r"is a decision log \(serve --decision-log\); join it"):
        read_feedback(dlog, IDS)
    result = CliRunner().invoke(app, ["train", "ranker", "--feedback", str(dlog)])
    assert result.exit_code != 0


def test_a_manifest_error_names_the_manifest_once(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as exc:
        read_feedback(tmp_path / "empty", IDS)
    manifest = str(tmp_path / "empty" / "manifest.json")
    assert str(exc.value).count(manifest) == 1
