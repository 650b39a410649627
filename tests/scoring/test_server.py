"""The scoring server through a real uvicorn on a loopback port: every endpoint and error path."""

from __future__ import annotations

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from frontdesk import build_index
from frontdesk.scoring.packaging import package_model
from frontdesk.scoring.server import create_app

from .conftest import running, wait_ready

TOKEN = "test-admin-token"

# A new model type: this one file plus a settings file, no other edit anywhere.
ECHO_RUNTIME = """
from frontdesk.scoring import Scorer, Tensor


class EchoRuntime(Scorer):
    inputs = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    outputs = [{"name": "echo", "datatype": "BYTES", "shape": [-1]}]

    def load(self):
        self.suffix = self.settings.parameters.get("suffix", "")

    def predict(self, request):
        texts = self.texts(request)
        out = [t.upper() + self.suffix for t in texts]
        return self.response(request, [Tensor("echo", [len(out)], "BYTES", out)])
"""


def settings(folder: Path, implementation: str, **params: object) -> None:
    folder.mkdir(parents=True)
    (folder / "model-settings.json").write_text(
        json.dumps({"implementation": implementation, "parameters": params})
    )


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory, encoder, router_dir) -> Path:  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    from tests.conftest import TINY_CATALOG, write_jsonl

    root = tmp_path_factory.mktemp("serve")
    plugins = root / "plugins"
    plugins.mkdir()
    (plugins / "echo_runtime.py").write_text(ECHO_RUNTIME)
    sys.path.insert(0, str(plugins))
    models = root / "models"
    catalog = write_jsonl(root / "catalog.jsonl", TINY_CATALOG)
    build_index(catalog, root / "idx", encoder=encoder)
    package_model(root / "idx", "suggest", models, max_batch_size=8, max_batch_time_ms=20)
    package_model(router_dir, "route", models)
    echo = "echo_runtime.EchoRuntime"
    settings(models / "echo" / "1", echo)
    settings(models / "echo" / "2", echo)
    settings(models / "echo" / "3", echo, suffix="!")  # the shadow answers differently
    (models / "echo" / "routing.json").write_text(
        json.dumps({"default": "1", "canary": {"2": 20}, "shadow": "3"})
    )
    rng = np.random.default_rng(0)
    x = rng.random((200, 3))
    data = lgb.Dataset(x, x @ [1.0, 2.0, -1.0], feature_name=["tenure", "contacts", "wait"])
    lgb.train({"objective": "regression", "verbosity": -1}, data, 20).save_model(
        str(root / "m.txt")
    )
    package_model(root / "m.txt", "lgbm", models)
    settings(models / "encoder" / "1", "frontdesk.scoring.runtimes.encoder.EncoderRuntime")
    return models


@pytest.fixture(scope="module")
def client(models_dir: Path):  # type: ignore[no-untyped-def]
    app = create_app(models_dir, admin_token=TOKEN, max_body_bytes=20_000, seed=7)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        wait_ready(c)
        yield c


def texts(n: int, *words: str) -> dict:
    data = list(words) or [f"where is my payout {i}" for i in range(n)]
    return {"inputs": [{"name": "text", "shape": [len(data)], "datatype": "BYTES", "data": data}]}


def test_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert client.get("/v2").json()["name"] == "frontdesk"
    meta = client.get("/v2/models/suggest").json()
    assert meta["name"] == "suggest" and meta["versions"] == ["1"]
    assert {o["name"] for o in meta["outputs"]} >= {"workflow_id", "score", "abstained"}
    assert client.get("/v2/models/echo/versions/3").json()["version"] == "3"
    assert client.get("/v2/models/echo/ready").json()["ready"] is True
    assert client.get("/v2/models/echo/versions/2/ready").status_code == 200
    assert client.get("/v2/models/nope").status_code == 404
    index = client.get("/v2/repository/index").json()
    assert {(m["name"], m["state"]) for m in index} >= {("suggest", "ready"), ("echo", "ready")}


