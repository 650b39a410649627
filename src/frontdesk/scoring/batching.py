"""Adaptive micro-batching: requests that arrive while a batch runs form the next batch.

A batch starts with the first waiting request and takes whatever else
arrives within ``max_batch_time_ms`` (and whatever is already queued), up to
``max_batch_size``; it then runs ``predict_batch`` in a worker thread. Under
light load a request waits at most ``max_batch_time_ms``; under heavy load
batches fill up while the previous one runs, so one encoder pass serves
many requests. A batch also stops growing at ``max_batch_cost`` units of work
(texts and turns to encode), so many mid-sized requests never make one long
batch that every request in it waits for; a request its client gave up on
(cancelled) is dropped before it runs. If a batch fails, its requests are
retried one by one so a bad request fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .base import Scorer
from .protocol import InferenceRequest, InferenceResponse


class BatcherClosed(RuntimeError):
    """The model version was unloaded or replaced while the request waited (answered 503)."""


class MicroBatcher:
    """Queues requests for one model version and answers them in batches (see module doc)."""

    def __init__(
        self,
        scorer: Scorer,
        max_batch_size: int,
        max_batch_time_ms: float,
        executor: Executor,
        on_batch: Callable[[int], None] | None = None,
        max_batch_cost: int | None = None,
    ) -> None:
        self.scorer = scorer
        self.max_batch_size = max_batch_size
        self.max_batch_cost = max_batch_cost
        self.max_wait = max_batch_time_ms / 1000.0
        self.executor = executor
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[InferenceRequest, asyncio.Future[Any]] | None] | None = (
            None
        )
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._draining = False
        self._in_flight: list[tuple[InferenceRequest, asyncio.Future[Any]]] = []
        # a request that would have passed max_batch_cost: the next batch starts with it
        self._carry: tuple[InferenceRequest, asyncio.Future[Any]] | None = None

    async def submit(self, request: InferenceRequest) -> InferenceResponse:
        if self._closed:
            raise BatcherClosed(
                f"model {self.scorer.name!r} version {self.scorer.version} was unloaded"
            )
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put_nowait((request, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        q = self._queue
        while not (self._closed and (not self._draining or q.empty())):
            item, self._carry = self._carry or await q.get(), None
            if item is None:  # the drain sentinel: everything queued before it is answered
                return
            if item[1].done():  # cancelled while queued: nobody waits for its answer
                continue
            batch = [item]
            cost = self._cost(item[0])
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                try:
                    nxt = q.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - loop.time()
                    if timeout <= 0:
                        break
                    try:
                        nxt = await asyncio.wait_for(q.get(), timeout)
                    except TimeoutError:
                        break
                if nxt is None:
                    q.put_nowait(None)  # answer this batch, then stop
                    break
                if nxt[1].done():
                    continue
                more = self._cost(nxt[0])
                if self.max_batch_cost is not None and cost + more > self.max_batch_cost:
                    self._carry = nxt  # it starts the next batch
                    break
                batch.append(nxt)
                cost += more
            if self.on_batch is not None:
                self.on_batch(len(batch))
            self._in_flight = batch
            try:
                await self._answer(loop, batch)
            finally:
                self._in_flight = []

    def _cost(self, request: InferenceRequest) -> int:
        return self.scorer.cost(request) if self.max_batch_cost is not None else 1

    async def _answer(
        self,
        loop: asyncio.AbstractEventLoop,
        batch: list[tuple[InferenceRequest, asyncio.Future[Any]]],
    ) -> None:
        requests = [r for r, _ in batch]
        try:
            results = await loop.run_in_executor(self.executor, self.scorer.predict_batch, requests)
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - isolate the failing request(s)
            for req, fut in batch:
                try:
                    res = await loop.run_in_executor(self.executor, self.scorer.predict, req)
                    if not fut.done():
                        fut.set_result(res)
                except Exception as exc:  # noqa: BLE001
                    if not fut.done():
                        fut.set_exception(exc)

    def _fail_pending(self) -> None:
        """Fail the running batch and everything queued (synchronously: nothing is left hanging)."""
        err = BatcherClosed(
            f"model {self.scorer.name!r} version {self.scorer.version} was unloaded"
        )
        pending = list(self._in_flight) + ([self._carry] if self._carry is not None else [])
        self._carry = None
        if self._queue is not None:
            while True:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is not None:
                    pending.append(item)
        for _, fut in pending:
            if not fut.done():
                fut.set_exception(err)

    def close(self) -> None:
        """Unload: stop now; every queued or running request fails with BatcherClosed."""
        self._closed = True
        self._draining = False
        self._fail_pending()
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def drain(self) -> None:
        """Replace: take no new requests, answer the queued ones, then stop."""
        self._closed = True
        self._draining = True
        if self._queue is not None:
            self._queue.put_nowait(None)
        elif self._task is None:
            return
