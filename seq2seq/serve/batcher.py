"""Server-side batching: requests that arrive close together are decoded as one model call.

Requests wait in a queue. The batching task takes the first waiting request, then keeps taking
requests for at most `max_wait` seconds or until `max_batch` sentences are gathered. Requests
with the same decoding settings are then joined into one call of the translate function, which
runs in one worker thread, so the event loop keeps accepting requests (and the next batch fills)
while the model works. Sampled requests are never joined: a seeded sample must not depend on
what else happened to arrive, so each one is decoded exactly as translate.py would decode it.

If a joined call fails, each request in it is retried alone, so one bad request can only fail
itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import itertools
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

# translate(texts, decoding, record_attention) -> one result per text
TranslateFn = Callable[[list[str], Any, bool], list[Any]]


class QueueFull(Exception):
    """More sentences are waiting than the server accepts; the client should retry later."""


@dataclass
class Job:
    texts: list[str]
    decoding: Any  # a DecodingConfig, or anything translate accepts
    attention: bool
    key: Hashable
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    calls: int = 0  # model calls made
    requests: int = 0  # requests answered
    sentences: int = 0
    largest_call: int = 0  # most sentences in one model call


_unique = itertools.count()


def settings_key(decoding: Any, attention: bool) -> Hashable:
    """Requests with equal keys may share a model call; sampling gets a key of its own every time."""
    if getattr(decoding, "method", None) == "sample":
        return ("alone", next(_unique))
    return (dataclasses.astuple(decoding) if dataclasses.is_dataclass(decoding) else decoding, attention)


class Batcher:
    def __init__(self, translate: TranslateFn, max_batch: int, max_wait: float, max_queue: int):
        self.translate = translate
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_queue = max_queue  # sentences waiting, beyond which submit() refuses
        self.stats = BatchStats()
        self.waiting_sentences = 0
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task | None = None
        # One thread: the model runs one call at a time, and torch uses its own threads inside it
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="seq2seq-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="seq2seq-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, texts: list[str], decoding: Any, attention: bool) -> list[Any]:
        """The translate function's results for texts, decoded together with other waiting requests."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called")
        if self.waiting_sentences + len(texts) > self.max_queue:
            raise QueueFull(f"{self.waiting_sentences} sentences are waiting (limit {self.max_queue})")
        future = asyncio.get_running_loop().create_future()
        self.waiting_sentences += len(texts)
        self._queue.put_nowait(Job(texts, decoding, attention, settings_key(decoding, attention), future))
        return await future

    async def _run(self) -> None:
        while True:
            jobs = await self._gather()
            self.waiting_sentences -= sum(len(job.texts) for job in jobs)
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                try:
                    await self._decode(group)
                except Exception as error:  # noqa: BLE001 - the loop outlives any batch, or later requests hang
                    for job in group:
                        _settle(job.future, error=error)

    async def _gather(self) -> list[Job]:
        """The first waiting job, then whatever else arrives within max_wait, up to max_batch sentences."""
        assert self._queue is not None
        jobs = [await self._queue.get()]
        count = len(jobs[0].texts)
        deadline = time.perf_counter() + self.max_wait
        while count < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            jobs.append(job)
            count += len(job.texts)
        return jobs

    async def _decode(self, group: list[Job]) -> None:
        live = [job for job in group if not job.future.done()]  # a client that gave up cancelled its future
        if not live:
            return
        texts = [text for job in live for text in job.texts]
        first = live[0]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self.translate, texts, first.decoding,
                                                 first.attention)
        except Exception as error:  # noqa: BLE001 - decided per request below
            if len(live) == 1:
                _settle(live[0].future, error=error)
                return
            for job in live:  # retry alone: only the request that fails gets the error
                await self._decode([job])
            return
        self.stats.calls += 1
        self.stats.requests += len(live)
        self.stats.sentences += len(texts)
        self.stats.largest_call = max(self.stats.largest_call, len(texts))
        start = 0
        for job in live:
            _settle(job.future, result=results[start:start + len(job.texts)])
            start += len(job.texts)


def _settle(future: asyncio.Future, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
