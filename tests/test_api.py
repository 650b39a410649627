"""Suggester: texts, conversations, batches, modes and sources."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from frontdesk import Conversation, IndexIntegrityError, Suggester, Suggestion, build_index


@pytest.fixture(scope="module")
def suggester(tiny_index: Path, encoder) -> Suggester:
    return Suggester.load(tiny_index, encoder=encoder)


def test_suggest_text_returns_ranked_suggestions_with_sources(suggester: Suggester) -> None:
    res = suggester.suggest("the bank sent my payout back", k=3)
    assert [s.rank for s in res] == [1, 2, 3]
    assert all(isinstance(s, Suggestion) for s in res)
    assert res[0].workflow_id == "payout-failed" and res[0].title == "Payout failed"
    assert res[0].score >= res[1].score >= res[2].score
    assert set(res[0].sources) == {"dense", "sparse"}
    assert res[0].sources["dense"]["rank"] >= 1


def test_earlier_turns_disambiguate_a_vague_follow_up(suggester: Suggester) -> None:
    vague = "it's been two weeks, any update?"
    conv = Conversation(
        text=vague,
        context={
            "turns": [
                {"role": "user", "text": "my customer says their refund never arrived"},
                {"role": "agent", "text": "Let me check that for you."},
            ]
        },
    )
    assert suggester.suggest(conv, k=1)[0].workflow_id == "refund-not-received"


def test_suggest_many_equals_one_by_one(suggester: Suggester, encoder) -> None:
    queries = ["rotate my api key", Conversation(text="lost phone with authenticator")]
    calls = encoder.calls
    batch = suggester.suggest_many(queries, k=2)
    assert encoder.calls == calls + 1  # one encoder pass for the whole batch
    single = [suggester.suggest(q, k=2) for q in queries]
    assert [[s.workflow_id for s in r] for r in batch] == [
        [s.workflow_id for s in r] for r in single
    ]
    assert suggester.suggest_many([], k=2) == []


def test_modes(tiny_index: Path, encoder) -> None:
    for mode in ("dense", "sparse", "hybrid"):
        s = Suggester.load(tiny_index, encoder=encoder, mode=mode)
        assert s.mode == mode
        res = s.suggest("how do I refund a customer", k=2)
        assert res[0].workflow_id == "refund-issue"
        assert set(res[0].sources) == ({"dense", "sparse"} if mode == "hybrid" else {mode})


def test_dense_mode_on_sparse_only_index_is_an_error(tmp_path: Path, tiny_catalog: Path) -> None:
    build_index(tiny_catalog, tmp_path / "idx", dense=False)
    with pytest.raises(IndexIntegrityError, match="no dense part"):
        Suggester.load(tmp_path / "idx", mode="dense")


def test_small_batches_search_on_capped_thread_pools(tiny_index, encoder) -> None:
    from threadpoolctl import threadpool_info

    from frontdesk import Settings

    s = Suggester.load(tiny_index, encoder=encoder)  # search_threads defaults to 1
    s.suggest("where is my payout", k=1)  # loads the libraries the cap applies to
    before = [(i["filepath"], i["num_threads"]) for i in threadpool_info()]
    with s._few_threads(1), s._few_threads(1):  # nested / overlapping callers
        capped = [i["num_threads"] for i in threadpool_info()]
    assert capped and set(capped) == {1}
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before  # restored
    with pytest.raises(RuntimeError), s._few_threads(1):
        raise RuntimeError("a failing search")
    assert [(i["filepath"], i["num_threads"]) for i in threadpool_info()] == before
    assert isinstance(s._few_threads(16), contextlib.nullcontext)  # batches keep the pools
    off = Suggester.load(tiny_index, encoder=encoder, settings=Settings(search_threads=0))
    assert isinstance(off._few_threads(1), contextlib.nullcontext)