def test_v2_infer_shapes_and_datatypes(client: httpx.Client) -> None:
    body = texts(2, "where is my payout", "customer says refund never arrived")
    body["parameters"] = {"k": 3}
    res = client.post("/v2/models/suggest/infer", json=body)
    assert res.status_code == 200
    out = {t["name"]: t for t in res.json()["outputs"]}
    assert out["workflow_id"]["shape"] == [2, 3] and out["workflow_id"]["datatype"] == "BYTES"
    assert out["score"]["shape"] == [2, 3] and out["score"]["datatype"] == "FP64"
    assert out["abstained"]["datatype"] == "BOOL" and out["abstained"]["shape"] == [2]
    assert out["query_from"]["data"] == ["latest", "latest"]  # no earlier turns
    assert out["workflow_id"]["data"][0] == "payout-delayed"
    assert out["workflow_id"]["data"][3] == "refund-not-received"
    emb = client.post("/v2/models/encoder/infer", json=texts(2, "a", "b")).json()["outputs"][0]
    assert emb["datatype"] == "FP32" and emb["shape"] == [2, 384]
    v = np.array(emb["data"]).reshape(2, 384)
    assert np.linalg.norm(v, axis=1) == pytest.approx([1.0, 1.0], abs=1e-4)


def test_lightgbm_runtime_two_input_styles(client: httpx.Client, models_dir: Path) -> None:
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(next((models_dir / "lgbm" / "1" / "artifacts").iterdir())))
    x = [[0.1, 0.2, 0.3], [0.9, 0.5, 0.0]]
    matrix = {"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP64", "data": x}]}
    named = {
        "inputs": [
            {"name": n, "shape": [2], "datatype": "FP64", "data": [r[i] for r in x]}
            for i, n in enumerate(["tenure", "contacts", "wait"])
        ]
    }
    want = booster.predict(np.array(x)).tolist()
    for body in (matrix, named):
        got = client.post("/v2/models/lgbm/infer", json=body).json()["outputs"][0]["data"]
        assert got == pytest.approx(want)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
            "holds 3 elements, data has 1",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "STRING", "data": ["a"]}]},
            "is not one of",
        ),
        (
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [5]}]},
            "must be strings",
        ),
        (
            {"inputs": [{"name": "txt", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            "missing input tensor 'text'",
        ),
        ({"inputs": []}, "non-empty list"),
        ({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}, "missing 'data'"),
    ],
)
def test_malformed_requests_get_400_with_an_error(
    client: httpx.Client, body: dict, message: str
) -> None:
    res = client.post("/v2/models/suggest/infer", json=body)
    assert res.status_code == 400
    assert message in res.json()["error"]


def test_not_json_bad_names_and_too_large(client: httpx.Client) -> None:
    res = client.post("/v2/models/suggest/infer", content=b"{not json")
    assert res.status_code == 400 and "invalid JSON" in res.json()["error"]
    for bad in ("a..b", "x$y"):
        res = client.post(f"/v2/models/{bad}/infer", json=texts(1, "a"))
        assert res.status_code == 400 and "invalid model name" in res.json()["error"]
    assert client.post("/v2/models/echo/versions/..x/infer", json=texts(1, "a")).status_code == 400
    big = texts(1, "x" * 30_000)
    res = client.post("/v2/models/suggest/infer", json=big)
    assert res.status_code == 413 and "over 20000 bytes" in res.json()["error"]


def test_v1_suggest_and_route(client: httpx.Client, router_dir: Path) -> None:
    conv = {
        "text": "any update?",
        "context": {"turns": [{"role": "user", "text": "my payout has not arrived"}]},
    }
    res = client.post("/v1/suggest", json=conv, params={"k": 2})
    assert res.status_code == 200
    body = res.json()
    assert body["suggestions"][0]["workflow_id"] == "payout-delayed"
    assert body["suggestions"][0]["title"] == "Payout has not arrived"
    assert len(body["suggestions"]) == 2 and body["abstained"] is False
    assert body["query_from"] == "earlier"  # the default gate read "any update?" as a follow-up
    alone = client.post("/v1/suggest", json={"text": "my payout has not arrived"}).json()
    assert alone["query_from"] == "latest"
    assert client.post("/v1/suggest", json={"context": {}}).status_code == 400
    route = client.post(
        "/v1/route",
        json={
            "text": "charged twice",
            "context": {"user": {"segment": "enterprise", "language": "en"}},
        },
    ).json()
    assert route["channel"] in {"phone", "chat", "email"} and route["agent_id"].startswith("agent-")
    # who decided: the router, or the rule its held-out check left this contact to
    from frontdesk.routing import Router

    assert route["policy"] == Router.load(router_dir).policy_for("enterprise")
    only = client.post("/v1/route", json={"text": "hello", "agents": ["agent-001"]}).json()
    assert only["agent_id"] == "agent-001" or only["waiting"] is True


@pytest.mark.parametrize("key", ["profile", "user", "turns"])
def test_v1_refuses_context_fields_at_the_top_level(client: httpx.Client, key: str) -> None:
    for path in ("/v1/suggest", "/v1/route"):
        res = client.post(path, json={"text": "charged twice", key: {"segment": "enterprise"}})
        assert res.status_code == 400 and res.json()["error"].startswith(f"{key}: belongs in")


def test_v1_suggest_takes_k_in_the_body_or_the_query(client: httpx.Client) -> None:
    body = {"text": "my payout has not arrived"}
    in_body = client.post("/v1/suggest", json={**body, "k": 2})
    assert in_body.status_code == 200 and len(in_body.json()["suggestions"]) == 2
    both = client.post("/v1/suggest", json={**body, "k": 3}, params={"k": 3})
    assert both.status_code == 200 and len(both.json()["suggestions"]) == 3
    clash = client.post("/v1/suggest", json={**body, "k": 2}, params={"k": 3})
    assert clash.status_code == 400 and "send one" in clash.json()["error"]
    for bad, status in (("five", 400), (2.5, 400), (True, 400), (0, 422), (10**6, 422)):
        res = client.post("/v1/suggest", json={**body, "k": bad})
        assert res.status_code == status, (bad, res.text)
        assert re.match(r"(request: )?k: ", res.json()["error"]), res.text


def test_canary_split_and_shadow_never_answers(client: httpx.Client) -> None:
    served = {"1": 0, "2": 0, "3": 0}
    for _ in range(1000):
        body = client.post("/v2/models/echo/infer", json=texts(1, "hi")).json()
        served[body["model_version"]] += 1
        assert body["outputs"][0]["data"] == ["HI"]  # never the shadow's "HI!"
    assert served["3"] == 0
    assert 0.16 <= served["2"] / 1000 <= 0.24, served
    assert client.post("/v2/models/echo/versions/3/infer", json=texts(1, "hi")).json()["outputs"][
        0
    ]["data"] == ["HI!"]
    time.sleep(0.5)
    metrics = client.get("/metrics").text
    counts = {
        kind: sum(
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith(
                f'frontdesk_shadow_requests_total{{agrees="{kind}",model="echo",version="3"}}'
            )
        )
        for kind in ("false", "true", "dropped")
    }
    # Every unversioned request ran the shadow (or dropped it when 4 were already in flight);
    # its answers were measured, and they disagreed with the served ones.
    assert counts["false"] + counts["dropped"] >= 990, counts
    assert counts["false"] >= 500 and counts["true"] == 0, counts


def test_micro_batching_and_metrics(client: httpx.Client) -> None:
    def one(i: int) -> int:
        return client.post(
            "/v2/models/suggest/infer", json=texts(1, f"payout question {i}")
        ).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, range(64))) == {200}
    metrics = client.get("/metrics").text
    lines = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in metrics.splitlines()
        if line.startswith("frontdesk_") and not line.startswith("#")
    }
    count = lines['frontdesk_batch_size_count{model="suggest",version="1"}']
    total = lines['frontdesk_batch_size_sum{model="suggest",version="1"}']
    assert total > count  # some model calls answered several requests at once
    assert lines['frontdesk_requests_total{model="suggest",route="v2",version="1"}'] >= 64
    assert (
        'frontdesk_request_latency_seconds_bucket{le="0.05",model="suggest",version="1"}' in lines
    )
    assert any(k.startswith("frontdesk_request_errors_total") for k in lines)


