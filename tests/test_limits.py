"""Input limits: overridable, applied by the loaders, the Python API and BM25 alike."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from frontdesk.errors import DataError
from frontdesk.limits import Limits, check_k, check_text, loads_json, loads_yaml
from frontdesk.retrieval.sparse import SparseSearcher, bm25_index, has_tokens

from .conftest import TINY_CATALOG, write_jsonl


def test_limits_come_from_the_environment() -> None:
    lim = Limits.from_env({"FRONTDESK_MAX_TURNS": "7", "FRONTDESK_MAX_K": "0"})
    assert (lim.turns, lim.k, lim.text_chars) == (7, 0, Limits().text_chars)
    with pytest.raises(DataError, match="FRONTDESK_MAX_TURNS: must be an integer, got 'many'"):
        Limits.from_env({"FRONTDESK_MAX_TURNS": "many"})
    with pytest.raises(DataError, match="FRONTDESK_MAX_JSON_DEPTH: must be 0 or more"):
        Limits.from_env({"FRONTDESK_MAX_JSON_DEPTH": "-1"})


def test_a_limit_hit_names_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRONTDESK_MAX_TEXT_CHARS", "10")
    with pytest.raises(DataError) as info:
        check_text("x" * 11, "query")
    assert str(info.value) == (
        "query: text: is 11 characters long (limit 10, set by FRONTDESK_MAX_TEXT_CHARS)"
    )
    assert check_text("x" * 10, "query") == "x" * 10


def test_k_is_bounded_by_the_limit_and_capped_at_the_catalog() -> None:
    assert check_k(3, 6, "api") == 3
    assert check_k(50, 6, "api") == 6
    for bad in (0, -1, True, 2.5, "3", 10_000):
        with pytest.raises(DataError, match="api: k:"):
            check_k(bad, 6, "api")


def test_json_refusals() -> None:
    assert loads_json('{"a": [1, 2.5, "x"]}', "in") == {"a": [1, 2.5, "x"]}
    for text, reason in (
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a": NaN}', "NaN"),
        ('{"a": 1e999}', "too large"),
        ("[" * 33 + "]" * 33, "nested too deeply"),
        ("1" * 31, "31 digits"),
        ('{"a": ', "invalid JSON"),
    ):
        with pytest.raises(DataError, match=reason):
            loads_json(text, "in")
    assert math.isnan(loads_json('{"a": NaN}', "in", allow_nan=True)["a"])  # own outputs


def test_yaml_aliases_when_allowed_are_counted_and_their_expansion_capped() -> None:
    text = "a: &x [1, 2]\nb: *x\nc: *x\n"
    with pytest.raises(DataError, match="anchors"):
        loads_yaml(text, "f.yaml")
    value, _ = loads_yaml(text, "f.yaml", limits=Limits(yaml_aliases=2))
    assert value == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    with pytest.raises(DataError, match="too many YAML aliases"):
        loads_yaml(text, "f.yaml", limits=Limits(yaml_aliases=1))
    with pytest.raises(DataError, match="expand past"):
        loads_yaml(text, "f.yaml", limits=Limits(yaml_aliases=2, yaml_nodes=5))
    with pytest.raises(DataError, match="refers to itself"):
        loads_yaml("a: &x [*x]\n", "f.yaml", limits=Limits(yaml_aliases=5))


def test_yaml_dates_stay_strings_and_python_types_are_refused() -> None:
    value, _ = loads_yaml("updated_at: 2024-05-01\nat: 2024-05-01T10:00:00Z\n", "f.yaml")
    assert value == {"updated_at": "2024-05-01", "at": "2024-05-01T10:00:00Z"}
    with pytest.raises(DataError, match="f.yaml:1: invalid YAML"):
        loads_yaml("x: !!python/name:os.system ''\n", "f.yaml")


# -- BM25 over documents without a word it can index ------------------------------------------------


def test_bm25_builds_and_finds_nothing_when_no_document_has_a_token() -> None:
    tokens: list[list[str]] = [[], [], []]
    assert not has_tokens(tokens)
    bm25 = bm25_index(tokens, k1=1.2, b=0.75)
    searcher = SparseSearcher(bm25, np.array([0, 1, 2]))
    assert [len(r) for r in searcher.search([["refund"], [""], []], k=3)] == [0, 0, 0]


def test_bm25_with_some_empty_documents_is_unchanged() -> None:
    bm25 = bm25_index([["refund", "card"], [], ["payout"]], k1=1.2, b=0.75)
    hits = SparseSearcher(bm25, np.array([0, 1, 2])).search([["payout"]], k=3)[0]
    assert hits.ids.tolist() == [2]


def test_a_sparse_only_index_of_unreadable_titles_is_refused(tmp_path: Path) -> None:
    from frontdesk import build_index

    catalog = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "title": "退款"}])
    with pytest.raises(DataError, match="c.jsonl: no workflow text has a word BM25 can index"):
        build_index(catalog, tmp_path / "idx", dense=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl"]


def test_a_hybrid_index_of_chinese_titles_builds_and_suggests(tmp_path: Path, encoder) -> None:  # type: ignore[no-untyped-def]
    from frontdesk import Suggester, build_index

    catalog = write_jsonl(
        tmp_path / "c.jsonl",
        [{"id": "refund", "title": "退款"}, {"id": "payout", "title": "支付失败"}],
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_index(catalog, tmp_path / "idx", encoder=encoder)
    assert any("dense retrieval alone" in str(w.message) for w in caught)
    suggester = Suggester.load(tmp_path / "idx", encoder=encoder)
    assert {s.workflow_id for s in suggester.suggest("退款", k=2)} == {"refund", "payout"}
    assert len(suggester.suggest("refund please", k=2)) == 2  # BM25 finds nothing; dense answers


# -- the Python API --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sparse_suggester(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from frontdesk import Suggester, build_index

    root = tmp_path_factory.mktemp("limits-index")
    build_index(write_jsonl(root / "catalog.jsonl", TINY_CATALOG), root / "index", dense=False)
    return Suggester.load(root / "index", mode="sparse")


def test_the_api_refuses_an_empty_query(sparse_suggester) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.schema import Conversation

    for bad in ("", "  \n", Conversation(text="   ")):
        with pytest.raises(DataError, match="query: text: is empty or only whitespace"):
            sparse_suggester.suggest(bad)
    with pytest.raises(DataError, match=r"queries\[1\]: text: is empty"):
        sparse_suggester.suggest_many(["refund a customer", ""])
    with pytest.raises(DataError, match=r"query: context.turns\[0\].text: is empty"):
        sparse_suggester.suggest(
            Conversation(text="refund", context={"turns": [{"role": "user", "text": " "}]})
        )


def test_the_api_bounds_k(sparse_suggester) -> None:  # type: ignore[no-untyped-def]
    assert len(sparse_suggester.suggest("refund a customer", k=3)) <= 3
    assert len(sparse_suggester.suggest("refund a customer payout", k=999)) <= len(TINY_CATALOG)
    for bad in (0, -2, 1_000_000, "5"):
        with pytest.raises(DataError, match="suggest: k:"):
            sparse_suggester.suggest("refund a customer", k=bad)


def test_the_api_refuses_too_many_turns(sparse_suggester, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.schema import Conversation

    monkeypatch.setenv("FRONTDESK_MAX_TURNS", "2")
    conv = Conversation(text="refund", context={"turns": [{"role": "user", "text": "hi"}] * 3})
    with pytest.raises(
        DataError, match="query: context.turns: 3 turns .limit 2, set by FRONTDESK_MAX_TURNS"
    ):
        sparse_suggester.suggest(conv)
