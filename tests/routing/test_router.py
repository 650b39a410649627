"""Router: training output, loading checks, eligibility, capacity, one shared encoding,
and deferring to the rule where training's held-out check says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from frontdesk import Conversation, FrontDesk, Suggester, build_index
from frontdesk.artifacts import write_manifest
from frontdesk.errors import DataError, FrontdeskError, IndexIntegrityError
from frontdesk.logs import DecisionLogs
from frontdesk.routing import (
    POLICY_ROUTER,
    POLICY_RULE,
    NoEligibleAgentError,
    Router,
    RoutingWeights,
    train_router,
)
from frontdesk.routing.agent_matcher import listed_mix
from frontdesk.routing.rule import rule_score

from ..conftest import edit_json

DE_ENTERPRISE = Conversation(
    text="I was charged twice for one order",
    context={"user": {"segment": "enterprise", "language": "de", "country": "DE"}},
)
EVERYWHERE = {"overall": POLICY_ROUTER, "segments": {}}


def deciding(router: Router, policy: dict = EVERYWHERE) -> Router:
    """The router with its policy replaced (to test the model, whatever the check found)."""
    router.config = {**router.config, "policy": policy}
    return router


def test_router_folder_has_no_pickle_and_a_verified_manifest(router_dir: Path) -> None:
    names = {p.name for p in router_dir.iterdir()}
    assert {"manifest.json", "router.json", "agents.json", "channel_resolution_0.txt"} <= names
    assert {"channel_csat_4.txt", "matcher.json", "matcher_effects.npy", "topic_coef.npy"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    manifest = json.loads((router_dir / "manifest.json").read_text())
    assert manifest["kind"] == "frontdesk-router"
    assert set(manifest["files"]) == names - {"manifest.json"}
    # The held-out check: on which days, of which fit, and the policy it chose.
    config = json.loads((router_dir / "router.json").read_text())
    guard = config["guard"]
    assert guard["held_out_days"] == [2] and guard["fit_days"] == [0, 1]
    assert guard["judged_model"] == "fitted on days 0, 1 only"
    assert guard["saved_model"].startswith("fitted again on every logged day")
    assert guard["policy"] in {POLICY_ROUTER, POLICY_RULE}
    assert manifest["policy"] == config["policy"] and config["policy"]["overall"] == guard["policy"]
    lo, hi = guard["ci"]
    assert lo <= guard["lift"] <= hi


def test_route_respects_language_channels_and_capacity(router: Router) -> None:
    deciding(router)
    roster = list(router.roster.values())
    german = [a for a in roster if "de" in a.languages]
    decision = router.route(DE_ENTERPRISE, [a.agent_id for a in roster])
    chosen = router.roster[decision.agent_id]
    assert "de" in chosen.languages and decision.channel in chosen.channels
    assert decision.propensity == 1.0
    assert set(decision.scores_by_channel) == {"phone", "chat", "email"}
    assert set(decision.expected) == {"resolution", "handle_time", "csat", "cost"}
    # The chosen agent at capacity: someone else (still German-speaking) gets the contact.
    busy = [{"agent_id": chosen.agent_id, "load": chosen.capacity}] + [
        a.agent_id for a in roster if a.agent_id != chosen.agent_id
    ]
    other = router.route(DE_ENTERPRISE, busy)
    assert other.agent_id != chosen.agent_id and "de" in router.roster[other.agent_id].languages
    full = [{"agent_id": a.agent_id, "load": a.capacity} for a in german]
    with pytest.raises(NoEligibleAgentError, match="no eligible agent"):
        router.route(DE_ENTERPRISE, full)


def test_route_many_never_exceeds_free_slots(router: Router) -> None:
    convs = [f"payout question number {i}" for i in range(25)]
    agents = [{"agent_id": a.agent_id, "load": 0} for a in router.roster.values()][:3]
    free = sum(router.roster[a["agent_id"]].capacity for a in agents)
    got = router.route_many(convs, agents)
    served = [d for d in got if d is not None]
    assert len(served) == min(free, len(convs))
    for a in agents:
        n = sum(d.agent_id == a["agent_id"] for d in served)
        assert n <= router.roster[a["agent_id"]].capacity


def test_softmax_router_reports_its_propensity(router_dir: Path, encoder) -> None:
    soft = deciding(Router.load(router_dir, encoder=encoder, temperature=0.05, seed=1))
    enc = soft.encode([DE_ENTERPRISE])
    agents = soft.resolve_agents(list(soft.roster))
    ch, ag = soft.eligible(DE_ENTERPRISE.user, agents)
    scored = soft.score_pairs(enc, np.zeros(1), [(ch, ag)], [r for r, _ in agents])[0]
    # What it decides by: utility less the margin of channels other than the rule's.
    assert (scored["value"] <= scored["utility"]).all()
    probs = soft.probabilities(scored["value"])
    assert probs.sum() == pytest.approx(1.0) and (probs > 0).all()
    d = soft.route(DE_ENTERPRISE, list(soft.roster), encoded=enc)
    pick = next(
        i
        for i in range(len(ch))
        if soft.channels[ch[i]] == d.channel and agents[ag[i]][0].agent_id == d.agent_id
    )
    assert d.propensity == pytest.approx(probs[pick])


def test_loaded_router_decides_as_trained_and_weights_change_decisions(
    router_dir: Path, encoder
) -> None:
    r1 = deciding(Router.load(router_dir, encoder=encoder))
    r2 = deciding(Router.load(router_dir, encoder=encoder))
    agents = list(r1.roster)
    assert r1.route(DE_ENTERPRISE, agents) == r2.route(DE_ENTERPRISE, agents)
    cheap = deciding(
        Router.load(router_dir, encoder=encoder, weights=RoutingWeights(resolution=0, cost=50))
    )
    costs = [cheap.route(f"question {i}", agents).expected["cost"] for i in range(5)]
    dear = [r1.route(f"question {i}", agents).expected["cost"] for i in range(5)]
    assert sum(costs) < sum(dear)


def test_tampered_or_foreign_router_is_refused(router_dir: Path, tmp_path: Path, encoder) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(router_dir, bad)
    (bad / "channel_resolution_0.txt").write_text("tree\n")
    with pytest.raises(IndexIntegrityError, match="checksum mismatch"):
        Router.load(bad, encoder=encoder)
    other = tmp_path / "other"
    shutil.copytree(router_dir, other)
    cfg = json.loads((other / "router.json").read_text())
    cfg["encoder_sha256"] = "0" * 64
    (other / "router.json").write_text(json.dumps(cfg))
    manifest = json.loads((other / "manifest.json").read_text())
    write_manifest(other, {k: v for k, v in manifest.items() if k != "files"})
    with pytest.raises(IndexIntegrityError, match="use the same encoder"):
        Router.load(other, encoder=encoder)


def test_agents_unknown_to_the_roster(router: Router) -> None:
    deciding(router)
    with pytest.raises(FrontdeskError, match="not in the router's roster"):
        router.route("hello", ["agent-999"])
    newcomer = {
        "agent_id": "new-1", "channels": ["email"], "languages": ["en"], "capacity": 2,
        "cost_per_minute": 0.7, "skills": {},
    }  # fmt: skip
    d = router.route("hello, where is my payout?", [newcomer])
    assert (d.agent_id, d.channel) == ("new-1", "email")


def test_weights_parse_and_reject() -> None:
    assert RoutingWeights.parse("cost=2,csat=0") == RoutingWeights(cost=2.0, csat=0.0)
    with pytest.raises(FrontdeskError, match="unknown weight 'speed'"):
        RoutingWeights.parse("speed=1")
    with pytest.raises(FrontdeskError, match="not a number"):
        RoutingWeights.parse("cost=high")


def test_front_desk_encodes_each_batch_once(
    router: Router, encoder, tiny_catalog, tmp_path
) -> None:
    build_index(tiny_catalog, tmp_path / "idx", encoder=encoder)
    suggester = Suggester.load(tmp_path / "idx", encoder=encoder)
    desk = FrontDesk(suggester, router)
    convs = [
        Conversation(
            text="any update?", context={"turns": [{"role": "user", "text": "payout late"}]}
        ),
        "how do I refund a customer",
        DE_ENTERPRISE,
    ]
    before = encoder.calls
    handled = desk.handle(convs, list(router.roster), k=3)
    assert encoder.calls - before == 1  # one encoder pass for suggestion and routing together
    alone_s = suggester.suggest_many(convs, k=3)
    alone_r = router.route_many(convs, list(router.roster))
    assert [h.suggestions for h in handled] == alone_s
    assert [h.route for h in handled] == alone_r
    assert handled[0].suggestions[0].workflow_id == "payout-delayed"
    assert json.loads(json.dumps(handled[2].to_json()))["route"]["channel"] in router.channels


def test_router_predictions_track_the_true_outcomes(org_logs: Path, router: Router) -> None:
    """On logged contacts, predicted P(resolved) correlates with the simulator's truth."""
    from scipy.stats import spearmanr

    from frontdesk.orgsim import OrgConfig, World
    from frontdesk.orgsim.org import read_pool

    logs = DecisionLogs.open(org_logs)
    world = World(OrgConfig.from_json(logs.config), read_pool(org_logs))
    contacts = world.contacts(5, n=300)  # a fresh day
    convs = [Conversation.model_validate(world.conversation(contacts, i)) for i in range(300)]
    enc = router.encode(convs)
    records = [router.roster[a] for a in world.agents.ids]
    rng = np.random.default_rng(0)
    ch = rng.integers(0, 3, size=300)
    ag = np.array([rng.choice(np.flatnonzero(world.agents.channels[:, h])) for h in ch])
    pred = router.score_pairs(
        enc, np.zeros(300), [(ch[i : i + 1], ag[i : i + 1]) for i in range(300)], records
    )
    p = np.array([s["resolution"][0] for s in pred])
    truth = world.expected(contacts, np.arange(300), ch, ag, np.zeros(300))["resolution"]
    assert spearmanr(p, truth).statistic > 0.4