def test_admin_token(client: httpx.Client, models_dir: Path) -> None:
    assert client.post("/v2/repository/models/echo/unload").status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/v2/repository/models/echo/unload", headers=wrong).status_code == 401
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/v2/repository/models/echo/unload", headers=ok).json()["unloaded"] is True
    assert client.post("/v2/models/echo/infer", json=texts(1, "a")).status_code == 404
    loaded = client.post("/v2/repository/models/echo/load", headers=ok)
    assert loaded.status_code == 200 and loaded.json()["versions"] == {
        "1": "ready",
        "2": "ready",
        "3": "ready",
    }
    assert client.post("/v2/models/echo/infer", json=texts(1, "a")).status_code == 200
    assert client.post("/v2/repository/models/..x/load", headers=ok).status_code == 400
    assert client.post("/v2/repository/models/ghost/load", headers=ok).status_code == 404


def test_admin_refused_without_a_configured_token(models_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("FRONTDESK_ADMIN_TOKEN", raising=False)
    root = models_dir.parent / "admin-off"
    settings(root / "echo" / "1", "echo_runtime.EchoRuntime")
    with running(create_app(root)) as url, httpx.Client(base_url=url) as c:
        wait_ready(c)
        res = c.post("/v2/repository/models/echo/unload", headers={"Authorization": "Bearer x"})
        assert res.status_code == 403 and "FRONTDESK_ADMIN_TOKEN" in res.json()["error"]


def test_failed_and_slow_loads(tmp_path: Path) -> None:
    plugin = tmp_path / "plugins"
    plugin.mkdir()
    (plugin / "slow_runtime.py").write_text(
        ECHO_RUNTIME.replace("class EchoRuntime", "class SlowRuntime").replace(
            "    def load(self):\n", "    def load(self):\n        import time; time.sleep(3)\n"
        )
    )
    sys.path.insert(0, str(plugin))
    root = tmp_path / "models"
    settings(root / "a-ok" / "1", "echo_runtime.EchoRuntime")
    settings(root / "broken" / "1", "echo_runtime.NoSuchRuntime")
    settings(root / "slow" / "1", "slow_runtime.SlowRuntime")
    with running(create_app(root)) as url, httpx.Client(base_url=url) as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 503  # slow is still loading
        deadline = time.time() + 10
        while c.get("/v2/models/a-ok/ready").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert c.post("/v2/models/a-ok/infer", json=texts(1, "x")).status_code == 200
        slow = c.get("/v2/models/slow/ready")
        assert slow.status_code == 503 and slow.json()["ready"] is False
        while c.get("/v2/models/slow/ready").status_code != 200 and time.time() < deadline + 10:
            time.sleep(0.2)
        assert c.get("/v2/models/slow/ready").status_code == 200
        broken = c.get("/v2/models/broken")
        assert broken.json()["state"] == "failed" and "NoSuchRuntime" in broken.json()["error"]
        assert c.get("/v2/models/broken/ready").status_code == 503
        assert c.post("/v2/models/broken/infer", json=texts(1, "x")).status_code == 503
        assert c.get("/v2/health/ready").status_code == 503  # one model failed


def test_package_versions(tmp_path: Path, models_dir: Path) -> None:
    from frontdesk.errors import FrontdeskError

    idx = next((models_dir / "suggest" / "1" / "artifacts").iterdir())
    a = package_model(idx, "s", tmp_path)
    b = package_model(idx, "s", tmp_path, max_batch_size=1)
    assert (a.name, b.name) == ("1", "2")
    s = json.loads((b / "model-settings.json").read_text())
    assert s["implementation"].endswith("SuggesterRuntime") and s["max_batch_size"] == 1
    with pytest.raises(FrontdeskError, match="invalid model name"):
        package_model(idx, "../evil", tmp_path)
    with pytest.raises(FrontdeskError, match="versions are immutable"):
        package_model(idx, "s", tmp_path, version="1")


def test_chunked_body_over_the_limit_is_refused(client: httpx.Client) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["'
        for _ in range(40):
            yield b"x" * 1000  # 40 kB in total, no Content-Length: streamed
        yield b'"]}]}'

    res = client.post("/v2/models/suggest/infer", content=chunks())
    assert res.status_code == 413 and "over 20000 bytes" in res.json()["error"]


def test_client_mistakes_are_400s(client: httpx.Client) -> None:
    nan = (
        b'{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [NaN, 1, 2]}]}'
    )
    res = client.post("/v2/models/lgbm/infer", content=nan)
    assert res.status_code == 400 and "NaN is not a number JSON allows" in res.json()["error"]
    res = client.post("/v1/route", json={"text": "hi", "wait_min": "abc"})
    assert res.status_code == 400 and "wait_min" in res.json()["error"]
    res = client.post("/v1/suggest", json={"text": "hi"}, params={"model": "echo"})
    assert res.status_code == 400 and "does not suggest" in res.json()["error"]
    res = client.post("/v1/route", json={"text": "hi", "agents": ["agent-001", "agent-001"]})
    assert res.status_code == 400 and "listed twice" in res.json()["error"]
    bad_ctx = {
        **texts(1, "hi"),
        "parameters": {"contexts": [{"turns": [{"role": "robot", "text": "x"}]}]},
    }
    res = client.post("/v2/models/suggest/infer", json=bad_ctx)
    assert res.status_code == 400 and "contexts[0].turns.0.role" in res.json()["error"]
    res = client.post(
        "/v2/repository/models/echo/unload", headers={"Authorization": "Bearer é".encode()}
    )
    assert res.status_code == 401


def test_broken_routing_and_stray_folders_stay_contained(tmp_path: Path) -> None:
    root = tmp_path / "models"
    settings(root / "good" / "1", "echo_runtime.EchoRuntime")
    settings(root / "badroute" / "1", "echo_runtime.EchoRuntime")
    (root / "badroute" / "routing.json").write_text('{"default": "1", "canary": {"1": "ten"}}')
    (root / "notes").mkdir()  # a stray folder with no version: not a model
    with running(create_app(root)) as url, httpx.Client(base_url=url) as c:
        deadline = time.time() + 10
        while c.get("/v2/models/good/ready").status_code != 200 and time.time() < deadline:
            time.sleep(0.1)
        assert c.post("/v2/models/good/infer", json=texts(1, "x")).json()["outputs"][0]["data"] == [
            "X"
        ]
        res = c.post("/v2/models/badroute/infer", json=texts(1, "x"))
        assert res.status_code == 503 and "percentages must be numbers" in res.json()["error"]
        assert c.get("/v2/models/badroute/ready").status_code == 503
        assert "percentages must be numbers" in c.get("/v2/models/badroute").json()["error"]
        assert c.get("/v2/models/notes").status_code == 404


def test_unload_fails_queued_requests_instead_of_hanging() -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor as Pool

    from frontdesk.scoring import InferenceRequest, Scorer, Tensor
    from frontdesk.scoring.batching import BatcherClosed, MicroBatcher
    from frontdesk.scoring.settings import ModelSettings

    class Slow(Scorer):
        def predict_batch(self, requests):  # type: ignore[no-untyped-def]
            time.sleep(0.5)
            return [self.response(r, []) for r in requests]

    async def scenario() -> list:
        b = MicroBatcher(
            Slow(ModelSettings(implementation="x", name="slow", version="1")), 1, 0, Pool(2)
        )
        req = InferenceRequest(inputs=[Tensor("text", [1], "BYTES", ["a"])])
        tasks = [asyncio.create_task(b.submit(req)) for _ in range(3)]
        await asyncio.sleep(0.1)  # one running, two queued
        b.close()
        return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=5)

    results = asyncio.run(scenario())
    assert all(isinstance(r, BatcherClosed) for r in results)

    async def closed_before_it_ran() -> list:
        b = MicroBatcher(
            Slow(ModelSettings(implementation="x", name="slow", version="1")), 4, 0, Pool(2)
        )
        req = InferenceRequest(inputs=[Tensor("text", [1], "BYTES", ["a"])])
        task = asyncio.create_task(b.submit(req))
        await asyncio.sleep(0)  # queued; the batch loop has not run yet
        b.close()
        return await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=5)

    assert isinstance(asyncio.run(closed_before_it_ran())[0], BatcherClosed)

    async def drained() -> list:
        b = MicroBatcher(
            Slow(ModelSettings(implementation="x", name="slow", version="1")), 1, 0, Pool(2)
        )
        req = InferenceRequest(inputs=[Tensor("text", [1], "BYTES", ["a"])])
        tasks = [asyncio.create_task(b.submit(req)) for _ in range(3)]
        await asyncio.sleep(0.1)
        b.drain()  # a replaced version answers what it had queued
        late = await asyncio.gather(b.submit(req), return_exceptions=True)
        return [
            *await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=5),
            *late,
        ]

    *answered, late = asyncio.run(drained())
    assert not any(isinstance(r, Exception) for r in answered) and isinstance(late, BatcherClosed)


def test_serving_announces_what_is_ready_and_what_failed(models_dir: Path) -> None:
    root = models_dir.parent / "announce"
    settings(root / "echo" / "1", "echo_runtime.EchoRuntime")
    settings(root / "broken" / "1", "no_such_module.Runtime")
    lines: list[str] = []
    with running(create_app(root, announce=lines.append)) as url, httpx.Client(base_url=url) as c:
        deadline = time.time() + 30
        while not lines and time.time() < deadline:
            time.sleep(0.05)
        assert c.get("/v2/health/ready").status_code == 503  # one model failed
    assert len(lines) == 1
    assert lines[0].startswith("1 of 2 model versions ready: echo/1; failed: broken/1 (")
