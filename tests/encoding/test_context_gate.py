"""The context gate: which turns make a conversation's query, and the Suggester's context modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from frontdesk.config import Settings
from frontdesk.encoding import EncodedContexts
from frontdesk.encoding.context_gate import (
    ALTERNATIVES,
    FEATURES,
    ContextGate,
    accuracy,
    fit_gate,
    tune_thresholds,
    variant_queries,
)
from frontdesk.schema import Conversation

N_ALT, N_FEAT = len(ALTERNATIVES), len(FEATURES)


def _gate(weight: float = 1.0, thresholds=(0.5, 0.5)) -> ContextGate:  # noqa: ANN001
    """Both alternatives driven by feature 0 alone: p = sigmoid(weight * x0)."""
    w = np.zeros((N_ALT, N_FEAT))
    w[:, 0] = weight
    return ContextGate(
        mean=np.zeros((N_ALT, N_FEAT)),
        scale=np.ones((N_ALT, N_FEAT)),
        weights=w,
        bias=np.zeros(N_ALT),
        thresholds=np.array(thresholds, float),
    )


def test_variants_of_a_single_turn_and_of_a_follow_up() -> None:
    convs = [
        Conversation(text="payout missing"),  # no turns: latest only
        Conversation(
            text="any update?",
            context={
                "turns": [
                    {"role": "user", "text": "refund never came"},
                    {"role": "agent", "text": "checking"},
                ]
            },
        ),
        Conversation(text="hi", context={"turns": [{"role": "agent", "text": "hello"}]}),
    ]
    vec = np.eye(3, 4, dtype=np.float32)
    encoded = EncodedContexts(
        vectors=vec[::-1].copy(), text_vectors=vec, turn_vectors=[], context_vectors=vec * 2
    )
    vectors, tokens, available = variant_queries(encoded, convs, str.split)
    assert available.tolist() == [[True, False, False], [True, True, True], [True, True, False]]
    assert tokens[0][1] == ["any", "update?"]
    assert tokens[1][1] == ["any", "update?", "refund", "never", "came"]  # agent turns left out
    assert tokens[2][1] == ["refund", "never", "came"]
    assert np.array_equal(vectors[0], vec) and np.array_equal(vectors[2], vec * 2)


def test_choose_switches_only_above_the_bar_and_when_available(tmp_path: Path) -> None:
    gate = _gate(thresholds=(0.6, 0.8))
    x = np.zeros((4, N_ALT, N_FEAT))
    x[:, 0, 0] = [0.0, 1.0, 1.0, 3.0]  # mixed: p = .5, .73, .73, .95
    x[:, 1, 0] = [5.0, 0.0, 4.0, 4.0]  # earlier: p = .99, .5, .98, .98
    available = np.ones((4, 3), bool)
    available[3, 2] = False
    # row 0: earlier clears .8; row 1: mixed clears .6; row 2: both clear, earlier is
    # surer (.98 vs .73); row 3: earlier unavailable, so mixed
    assert gate.choose(x, available).tolist() == [2, 1, 2, 1]
    off = gate.choose(x, available, np.array([1.01, 1.01]))
    assert off.tolist() == [0, 0, 0, 0]  # above 1: never switch
    gate.save(tmp_path / "gate.json")
    again = ContextGate.load(tmp_path / "gate.json")
    assert np.array_equal(again.choose(x, available), gate.choose(x, available))


def test_load_refuses_other_formats(tmp_path: Path) -> None:
    (tmp_path / "g.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="context-gate"):
        ContextGate.load(tmp_path / "g.json")


def test_load_refuses_a_hand_edited_gate_of_the_wrong_shape(tmp_path: Path) -> None:
    good = ContextGate.load().to_json()
    for key, value, why in (
        ("variants", ["latest", "other"], "variants must be"),
        ("weights", good["weights"][:1], "weights must be 2 x 14"),
        ("weights", [row[:3] for row in good["weights"]], "weights must be 2 x 14"),
        ("thresholds", ["x", 0.5], "thresholds must be numbers"),
        ("bias", [1.0, float("nan")], "bias must be 2 finite numbers"),
        ("scale", [[0.0] * 14] * 2, "scale must be positive"),
    ):
        (tmp_path / "g.json").write_text(json.dumps({**good, key: value}))
        with pytest.raises(ValueError, match=why):
            ContextGate.load(tmp_path / "g.json")
    (tmp_path / "g.json").write_text(json.dumps(good))
    assert ContextGate.load(tmp_path / "g.json").fingerprint == ContextGate.load().fingerprint


def test_fit_and_tune_never_leave_a_group_below_latest() -> None:
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=(n, N_ALT, N_FEAT))
    correct = np.zeros((n, 3), bool)
    correct[:, 0] = x[:, 0, 0] < 0  # latest right when feature 0 is low
    correct[:, 1] = rng.random(n) < 0.3  # mixed: noise
    correct[:, 2] = x[:, 1, 0] > 0  # earlier right when its feature 0 is high
    available = np.ones((n, 3), bool)
    gate = fit_gate(x, correct, available)
    assert gate.weights[1, 0] > 0  # learned: a high feature 0 favours "earlier"
    groups = np.array(["a", "b"] * (n // 2))
    gate.thresholds = tune_thresholds(gate, x, correct, available, groups)
    chosen = gate.choose(x, available)
    for g in ("a", "b"):
        m = groups == g
        assert accuracy(chosen[m], correct[m]) >= correct[m, 0].mean()
    assert accuracy(chosen, correct) > correct[:, 0].mean()


def test_fit_keeps_an_alternative_off_without_both_outcomes() -> None:
    x = np.zeros((10, N_ALT, N_FEAT))
    correct = np.ones((10, 3), bool)  # never differs from latest
    gate = fit_gate(x, correct, np.ones((10, 3), bool))
    assert gate.choose(x, np.ones((10, 3), bool)).tolist() == [0] * 10


def test_settings_reads_the_context_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().context == "gated"
    monkeypatch.setenv("FRONTDESK_CONTEXT", "latest")
    assert Settings.from_env().context == "latest"
    # a bad value is the user's to fix: the variable (or the override) is named
    from frontdesk.errors import SettingsError

    monkeypatch.setenv("FRONTDESK_CONTEXT", "bogus")
    with pytest.raises(SettingsError, match=r"^FRONTDESK_CONTEXT: 'bogus': .*'gated'"):
        Settings.from_env()
    with pytest.raises(SettingsError, match=r"^rrf_k: 0: "):
        Settings.from_env(context="latest", rrf_k=0)


def test_suggester_context_modes(tiny_index: Path, encoder, tmp_path: Path) -> None:  # noqa: ANN001
    from frontdesk import Suggester
    from frontdesk.index import WorkflowIndex

    index = WorkflowIndex.load(tiny_index)
    conv = Conversation(
        text="lost my phone with the authenticator",
        context={"turns": [{"role": "user", "text": "customer says refund never arrived"}]},
    )
    latest = Suggester(index, encoder=encoder, settings=Settings(context="latest"))
    mixed = Suggester(index, encoder=encoder, settings=Settings(context="mixed"))
    alone = latest.suggest(conv.text, k=3)
    assert [s.workflow_id for s in latest.suggest(conv, k=3)] == [s.workflow_id for s in alone]
    assert [s.score for s in latest.suggest(conv, k=3)] == pytest.approx([s.score for s in alone])
    assert latest.query_tokens(conv) == index.tokenizer(conv.text)
    assert len(mixed.query_tokens(conv)) > len(latest.query_tokens(conv))
    assert (
        "context" in latest.retrieval_signature() and "context" not in mixed.retrieval_signature()
    )
    # a gate that always prefers the earlier request answers the refund workflow
    gate = _gate(weight=0.0, thresholds=(1.01, 0.4))  # p = .5: only "earlier" clears its bar
    gate.save(tmp_path / "gate.json")
    gated = Suggester(
        index,
        encoder=encoder,
        settings=Settings(context="gated", context_model=str(tmp_path / "gate.json")),
    )
    assert gated.suggest(conv, k=1)[0].workflow_id == "refund-not-received"
    assert [s.workflow_id for s in gated.suggest(conv.text, k=3)] == [
        s.workflow_id for s in alone
    ]  # no earlier turns: the latest text alone
    # each answer says which turns made its query
    assert gated.suggest(conv, k=1).query_from == "earlier"
    assert latest.suggest(conv, k=1).query_from == "latest"
    assert mixed.suggest(conv, k=1).query_from == "mixed"
    assert mixed.suggest(conv, k=1).to_json()["query_from"] == "mixed"
    for s in (latest, mixed, gated):
        assert s.suggest(conv.text, k=1).query_from == "latest"  # nothing earlier to use
    sparse = Suggester(index, settings=Settings(context="mixed"), mode="sparse")
    agent_only = Conversation(text=conv.text, context={"turns": [{"role": "agent", "text": "hi"}]})
    assert sparse.suggest(conv, k=1).query_from == "mixed"
    assert sparse.suggest(agent_only, k=1).query_from == "latest"  # BM25 reads user turns
    encoded = mixed.encode([agent_only])  # handed an encoding, BM25 alone still reads text
    assert sparse.suggest_many([agent_only], k=1, encoded=encoded)[0].query_from == "latest"
    for context, want in (("gated", "latest"), ("mixed", "mixed")):  # dense alone: no gate
        dense = Suggester(index, encoder=encoder, settings=Settings(context=context), mode="dense")
        assert dense.suggest(conv, k=1).query_from == want


def test_gated_spends_no_extra_search_on_a_single_question(
    tiny_index: Path, encoder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Only conversations with earlier turns go through the gate (and its searches)."""
    from frontdesk import Suggester
    from frontdesk.encoding import context_gate
    from frontdesk.index import WorkflowIndex

    seen: list[int] = []
    real = context_gate.gate_inputs
    monkeypatch.setattr(
        context_gate,
        "gate_inputs",
        lambda h, e, convs, *rest: seen.append(len(convs)) or real(h, e, convs, *rest),
    )
    gated = Suggester(WorkflowIndex.load(tiny_index), encoder=encoder)  # the default: gated
    assert gated.settings.context == "gated"
    gated.suggest("lost my phone with the authenticator", k=1)
    assert seen == []
    conv = Conversation(
        text="any update?",
        context={"turns": [{"role": "user", "text": "customer says refund never arrived"}]},
    )
    batch = ["lost my phone", conv, "payout bounced"]
    many = gated.suggest_many(batch, k=3)
    assert seen == [1]  # the one conversation with an earlier turn
    # each answer is the one it gets alone: the gate's choices land on their own rows
    for q, res in zip(batch, many, strict=True):
        alone = gated.suggest(q, k=3)
        assert [s.workflow_id for s in res] == [s.workflow_id for s in alone]
        assert [s.score for s in res] == pytest.approx([s.score for s in alone])
        assert res.query_from == alone.query_from
    assert many[0].query_from == many[2].query_from == "latest"  # single questions