def test_bad_logs_name_file_and_field(org_logs: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="manifest.json: missing: not a frontdesk log folder"):
        DecisionLogs.open(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(org_logs, broken)
    f = broken / "contacts-001.parquet"
    pq.write_table(pq.read_table(f).drop(["propensity"]), f)
    with pytest.raises(
        DataError, match=r"contacts-001\.parquet: checksum differs from manifest.json"
    ):
        DecisionLogs.open(broken)
    # an export that lists no checksums: the columns are still checked
    edit_json(broken / "manifest.json", lambda m: [m.pop("files"), m.pop("bytes")])
    with pytest.raises(DataError, match=r"contacts-001\.parquet: propensity: missing column"):
        DecisionLogs.open(broken)
    with pytest.raises(DataError):
        train_router(broken, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def _rule_pick(router: Router, conv: Conversation, agents: list) -> tuple[str, str]:
    """The rule's (channel, agent) among the eligible pairs, on the router's topic guess."""
    enc = router.encode([conv])
    resolved = router.resolve_agents(agents)
    ch, ag = router.eligible(conv.user, resolved)
    recs = [r for r, _ in resolved]
    _, topic_p = router.context(enc, np.zeros(1))
    skills = np.array(
        [[recs[a].skills.get(t, np.nan) for t in router.featurizer.topics] for a in ag]
    )
    listed = listed_mix(skills, np.repeat(topic_p, len(ag), axis=0))
    scores = rule_score(
        listed, conv.user.segment or "", [router.channels[h] for h in ch],
        np.array([recs[a].cost_per_minute for a in ag]),
    )  # fmt: skip
    best = int(np.argmax(scores))
    return router.channels[int(ch[best])], recs[int(ag[best])].agent_id


def test_segments_the_check_did_not_clear_are_routed_by_the_rule(router: Router) -> None:
    agents = list(router.roster)
    deciding(router, {"overall": POLICY_ROUTER, "segments": {"enterprise": POLICY_RULE,
                                                             "individual": POLICY_ROUTER}})  # fmt: skip
    d = router.route(DE_ENTERPRISE, agents)
    assert d.policy == POLICY_RULE
    assert (d.channel, d.agent_id) == _rule_pick(router, DE_ENTERPRISE, agents)
    individual = Conversation(
        text=DE_ENTERPRISE.text, context={"user": {"segment": "individual", "language": "de"}}
    )
    assert router.route(individual, agents).policy == POLICY_ROUTER
    # A segment the check had no evidence for, and a contact without one: the rule.
    assert router.policy_for("platform") == POLICY_RULE
    assert router.policy_for(None) == POLICY_RULE
    # Deferring everywhere: every contact of a batch gets the rule's pick, in turn.
    deciding(router, {"overall": POLICY_RULE, "segments": {}})
    convs = [DE_ENTERPRISE, individual, "where is my payout"]
    got = router.route_many(convs, agents)
    assert all(g is not None and g.policy == POLICY_RULE for g in got)
    assert (got[0].channel, got[0].agent_id) == _rule_pick(router, DE_ENTERPRISE, agents)


def test_the_rule_score_is_listed_skill_segment_channel_and_cost() -> None:
    got = rule_score(np.array([0.5, 0.9]), "enterprise", ["phone", "email"], np.array([1.0, 0.5]))
    assert got.tolist() == pytest.approx([2 * 0.5 + 1.0 - 0.1, 2 * 0.9 + 0.0 - 0.05])


def test_a_router_of_the_earlier_format_is_refused(router_dir: Path, tmp_path, encoder) -> None:
    old = tmp_path / "old"
    shutil.copytree(router_dir, old)
    edit_json(old / "router.json", lambda c: c.pop("channel_folds"))
    manifest = json.loads((old / "manifest.json").read_text())
    write_manifest(old, {k: v for k, v in manifest.items() if k != "files"})
    with pytest.raises(IndexIntegrityError, match="earlier format .* train it again"):
        Router.load(old, encoder=encoder)
