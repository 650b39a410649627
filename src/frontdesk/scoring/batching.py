"""Adaptive micro-batching: requests that arrive while a batch runs form the next batch.

A batch starts with the first waiting request and takes whatever else
arrives within ``max_batch_time_ms`` (and whatever is already queued), up to
``max_batch_size``; it then runs ``predict_batch`` in a worker thread. Under
light load a request waits at most ``max_batch_time_ms``; under heavy load
batches fill up while the previous one runs, so one encoder pass serves
many requests. If a batch fails, its requests are retried one by one so a
bad request fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .base import Scorer
from .protocol import InferenceRequest, InferenceResponse


class MicroBatcher:
    def __init__(
        self,
        scorer: Scorer,
        max_batch_size: int,
        max_batch_time_ms: float,
        executor: Executor,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.scorer = scorer
        self.max_batch_size = max_batch_size
        self.max_wait = max_batch_time_ms / 1000.0
        self.executor = executor
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[InferenceRequest, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, request: InferenceRequest) -> InferenceResponse:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run())
        fut: asyncio.Future[Any] = loop.create_future()
        await self._queue.put((request, fut))
        return await fut

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        q = self._queue
        while True:
            batch = [await q.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch_size:
                try:
                    batch.append(q.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(q.get(), timeout))
                except TimeoutError:
                    break
            if self.on_batch is not None:
                self.on_batch(len(batch))
            requests = [r for r, _ in batch]
            try:
                results = await loop.run_in_executor(
                    self.executor, self.scorer.predict_batch, requests
                )
                for (_, fut), res in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
            except Exception:  # noqa: BLE001 - isolate the failing request(s)
                for req, fut in batch:
                    try:
                        res = await loop.run_in_executor(self.executor, self.scorer.predict, req)
                        if not fut.done():
                            fut.set_result(res)
                    except Exception as exc:  # noqa: BLE001
                        if not fut.done():
                            fut.set_exception(exc)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(Exception):
                self._task = None