def test_gated_searches_only_what_it_can_choose_and_answers_from_those_hits(
    tiny_index: Path, encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """An alternative switched off (threshold above 1) is never searched, and the chosen
    query's hits are the answer: a conversation costs two searches, not four, and gets
    exactly what a search of the chosen query alone would give."""
    from frontdesk import Suggester
    from frontdesk.index import WorkflowIndex
    from frontdesk.retrieval import HybridSearcher

    index = WorkflowIndex.load(tiny_index)
    gate = _gate(weight=0.0, thresholds=(1.01, 0.4))  # mixed off; earlier always chosen
    assert gate.searched == (0, 2)
    gate.save(tmp_path / "gate.json")
    settings = Settings(context="gated", context_model=str(tmp_path / "gate.json"))
    gated = Suggester(index, encoder=encoder, settings=settings)
    latest = Suggester(index, encoder=encoder, settings=Settings(context="latest"))
    calls: list[int] = []
    real = HybridSearcher.search
    monkeypatch.setattr(
        HybridSearcher,
        "search",
        lambda self, v, t, k: calls.append(len(t)) or real(self, v, t, k),
    )
    earlier = "customer says refund never arrived"
    conv = Conversation(text="any update?", context={"turns": [{"role": "user", "text": earlier}]})
    for k in (1, 3, 6):
        calls.clear()
        got = gated.suggest(conv, k=k)
        assert calls == [1, 1]  # latest and earlier, once each; no search of the answer
        want = latest.suggest(earlier, k=k)  # the earlier request, searched on its own
        assert got.query_from == "earlier"
        _same(got, want)
    # a batch of reused and fresh rows, either fusion, gives what searches of each would
    batch = ["lost my phone with the authenticator", conv, "payout bounced", conv]
    for fusion in ("weighted", "rrf"):
        s = Settings(context="gated", context_model=str(tmp_path / "gate.json"), fusion=fusion)
        one = Suggester(index, encoder=encoder, settings=s)
        alone = Suggester(
            index, encoder=encoder, settings=Settings(context="latest", fusion=fusion)
        )
        for q, res in zip(batch, one.suggest_many(batch, k=4), strict=True):
            _same(res, alone.suggest(earlier if isinstance(q, Conversation) else q, k=4))
    # an answer longer than the gate's searches is searched on its own
    from frontdesk.encoding import context_gate

    monkeypatch.setattr(context_gate, "GATE_DEPTH", 2)
    want = latest.suggest(earlier, k=3)
    calls.clear()
    _same(gated.suggest(conv, k=3), want)
    assert calls == [1, 1, 1]  # the gate's two, then the answer's own


def _same(got, want) -> None:  # noqa: ANN001
    assert [(s.workflow_id, s.rank) for s in got] == [(s.workflow_id, s.rank) for s in want]
    assert [s.score for s in got] == pytest.approx([s.score for s in want], abs=1e-6)
    for a, b in zip(got, want, strict=True):
        assert a.sources.keys() == b.sources.keys()
        for name in a.sources:
            assert a.sources[name]["rank"] == b.sources[name]["rank"]


def test_the_bundled_gate_loads_and_records_its_lineage() -> None:
    gate = ContextGate.load()
    assert gate.weights.shape == (N_ALT, N_FEAT)
    assert "train" in gate.lineage["fit"] and "test" not in gate.lineage["fit"]
