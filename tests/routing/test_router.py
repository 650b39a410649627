"""Router: training output, loading checks, eligibility, capacity, one shared encoding."""

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
    NoEligibleAgentError,
    Router,
    RoutingWeights,
    train_router,
)

from ..conftest import edit_json

DE_ENTERPRISE = Conversation(
    text="I was charged twice for one order",
    context={"user": {"segment": "enterprise", "language": "de", "country": "DE"}},
)


def test_router_folder_has_no_pickle_and_a_verified_manifest(router_dir: Path) -> None:
    names = {p.name for p in router_dir.iterdir()}
    assert {"manifest.json", "router.json", "agents.json", "channel_resolution.txt"} <= names
    assert {"matcher_csat.txt", "topic_coef.npy", "history_sums.npy"} <= names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    manifest = json.loads((router_dir / "manifest.json").read_text())
    assert manifest["kind"] == "frontdesk-router"
    assert set(manifest["files"]) == names - {"manifest.json"}


def test_route_respects_language_channels_and_capacity(router: Router) -> None:
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
    soft = Router.load(router_dir, encoder=encoder, temperature=0.05, seed=1)
    enc = soft.encode([DE_ENTERPRISE])
    agents = soft.resolve_agents(list(soft.roster))
    ch, ag = soft.eligible(DE_ENTERPRISE.user, agents)
    utilities = soft.score_pairs(enc, np.zeros(1), [(ch, ag)], [r for r, _ in agents])[0]["utility"]
    probs = soft.probabilities(utilities)
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
    r1 = Router.load(router_dir, encoder=encoder)
    r2 = Router.load(router_dir, encoder=encoder)
    agents = list(r1.roster)
    assert r1.route(DE_ENTERPRISE, agents) == r2.route(DE_ENTERPRISE, agents)
    cheap = Router.load(router_dir, encoder=encoder, weights=RoutingWeights(resolution=0, cost=50))
    costs = [cheap.route(f"question {i}", agents).expected["cost"] for i in range(5)]
    dear = [r1.route(f"question {i}", agents).expected["cost"] for i in range(5)]
    assert sum(costs) <= sum(dear)


def test_tampered_or_foreign_router_is_refused(router_dir: Path, tmp_path: Path, encoder) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(router_dir, bad)
    (bad / "matcher_resolution.txt").write_text("tree\n")
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
