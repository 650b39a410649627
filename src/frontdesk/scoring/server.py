"""The scoring server: Open Inference Protocol (KServe V2) REST over every model type.

Endpoints: ``/v2/health/live``, ``/v2/health/ready`` (ready once every model
loaded and answered a warm-up request), ``/v2``, ``/v2/models/{name}[/versions/{v}]``
(+ ``/ready``, ``/infer``), ``/v2/repository/index``, admin
``/v2/repository/models/{name}/load|unload`` (bearer token from
``FRONTDESK_ADMIN_TOKEN``; refused when unset), the conveniences ``/v1/suggest``
and ``/v1/route`` (a Conversation JSON), ``/v1/outcomes`` (outcomes of
logged decisions, with a decision log), and Prometheus ``/metrics``.
With a decision log (``decision_log``), every answer of a suggester or router
carries ``decision_id`` (V2: ``parameters.decision_ids``, one per text).
Every answer is JSON; errors are ``{"error": ...}``: 400 malformed (not JSON,
nested too deeply, a wrong type...), 401/403 admin, 404 unknown model, 408 body
(or headers) not received in time, 409 no decision log, 413 body too large
(1 MiB; 8 MiB for an outcome batch), 422 a value past a limit (empty text, too
many texts or turns, ``k``), 503 not ready or outcome log full, 504 past the
request deadline, 500 a model or server fault (docs/limits.md, "Server").
Checks run before any work starts; requests over the chunk size run on their
own lane, part by part, so they never hold up the others (``_call_large``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from .. import limits as input_limits
from .._version import __version__
from ..errors import DataError, FrontdeskError
from .batching import BatcherClosed, MicroBatcher
from .decision_logging import MAX_OUTCOMES_PER_BATCH, DecisionLogger, DecisionLogSettings
from .protocol import InferenceRequest, InferenceResponse, ProtocolError, Tensor, parse_request
from .repository import ModelRepository, ModelVersion
from .settings import ServeSettings, valid_name

log = logging.getLogger("frontdesk.scoring")
DEFAULT_MAX_BODY = 1 << 20  # 1 MiB
GC_THRESHOLDS = (20_000, 20, 20)  # the cyclic GC's generation thresholds while serving
# /v1/outcomes takes up to MAX_OUTCOMES_PER_BATCH records (about 150 bytes each): its own limit
OUTCOMES_PATH = "/v1/outcomes"
OUTCOMES_MAX_BODY = 8 << 20  # 8 MiB
# Top-level keys of a /v1 body that a client meant for the context: refused with where they go.
MISPLACED_FIELDS = {
    "profile": "context.user",
    "user": "context.user",
    "turns": "context.turns",
    "history": "context.turns",
}
LARGE_BODY = 64 << 10  # a body past this is parsed on the large lane (about 3 ms of parsing)


class HTTPError(Exception):
    """An error answered as ``{"error": message}`` with this HTTP status."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close  # end the connection (a client that stalled)


