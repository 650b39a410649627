"""The server's decision log: ids on every answer, records with propensities, outcomes back."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from frontdesk import build_index
from frontdesk.decisions.store import DECISIONS, OUTCOMES, DecisionLogDir
from frontdesk.scoring.decision_logging import DecisionLogSettings
from frontdesk.scoring.packaging import package_model
from frontdesk.scoring.server import create_app

from .conftest import running, wait_ready

ROUTE_BODY = {
    "id": "c-1",
    "text": "my card payment failed",
    "context": {"user": {"segment": "consumer", "language": "en"}},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder, router_dir):  # type: ignore[no-untyped-def]
    from tests.conftest import TINY_CATALOG, write_jsonl

    root = tmp_path_factory.mktemp("decisions")
    models = root / "models"
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "idx", encoder=encoder)
    package_model(root / "idx", "suggest", models, max_batch_size=8, max_batch_time_ms=5)
    package_model(root / "idx", "suggest", models)  # version 2: the shadow
    (models / "suggest" / "routing.json").write_text(json.dumps({"default": "1", "shadow": "2"}))
    package_model(router_dir, "route", models, parameters={"epsilon": 0.5})
    log_dir = root / "log"
    settings = DecisionLogSettings(
        folder=str(log_dir), explore_top_k=3, explore_rate=0.5, flush_seconds=0.2
    )
    app = create_app(models, decision_log=settings, seed=3)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        wait_ready(client)
        yield client, app.state.service, log_dir


def _decisions(service) -> list[dict]:  # type: ignore[no-untyped-def]
    service.decision_log.decisions.flush()
    return DecisionLogDir.open(service.decision_log.store.root).read(DECISIONS).to_pylist()


def test_every_answer_carries_a_decision_id_that_is_logged(served) -> None:  # type: ignore[no-untyped-def]
    client, service, _ = served
    s = client.post("/v1/suggest", json={"text": "I want my money back", "id": "s-1"}).json()
    r = client.post("/v1/route", json=ROUTE_BODY).json()
    v2 = client.post(
        "/v2/models/suggest/infer",
        json={"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                          "data": ["refund please", "card declined"]}]},
    ).json()  # fmt: skip
    ids = [s["decision_id"], r["decision_id"], *v2["parameters"]["decision_ids"]]
    assert len(set(ids)) == 4 and all(len(i) == 32 for i in ids)
    by_id = {d["decision_id"]: d for d in _decisions(service)}
    assert set(ids) <= set(by_id)
    sug, route = by_id[s["decision_id"]], by_id[r["decision_id"]]
    assert sug["task"] == "suggest" and sug["role"] == "default" and sug["contact_id"] == "s-1"
    assert sug["workflow_ids"] == [x["workflow_id"] for x in s["suggestions"]]
    assert route["task"] == "route" and route["channel"] == r["channel"]
    assert route["agent_id"] == r["agent_id"] and route["segment"] == "consumer"
    assert route["latency_ms"] > 0 and route["explore"] == "epsilon=0.5"


def test_route_propensities_are_a_distribution_over_the_pairs_considered(served) -> None:  # type: ignore[no-untyped-def]
    client, service, _ = served
    got = [client.post("/v1/route", json=ROUTE_BODY).json() for _ in range(30)]
    by_id = {d["decision_id"]: d for d in _decisions(service)}
    explored = 0
    for g in got:
        d = by_id[g["decision_id"]]
        pairs = list(zip(d["eligible_channels"], d["eligible_agents"], strict=True))
        probs = d["eligible_propensities"]
        assert len(pairs) == len(probs) > 1 and math.isclose(sum(probs), 1.0)
        chosen = pairs.index((d["channel"], d["agent_id"]))
        assert math.isclose(probs[chosen], d["propensity"]) and g["propensity"] == d["propensity"]
        assert min(probs) == pytest.approx(0.5 / len(probs))  # epsilon spread evenly
        explored += d["propensity"] < 0.5
    assert 3 <= explored <= 27  # with epsilon 0.5 about half land off the router's choice


def test_suggestion_lists_are_explored_with_their_order_probability(served) -> None:  # type: ignore[no-untyped-def]
    client, service, _ = served
    got = [client.post("/v1/suggest", json={"text": "refund my order"}).json() for _ in range(40)]
    by_id = {d["decision_id"]: d for d in _decisions(service) if d["role"] != "shadow"}
    orders = set()
    for g in got:
        d = by_id[g["decision_id"]]
        ranked, shown = d["ranked_ids"], d["workflow_ids"]
        assert sorted(shown[:3]) == sorted(ranked[:3]) and shown[3:] == ranked[3:]
        same = shown[:3] == ranked[:3]
        assert d["shown_propensity"] == pytest.approx(0.5 / 6 + (0.5 if same else 0.0))
        orders.add(tuple(shown[:3]))
    assert len(orders) > 1


def test_shadow_answers_are_logged_as_shadow_of_the_served_decision(served) -> None:  # type: ignore[no-untyped-def]
    client, service, _ = served
    s = client.post("/v1/suggest", json={"text": "where is my refund"}).json()
    for _ in range(50):  # the shadow runs in the background
        shadows = [d for d in _decisions(service) if d["shadow_of"] == s["decision_id"]]
        if shadows:
            break
    assert shadows and shadows[0]["role"] == "shadow" and shadows[0]["model_version"] == "2"


def test_outcomes_are_validated_as_a_batch_and_written_before_the_answer(served) -> None:  # type: ignore[no-untyped-def]
    client, service, log_dir = served
    r = client.post("/v1/route", json=ROUTE_BODY).json()
    good = {"decision_id": r["decision_id"], "resolved": True, "csat": 4, "handle_time": 12.5,
            "cost": 3.1, "workflow_used": "refund-failed"}  # fmt: skip
    store = DecisionLogDir.open(log_dir)
    before = store.read(OUTCOMES).num_rows
    bad_batches = {
        "outcomes[1].csat": [good, {**good, "csat": "four"}],
        "outcomes[0].mood": [{**good, "mood": "happy"}],
        "outcomes[0].decision_id": [{**good, "decision_id": "../../etc/passwd"}],
        "outcomes[2].resolved": [good, good, {**good, "resolved": "yes"}],
        "outcomes[0].handle_time": [{**good, "handle_time": -1}],
        "outcomes[0]": [[1, 2]],
    }
    for where, batch in bad_batches.items():
        res = client.post("/v1/outcomes", json={"outcomes": batch})
        assert res.status_code == 400 and res.json()["error"].startswith(where), res.text
    nan = client.post(
        "/v1/outcomes",
        content=b'{"outcomes": [{"decision_id": "%s", "cost": NaN}]}' % r["decision_id"].encode(),
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    assert client.post("/v1/outcomes", json={"outcome": [good]}).status_code == 400
    record = {**good, "decision_id": "0" * 32, "workflow_used": "w" * 100}
    over = client.post("/v1/outcomes", json={"outcomes": [record] * 10_001})  # about 2 MB
    assert over.status_code == 400 and "10001 outcomes in one batch" in over.json()["error"]
    huge = client.post("/v1/outcomes", json={"outcomes": [record] * 50_000})  # about 10 MB
    assert huge.status_code == 413 and "at most 10000 outcomes" in huge.json()["error"]
    missing = client.post("/v1/outcomes", json={"outcomes": [{"csat": True}]}).json()["error"]
    assert missing.startswith("outcomes[0].decision_id: missing"), missing
    wrong = client.post("/v1/outcomes", json={"outcomes": [{**good, "csat": True}]}).json()
    assert wrong["error"] == "outcomes[0].csat: true is not an integer from 1 to 5", wrong
    assert store.read(OUTCOMES).num_rows == before  # nothing half-written
    ok = client.post("/v1/outcomes", json={"outcomes": [good]})
    assert ok.status_code == 200 and ok.json() == {"accepted": 1}
    rows = store.read(OUTCOMES).to_pylist()  # on disk already: no flush needed
    assert len(rows) == before + 1 and rows[-1]["workflow_used"] == "refund-failed"
    assert client.get("/v2/health/ready").status_code == 200
    metrics = client.get("/metrics").text
    assert 'frontdesk_decision_log_rows_total{log="outcomes",outcome="written"}' in metrics


def test_without_a_decision_log_outcomes_are_refused(models_only) -> None:  # type: ignore[no-untyped-def]
    res = models_only.post("/v1/outcomes", json={"outcomes": []})
    assert res.status_code == 409 and "--decision-log" in res.json()["error"]


@pytest.fixture(scope="module")
def models_only(tmp_path_factory, encoder):  # type: ignore[no-untyped-def]
    from tests.conftest import TINY_CATALOG, write_jsonl

    root = tmp_path_factory.mktemp("nolog")
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "idx", encoder=encoder)
    package_model(root / "idx", "suggest", root / "models")
    with running(create_app(root / "models")) as url, httpx.Client(base_url=url) as client:
        wait_ready(client)
        assert "decision_id" not in client.post("/v1/suggest", json={"text": "refund"}).json()
        yield client


def test_joined_logs_are_a_log_folder_the_estimators_read(served, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from frontdesk.decisions.info import logs_info
    from frontdesk.decisions.join import join_logs
    from frontdesk.logs import DecisionLogs

    client, service, log_dir = served
    rng = np.random.default_rng(0)
    outcomes = []
    for i in range(12):
        r = client.post("/v1/route", json={**ROUTE_BODY, "id": f"join-{i}"}).json()
        if i < 10:  # two decisions never hear back
            outcomes.append({"decision_id": r["decision_id"], "resolved": bool(rng.random() < 0.7),
                             "csat": int(rng.integers(1, 6)), "handle_time": 8.0, "cost": 2.0})  # fmt: skip
    # a later, partial outcome for the first decision: its csat wins, the rest stays
    assert client.post("/v1/outcomes", json={"outcomes": outcomes}).status_code == 200
    late = {"decision_id": outcomes[0]["decision_id"], "csat": 5, "topic": "payments"}
    unknown = {"decision_id": "0" * 32, "resolved": False}
    assert client.post("/v1/outcomes", json={"outcomes": [late, unknown]}).status_code == 200
    service.decision_log.decisions.flush()
    counts = join_logs(log_dir, tmp_path / "joined")
    assert counts["outcomes"]["unknown"] >= 1 and counts["outcomes"]["duplicates"] >= 1
    assert counts["route"]["joined"] >= 10 and counts["route"]["unjoined"] >= 2
    logs = DecisionLogs.open(tmp_path / "joined")
    table = logs.read().to_pandas().set_index("contact_id")
    first = table.loc["join-0"]
    assert first["csat"] == 5 and first["topic"] == "payments"
    assert first["resolved"] == outcomes[0]["resolved"]
    assert "join-11" not in table.index and table["role"].eq("default").all()
    info = logs_info(tmp_path / "joined")
    assert info["rows"] == len(table) and info["checksums_verified"] == info["files"] + 1
    assert info["joined"] == counts["route"]["joined"]
    live = logs_info(log_dir)
    assert live["kind"] == "decision log" and live["decisions"] >= 12


def test_a_decision_dropped_by_a_full_buffer_gets_no_id(tmp_path: Path) -> None:
    from frontdesk.scoring.decision_logging import DecisionLogger
    from frontdesk.scoring.protocol import InferenceRequest, InferenceResponse, Tensor

    logger = DecisionLogger(DecisionLogSettings(folder=str(tmp_path), flush_rows=1, buffer_rows=1))
    request = InferenceRequest(inputs=[Tensor("text", [1], "BYTES", ["refund please"])])
    response = InferenceResponse("suggest", "1", [
        Tensor("workflow_id", [1, 2], "BYTES", ["a", "b"]),
        Tensor("score", [1, 2], "FP64", [0.9, 0.1]),
        Tensor("abstained", [1], "BOOL", [False]),
    ])  # fmt: skip
    args = ("suggest", "suggest", "1", "default", request, response, 0.01, "v1")
    logger.decisions._cond.acquire()  # the writer thread held away: the one slot stays taken
    try:
        first = logger.log(*args)
        assert first is not None and len(first) == 1
        assert logger.log(*args) is None and logger.decisions.dropped_rows == 1
    finally:
        logger.decisions._cond.release()
    logger.close()
    rows = DecisionLogDir.open(tmp_path).read(DECISIONS).to_pylist()
    assert [r["decision_id"] for r in rows] == first


def test_parameters_no_runtime_checked_never_cost_the_records(tmp_path: Path) -> None:
    from frontdesk.scoring.decision_logging import DecisionLogger
    from frontdesk.scoring.protocol import InferenceRequest, InferenceResponse, Tensor

    logger = DecisionLogger(DecisionLogSettings(folder=str(tmp_path)))
    request = InferenceRequest(
        inputs=[Tensor("text", [2], "BYTES", ["refund please", "card lost"])],
        parameters={"waits": ["x", float("nan")], "contexts": ["not a context", {"user": 3}]},
    )
    response = InferenceResponse("suggest", "1", [
        Tensor("workflow_id", [2, 1], "BYTES", ["a", "b"]),
        Tensor("score", [2, 1], "FP64", [0.9, 0.8]),
        Tensor("abstained", [2], "BOOL", [False, False]),
    ])  # fmt: skip
    ids = logger.log("suggest", "suggest", "1", "shadow", request, response, 0.01, "v2")
    logger.close()
    rows = DecisionLogDir.open(tmp_path).read(DECISIONS).to_pylist()
    assert [r["decision_id"] for r in rows] == ids
    assert [r["wait_min"] for r in rows] == [None, None]
    assert rows[0]["ranked_ids"] is None  # a shadow's list was never shown: nothing explored
    assert logger.decisions.dropped_rows == 0