class Metrics:
    """Prometheus collectors in their own registry (one per app)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("model", "version")
        self.requests = Counter(
            "frontdesk_requests", "Inference requests", (*labels, "route"), registry=self.registry
        )
        self.errors = Counter(
            "frontdesk_request_errors", "Failed requests", (*labels, "code"), registry=self.registry
        )
        self.latency = Histogram(
            "frontdesk_request_latency_seconds", "Inference latency", labels, registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.batch = Histogram(
            "frontdesk_batch_size", "Requests per model call", labels, registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )  # fmt: skip
        self.ready = Gauge("frontdesk_model_ready", "1 when ready", labels, registry=self.registry)
        self.shadow = Counter(
            "frontdesk_shadow_requests", "Shadow calls", (*labels, "agrees"), registry=self.registry
        )
        self.shadow_latency = Histogram(
            "frontdesk_shadow_latency_seconds", "Shadow latency", labels, registry=self.registry
        )
        self.log_rows = Counter(
            "frontdesk_decision_log_rows", "Decision-log rows written or dropped",
            ("log", "outcome"), registry=self.registry,
        )  # fmt: skip
        self.log_errors = Counter(
            "frontdesk_decision_log_errors", "Decisions that could not be logged",
            registry=self.registry,
        )  # fmt: skip


class ScoringService:
    """Everything the routes share: repository, executor, batchers, metrics."""

    def __init__(
        self,
        models_dir: str | Path,
        admin_token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        seed: int | None = None,
        threads: int = 4,
        announce: Callable[[str], None] | None = None,
        decision_log: DecisionLogSettings | None = None,
        serving: ServeSettings | None = None,
    ) -> None:
        self.repo = ModelRepository(models_dir, seed=seed)
        self.serving = serving or ServeSettings()
        self.limits = input_limits.current()  # FRONTDESK_MAX_* as the server started
        # requests over serving.chunk units of work run here, one part at a time (_call_large)
        self.large_lane = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frontdesk-large")
        self.announce = announce  # called with load_summary() once loading ends
        self.admin_token = admin_token
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="frontdesk-model"
        )
        self.metrics = Metrics()
        self.loading = True
        self._shadow_tasks: set[asyncio.Task[Any]] = set()
        self.max_shadow_in_flight = 4  # beyond this, shadow calls are dropped (and counted)
        self.admin_lock = asyncio.Lock()  # one load/unload at a time
        m = self.metrics
        self.decision_log = (
            DecisionLogger(
                decision_log,
                seed=seed,
                on_drop=lambda log_, n: m.log_rows.labels(log_, "dropped").inc(n),
                on_logged=lambda log_, n: m.log_rows.labels(log_, "written").inc(n),
            )  # fmt: skip
            if decision_log is not None
            else None
        )

    # -- loading ---------------------------------------------------------------------------------

    def load_all(self) -> None:
        try:
            registered = {}
            for name in self.repo.names():  # every model is listed (as loading) before any loads
                registered[name] = self.repo.register(name)
            for name, entries in registered.items():
                try:
                    self._after_load(self.repo.load(name, entries))
                except Exception:  # noqa: BLE001 - one model never stops the others
                    log.exception("model %s: unexpected failure while loading", name)
        finally:
            self._refreeze()
            self.loading = False
            if self.announce is not None:
                self.announce(self.load_summary())

    def load_summary(self) -> str:
        """One line: which model versions are ready, and which failed (with why)."""
        versions = sorted(self.repo.all_versions(), key=lambda e: (e.name, e.version))
        ready = [f"{e.name}/{e.version}" for e in versions if e.state == "ready"]
        failed = [f"{e.name}/{e.version} ({e.error})" for e in versions if e.state == "failed"]
        line = f"{len(ready)} of {len(versions)} model versions ready: {', '.join(ready) or 'none'}"
        return line + (f"; failed: {'; '.join(failed)}" if failed else "")

    @staticmethod
    def _refreeze() -> None:
        """Keep long-lived models out of the cyclic GC's passes (short full collections, no
        tail-latency stalls); after an unload or reload, free what the old models held first."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        # A request allocates thousands of short-lived objects; the default first-generation
        # threshold (700) runs a collection every few requests, and objects a request leaves
        # alive for a while (micro-batches, buffered decision records) get promoted and
        # rescanned. Collect far less often (BENCHMARKS.md, "Decision log").
        gc.set_threshold(*GC_THRESHOLDS)

    def _after_load(self, entries: list[ModelVersion]) -> None:
        for e in entries:
            self.metrics.ready.labels(e.name, e.version).set(1 if e.state == "ready" else 0)
            if self.decision_log and e.state == "ready" and e.scorer and e.scorer.decision_task:
                try:
                    self.decision_log.store.describe_model(e.name, e.version, e.scorer.describe())
                except Exception:  # noqa: BLE001 - the model serves; its description is retried
                    log.exception("model %s version %s: could not describe it in the "
                                  "decision log", e.name, e.version)  # fmt: skip
            if e.state == "ready" and e.settings and e.settings.max_batch_size > 1:
                e.batcher = MicroBatcher(
                    e.scorer,  # type: ignore[arg-type]
                    e.settings.max_batch_size,
                    e.settings.max_batch_time_ms,
                    self.executor,
                    on_batch=self.metrics.batch.labels(e.name, e.version).observe,
                    max_batch_cost=4 * self.serving.chunk,
                )

    @property
    def ready(self) -> bool:
        return not self.loading and self.repo.ready

    # -- inference ---------------------------------------------------------------------------------

    async def _call(self, e: ModelVersion, request: InferenceRequest) -> InferenceResponse:
        if e.scorer is not None and e.scorer.cost(request) > self.serving.chunk:
            return await self._call_large(e, request)
        if e.batcher is not None:
            return await e.batcher.submit(request)
        self.metrics.batch.labels(e.name, e.version).observe(1)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, e.scorer.predict, request)  # type: ignore[union-attr]

    async def _call_large(self, e: ModelVersion, request: InferenceRequest) -> InferenceResponse:
        """A request over the chunk size, on the large-request lane, one part at a time.

        Smaller requests never queue behind it (they keep the model executor and the
        micro-batcher), and large requests take turns part by part: each has at most
        one part queued on the lane's one thread. A part that cannot be cut (one text
        with many turns) is prepared piece by piece first (``Scorer.prepare``). Past the
        deadline, the piece running finishes and no other starts.
        """
        scorer = e.scorer
        assert scorer is not None
        chunk = self.serving.chunk
        parts = scorer.split(request, chunk) or [request]
        loop = asyncio.get_running_loop()
        answers = []
        for part in parts:
            if len(parts) == 1 or scorer.cost(part) > chunk:  # one text with many turns
                for piece in scorer.prepare(part, chunk):
                    await loop.run_in_executor(self.large_lane, piece)
            answers.append(await loop.run_in_executor(self.large_lane, scorer.predict, part))
        self.metrics.batch.labels(e.name, e.version).observe(1)
        return answers[0] if len(answers) == 1 else scorer.join(request, answers)

    async def infer(
        self, name: str, version: str | None, request: InferenceRequest, route: str = "v2"
    ) -> InferenceResponse:
        check_name(name)
        if version is not None:
            check_name(version, "version")
        chosen, shadow = self.repo.pick(name, version)
        if chosen is None:
            known = name in self.repo.models
            what = f"model {name!r}" + (f" version {version!r}" if version and known else "")
            raise HTTPError(404, f"{what} is not loaded")
        if chosen.state != "ready":
            self.metrics.errors.labels(name, chosen.version, "503").inc()
            raise HTTPError(503, f"model {name!r} version {chosen.version} is {chosen.state}"
                            + (f": {chosen.error}" if chosen.error else ""))  # fmt: skip
        await self._validate(chosen, request)
        self.metrics.requests.labels(name, chosen.version, route).inc()
        t0 = time.perf_counter()
        try:
            response = await self._call(chosen, request)
        except ProtocolError as exc:
            self.metrics.errors.labels(name, chosen.version, "400").inc()
            raise HTTPError(400, str(exc)) from None
        except BatcherClosed as exc:
            self.metrics.errors.labels(name, chosen.version, "503").inc()
            raise HTTPError(503, str(exc)) from None
        except DataError as exc:  # a limit the runtime's own checks enforce
            self.metrics.errors.labels(name, chosen.version, "422").inc()
            raise HTTPError(422, str(exc)) from None
        except FrontdeskError as exc:
            self.metrics.errors.labels(name, chosen.version, "400").inc()
            raise HTTPError(400, str(exc)) from None
        except Exception as exc:
            self.metrics.errors.labels(name, chosen.version, "500").inc()
            log.exception("model %s version %s failed", name, chosen.version)
            raise HTTPError(500, f"model {name!r} failed: {type(exc).__name__}: {exc}") from None
        latency = time.perf_counter() - t0
        self.metrics.latency.labels(name, chosen.version).observe(latency)
        task = chosen.scorer.decision_task if chosen.scorer is not None else None
        served = (
            [t.to_json() for t in response.outputs] if shadow is not None else []
        )  # before exploration reorders what is shown
        ids: list[str] | None = None
        if self.decision_log is not None and task is not None:
            role = (
                "explicit" if version is not None
                else "default" if chosen.version == self.repo.routes[name].default
                else "canary"
            )  # fmt: skip
            await self._room(request)
            ids = self._log(task, chosen, role, request, response, latency, route)
        if shadow is not None and shadow.state == "ready":
            if len(self._shadow_tasks) >= self.max_shadow_in_flight:
                self.metrics.shadow.labels(shadow.name, shadow.version, "dropped").inc()
                return response
            task_ = asyncio.get_running_loop().create_task(
                self._shadow(shadow, request, response.model_version, served, route, ids)
            )
            self._shadow_tasks.add(task_)
            task_.add_done_callback(self._shadow_tasks.discard)
        return response

    async def _validate(self, e: ModelVersion, request: InferenceRequest) -> None:
        """The runtime's checks, before the request is queued: 400 malformed, 422 past a limit.

        A large request's checks (parsing up to a MiB of conversations) run on the large
        lane, so the event loop keeps answering meanwhile."""
        scorer = e.scorer
        if scorer is None:
            return
        try:
            if scorer.cost(request) > self.serving.chunk:  # on the large lane, as its work
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self.large_lane, scorer.validate, request, self.limits)
            else:
                scorer.validate(request, self.limits)
        except DataError as exc:
            self.metrics.errors.labels(e.name, e.version, "422").inc()
            raise HTTPError(422, str(exc)) from None
        except ProtocolError as exc:
            self.metrics.errors.labels(e.name, e.version, "400").inc()
            raise HTTPError(400, str(exc)) from None

    async def _room(self, request: InferenceRequest) -> None:
        """Under ``--log-when-full block``, wait until the request's decisions fit the buffer:
        in a worker thread, so the event loop serves other requests meanwhile."""
        writer = self.decision_log.decisions if self.decision_log is not None else None
        if writer is None or writer.when_full != "block":
            return
        n = len(request.input("text").data)
        # checked again after each wait, on the loop: the room another request took meanwhile
        # is waited for too, and once it is there the caller logs before anything else runs
        while n <= writer.buffer_rows and not writer.has_room(n):
            await asyncio.get_running_loop().run_in_executor(None, writer.wait_for_room, n, 1.0)

    def _log(
        self,
        task: str,
        e: ModelVersion,
        role: str,
        request: InferenceRequest,
        response: InferenceResponse,
        latency: float,
        route: str,
        shadow_of: list[str] | None = None,
    ) -> list[str] | None:
        """Explore (a served list) and log one decision per text; never fails the request."""
        logger = self.decision_log
        assert logger is not None
        try:
            explored = (
                logger.explore_lists(response) if task == "suggest" and role != "shadow" else None
            )
            ids = logger.log(
                task, e.name, e.version, role, request, response, latency, route,
                explored=explored, shadow_of=shadow_of,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - an answer is never lost to its log
            log.exception("model %s version %s: decision not logged", e.name, e.version)
            self.metrics.log_errors.inc()
            return None
        if ids is not None and role != "shadow":
            response.parameters["decision_ids"] = ids
        return ids

    async def _shadow(
        self,
        e: ModelVersion,
        request: InferenceRequest,
        served_version: str,
        served: list[dict[str, Any]],
        route: str,
        served_ids: list[str] | None,
    ) -> None:
        t0 = time.perf_counter()
        try:
            res = await self._call(e, request)
        except Exception as exc:  # noqa: BLE001 - a shadow never affects the answer
            log.warning("shadow %s version %s failed: %s", e.name, e.version, exc)
            self.metrics.shadow.labels(e.name, e.version, "error").inc()
            return
        latency = time.perf_counter() - t0
        agrees = [t.to_json() for t in res.outputs] == served
        self.metrics.shadow_latency.labels(e.name, e.version).observe(latency)
        self.metrics.shadow.labels(e.name, e.version, str(agrees).lower()).inc()
        log.info("shadow %s v%s vs v%s: agrees=%s", e.name, e.version, served_version, agrees)
        task = e.scorer.decision_task if e.scorer is not None else None
        if self.decision_log is not None and task is not None:
            await self._room(request)
            self._log(task, e, "shadow", request, res, latency, route, shadow_of=served_ids)

    # -- admin ---------------------------------------------------------------------------------------

    def check_admin(self, authorization: str | None) -> None:
        token = (
            self.admin_token
            if self.admin_token is not None
            else os.environ.get("FRONTDESK_ADMIN_TOKEN")
        )
        if not token:
            raise HTTPError(403, "model repository admin is disabled: set FRONTDESK_ADMIN_TOKEN")
        scheme, _, given = (authorization or "").strip().partition(" ")
        if (  # the scheme is case-insensitive (RFC 7235)
            scheme.lower() != "bearer"
            or not hmac.compare_digest(given.strip().encode(), token.encode())
        ):
            raise HTTPError(401, "a valid bearer token is required")


def check_name(name: str, what: str = "model name") -> None:
    if not valid_name(name):
        raise HTTPError(400, f"invalid {what} {name!r}: letters, digits, '_', '.', '-' only")


def _error(status: int, message: str, close: bool = False) -> Any:
    return JSONResponse(
        {"error": message}, status_code=status, headers={"connection": "close"} if close else None
    )


async def _send_error(send: Any, status: int, message: str, close: bool = False) -> None:
    """Answer ``{"error": message}`` straight through ASGI (outside FastAPI's handlers)."""
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bounds_its_own_wait(path: str) -> bool:
    """Routes the request deadline leaves alone: model loads (as long as a load takes) and
    outcome batches (which wait for the disk at most 30 s and answer 503 past it)."""
    return path.startswith("/v2/repository/models/") or path == OUTCOMES_PATH


class RequestGuard:
    """The app's outermost layer (inside Starlette's own): no request ends in a traceback.

    Before the body is read, a Content-Length past the route's limit gets 413 and
    one that is not a number 400. A request not answered within ``deadline_s`` gets
    504 (0: no deadline). A client gone before its body arrived is logged as one
    line. Anything else that escapes the app is a genuine fault: logged with its
    traceback and answered as JSON 500 where Starlette would answer plain text.
    """

    def __init__(
        self, app: Any, *, deadline_s: float, too_large: Callable[[str], tuple[int, str]]
    ) -> None:
        self.app = app
        self.deadline_s = deadline_s or None
        self.too_large = too_large

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.requests import ClientDisconnect

        method, path = scope.get("method", "?"), scope.get("path", "?")
        length = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if length is not None:
            text = length.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                await _send_error(send, 400, "Content-Length must be a number", close=True)
                return
            cap, message = self.too_large(path)
            if int(text) > cap:
                await _send_error(send, 413, message)
                return
        started = False

        async def tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        deadline = None if _bounds_its_own_wait(path) else self.deadline_s
        limit = asyncio.timeout(deadline)
        try:
            async with limit:
                await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.warning("%s %s: the client went away before its request body arrived", method, path)
        except Exception as exc:  # noqa: BLE001 - answered, never re-raised into uvicorn
            if isinstance(exc, TimeoutError) and limit.expired():
                log.warning("%s %s: not answered within %g s, answered 504", method, path, deadline)
                if not started:
                    await _send_error(
                        send, 504,
                        f"not answered within the request deadline of {deadline:g} s "
                        "(frontdesk serve --request-timeout); send fewer texts or turns",
                    )  # fmt: skip
                return
            log.exception("%s %s: unexpected failure", method, path)
            if not started:
                await _send_error(
                    send, 500, f"internal error ({type(exc).__name__}); see the server log"
                )


def create_app(
    models_dir: str | Path,
    *,
    admin_token: str | None = None,
    max_body_bytes: int | None = None,
    seed: int | None = None,
    announce: Callable[[str], None] | None = None,
    decision_log: DecisionLogSettings | None = None,
    serving: ServeSettings | None = None,
) -> Any:
    """The FastAPI app serving MODELS_DIR; models load in the background after start-up.

    ``announce`` (e.g. ``print``) gets one line once loading ends: what is ready, what failed.
    ``decision_log`` logs every decision (and takes outcomes) under its folder.
    ``serving``: deadlines and the chunk size (default: ``ServeSettings.from_env()``).
    """
    serving = serving or ServeSettings.from_env()
    limit = max_body_bytes or int(os.environ.get("FRONTDESK_MAX_BODY_BYTES", DEFAULT_MAX_BODY))
    outcomes_limit = max(limit, OUTCOMES_MAX_BODY)

    def too_large(path: str) -> tuple[int, str]:
        """The body limit of ``path`` and what a 413 says when a body passes it."""
        if path == OUTCOMES_PATH:
            return outcomes_limit, (
                f"outcome batch over {outcomes_limit} bytes: a batch holds at most "
                f"{MAX_OUTCOMES_PER_BATCH} outcomes within {outcomes_limit} bytes; split it "
                "into several requests"
            )
        return limit, f"request body over {limit} bytes"

    service = ScoringService(
        models_dir, admin_token=admin_token, max_body_bytes=limit, seed=seed, announce=announce,
        decision_log=decision_log, serving=serving,
    )  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        loader = loop.run_in_executor(None, service.load_all)
        yield
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(loader), timeout=0.1)
        service.executor.shutdown(wait=False, cancel_futures=True)
        service.large_lane.shutdown(wait=False, cancel_futures=True)
        if service.decision_log is not None:  # what is buffered goes to disk
            await loop.run_in_executor(None, service.decision_log.close)

    app = FastAPI(title="frontdesk scoring", version=__version__, lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, exc: HTTPError) -> Any:
        return _error(exc.status, exc.message, exc.close)

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(_: Request, exc: StarletteHTTPException) -> Any:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Any:
        e = exc.errors()[0]
        return _error(400, f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}")

    app.add_middleware(RequestGuard, deadline_s=serving.request_timeout_s, too_large=too_large)

    async def body_json(request: Request) -> Any:
        """The body as JSON (``limits.loads_json``: depth, integer size, no NaN or duplicate
        keys), read in chunks: 413 as soon as it passes the size limit, 408 when it has not
        all arrived within ``body_timeout_s``."""
        chunks, size = [], 0
        cap, message = too_large(request.url.path)
        wait = serving.body_timeout_s
        try:
            async with asyncio.timeout(wait):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > cap:
                        raise HTTPError(413, message)
                    chunks.append(chunk)
        except TimeoutError:
            raise HTTPError(
                408, f"request body not received within {wait:g} s", close=True
            ) from None
        data = b"".join(chunks)
        try:
            if len(data) <= LARGE_BODY:
                return input_limits.loads_json(data, "body", limits=service.limits)
            loop = asyncio.get_running_loop()  # on the large lane: the loop keeps answering
            return await loop.run_in_executor(
                service.large_lane,
                partial(input_limits.loads_json, data, "body", limits=service.limits),
            )
        except DataError as exc:
            raise HTTPError(400, str(exc)) from None

    # -- health and metadata ---------------------------------------------------------------------

    @app.get("/v2/health/live")
    async def live() -> Any:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Any:
        states = {f"{e.name}/{e.version}": e.state for e in service.repo.all_versions()}
        ok = service.ready
        return JSONResponse({"ready": ok, "models": states}, status_code=200 if ok else 503)

    @app.get("/v2")
    async def server_metadata() -> Any:
        return {
            "name": "frontdesk",
            "version": __version__,
            "extensions": ["model_repository", "frontdesk_v1"],
        }

    def _entry(name: str, version: str | None) -> ModelVersion:
        check_name(name)
        if version is not None:
            check_name(version, "version")
        versions = service.repo.models.get(name)
        if not versions:
            raise HTTPError(404, f"model {name!r} is not loaded")
        if version is None:
            route = service.repo.routes.get(name)
            version = route.default if route is not None else next(iter(versions))
        if version not in versions:
            raise HTTPError(404, f"model {name!r} version {version!r} is not loaded")
        return versions[version]

    def _metadata(e: ModelVersion) -> dict[str, Any]:
        meta = e.scorer.metadata() if e.scorer else {"inputs": [], "outputs": []}
        return {
            "name": e.name,
            "versions": sorted(service.repo.models.get(e.name, {})),
            "platform": "frontdesk",
            "version": e.version,
            "state": e.state,
            **({"error": e.error} if e.error else {}),
            **meta,
        }

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Any:
        return _metadata(_entry(name, None))

    @app.get("/v2/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str) -> Any:
        return _metadata(_entry(name, version))

    def _ready(e: ModelVersion) -> Any:
        ok = e.state == "ready"
        return JSONResponse(
            {"name": e.name, "version": e.version, "ready": ok}, status_code=200 if ok else 503
        )

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Any:
        return _ready(_entry(name, None))

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str) -> Any:
        return _ready(_entry(name, version))

    # -- inference ----------------------------------------------------------------------------------

    async def _infer(request: Request, name: str, version: str | None) -> Any:
        try:
            req = parse_request(await body_json(request))
        except ProtocolError as exc:
            raise HTTPError(400, str(exc)) from None
        res = await service.infer(name, version, req)
        return res.to_json()

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Any:
        return await _infer(request, name, None)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def infer_version(name: str, version: str, request: Request) -> Any:
        return await _infer(request, name, version)

    def _conversation(body: Any, extra: tuple[str, ...] = ()) -> tuple[Any, dict[str, Any]]:
        from pydantic import ValidationError

        from ..loaders import check_conversation
        from ..schema import Conversation

        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a Conversation JSON object")
        body = dict(body)
        pulled = {k: body.pop(k) for k in extra if k in body}
        for key, home in MISPLACED_FIELDS.items():  # else kept as metadata, and never used
            if key in body:
                raise HTTPError(400, f"{key}: belongs in {home} of the Conversation JSON")
        try:
            conv = Conversation.model_validate(body)
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(x) for x in e["loc"])
            raise HTTPError(400, f"{where}: {e['msg']}") from None
        try:  # text and turns within the limits, before any work (as the Python API checks)
            check_conversation(conv, "body", limits=service.limits)
        except DataError as exc:
            raise HTTPError(422, str(exc)) from None
        return conv, pulled

    @app.post("/v1/suggest")
    async def v1_suggest(request: Request, model: str = "suggest", k: int | None = None) -> Any:
        conv, extra = _conversation(await body_json(request), ("k",))
        if "k" in extra:  # k in the body, as a client of a JSON API expects, or as ?k=
            body_k = extra["k"]
            if isinstance(body_k, bool) or not isinstance(body_k, int):
                raise HTTPError(400, "k: must be an integer (in the body, or as ?k=)")
            if k is not None and k != body_k:
                raise HTTPError(400, f"k: {body_k} in the body but {k} in the query; send one")
            k = body_k
        k = 5 if k is None else k
        req = InferenceRequest(
            inputs=[Tensor("text", [1], "BYTES", [conv.text])],
            parameters={
                "contexts": [conv.context.model_dump(mode="json")],
                "k": k,
                **({"contact_ids": [conv.id]} if conv.id is not None else {}),
            },  # fmt: skip
        )
        res = await service.infer(model, None, req, route="v1")
        out = {t.name: t.data for t in res.outputs}
        if "workflow_id" not in out or "score" not in out:
            raise HTTPError(400, f"model {model!r} does not suggest workflows (use ?model=)")
        suggestions = [
            {"workflow_id": w, "title": t, "score": s, "rank": i + 1}
            for i, (w, t, s) in enumerate(
                zip(
                    out["workflow_id"],
                    out.get("title", [""] * len(out["workflow_id"])),
                    out["score"],
                    strict=True,
                )
            )
            if w
        ]
        return {
            "model_name": res.model_name,
            "model_version": res.model_version,
            "id": conv.id,
            **_decision_id(res),
            "suggestions": suggestions,
            "abstained": out["abstained"][0],
            "confidence": out["confidence"][0] if "confidence" in out else None,
            "query_from": out["query_from"][0] if "query_from" in out else None,
        }

    @app.post("/v1/route")
    async def v1_route(request: Request, model: str = "route") -> Any:
        conv, extra = _conversation(await body_json(request), ("agents", "wait_min"))
        wait = extra.get("wait_min", 0.0)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < 1e9:
            raise HTTPError(400, "wait_min must be a number of minutes >= 0")
        params: dict[str, Any] = {
            "contexts": [conv.context.model_dump(mode="json")],
            "waits": [float(wait)],
        }
        if "agents" in extra:
            params["agents"] = extra["agents"]
        if conv.id is not None:
            params["contact_ids"] = [conv.id]
        req = InferenceRequest(
            inputs=[Tensor("text", [1], "BYTES", [conv.text])], parameters=params
        )
        res = await service.infer(model, None, req, route="v1")
        out = {t.name: t.data[0] for t in res.outputs}
        if "agent_id" not in out or "channel" not in out:
            raise HTTPError(400, f"model {model!r} does not route contacts (use ?model=)")
        waiting = bool(res.parameters.get("waiting", [False])[0])
        return {
            "model_name": res.model_name,
            "model_version": res.model_version,
            "id": conv.id,
            **_decision_id(res),
            "waiting": waiting,
            **({} if waiting else out),
        }

    @app.post("/v1/outcomes")
    async def v1_outcomes(request: Request) -> Any:
        """Outcomes of logged decisions: validated as a batch, on disk before the answer."""
        from ..decisions.records import OutcomeError

        logger = service.decision_log
        if logger is None:
            raise HTTPError(
                409, "this server keeps no decision log; start it with --decision-log DIR"
            )
        body = await body_json(request)
        try:
            ticket = logger.accept_outcomes(body)
        except (OutcomeError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from None
        if ticket is None:
            raise HTTPError(503, "the outcome log is full; retry shortly")
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, logger.outcomes.wait, ticket, 30.0):
            raise HTTPError(
                503,
                "outcomes not written (see the server log) or not within 30 s; retry (a "
                "repeated outcome changes nothing)",
            )
        return {"accepted": len(body["outcomes"])}

    # -- repository admin ------------------------------------------------------------------------

    @app.get("/v2/repository/index")
    async def repository_index() -> Any:
        return [
            {
                "name": e.name,
                "version": e.version,
                "state": e.state,
                **({"reason": e.error} if e.error else {}),
            }
            for e in service.repo.all_versions()
        ]

    @app.post("/v2/repository/models/{name}/load")
    async def admin_load(name: str, request: Request) -> Any:
        service.check_admin(request.headers.get("authorization"))
        check_name(name)
        if name not in service.repo.names():
            raise HTTPError(404, f"no model folder {name!r} in the repository")
        loop = asyncio.get_running_loop()
        async with service.admin_lock:
            try:
                entries, old = await loop.run_in_executor(None, service.repo.reload, name)
            except FrontdeskError as exc:
                raise HTTPError(400, str(exc)) from None
            service._after_load(entries)
            kept = {e.version for e in entries}
            for e in old:  # replaced versions answer what they queued, then stop
                if e.batcher is not None:
                    e.batcher.drain()
                if e.version not in kept:
                    service.metrics.ready.labels(e.name, e.version).set(0)
            service._refreeze()
        states = {e.version: e.state for e in entries}
        failed = {e.version: e.error for e in entries if e.state != "ready"}
        body = {"name": name, "versions": states, **({"errors": failed} if failed else {})}
        return JSONResponse(body, status_code=200 if not failed else 500)

    @app.post("/v2/repository/models/{name}/unload")
    async def admin_unload(name: str, request: Request) -> Any:
        service.check_admin(request.headers.get("authorization"))
        check_name(name)
        async with service.admin_lock:
            gone = service.repo.unload(name)
            if gone is None:
                raise HTTPError(404, f"model {name!r} is not loaded")
            for e in gone:
                if e.batcher is not None:
                    e.batcher.close()
                service.metrics.ready.labels(e.name, e.version).set(0)
            service._refreeze()
        return {"name": name, "unloaded": True}

    @app.get("/metrics")
    async def metrics() -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _decision_id(res: InferenceResponse) -> dict[str, Any]:
    ids = res.parameters.get("decision_ids")
    return {"decision_id": ids[0]} if ids else {}


def app_from_env() -> Any:
    """Factory for ``uvicorn --factory`` / several workers: MODELS_DIR from FRONTDESK_MODELS_DIR
    (and a decision log from ``FRONTDESK_DECISION_LOG_*``)."""

    def announce(line: str) -> None:
        print(f"frontdesk serve: {line}", file=sys.stderr, flush=True)

    seed = os.environ.get("FRONTDESK_SERVE_SEED")
    return create_app(
        os.environ["FRONTDESK_MODELS_DIR"], announce=announce,
        decision_log=DecisionLogSettings.from_env(), seed=int(seed) if seed else None,
    )  # fmt: skip
