"""Dynamic micro-batching: concurrent requests decided together by one ``Decider.decide_async``.

Requests wait in a bounded queue. The batcher takes everything waiting (up to ``max_batch``
transactions), gives late-comers at most ``max_wait`` seconds to join when the queue was
empty, and starts the batch's decision on the event loop; up to ``in_flight`` batches are
under way at once, so the next batch is scored while the previous one's log write waits on the
database. Everything runs on the loop's one thread: a thread per batch cost more in handing
the interpreter lock back and forth than it saved (``docs/benchmarks.md``). Every request of
a batch gets the batch's outcome: its decision, or the error that stopped the batch (nothing
is answered that was not logged). A full queue refuses at once (``Overloaded``) rather than
letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fraud_assets.lib.deciding import Decision, Request


class Overloaded(RuntimeError):
    """The queue is full: the service is past what it can decide in time."""


@dataclass
class _Job:
    requests: Sequence[Request]
    future: asyncio.Future


class MicroBatcher:
    """See the module docstring. ``start`` and ``stop`` run on the event loop."""

    def __init__(
        self,
        decide: Callable[[Sequence[Request]], Awaitable[list[Decision]]],
        max_batch: int = 100,
        max_wait: float = 0.0,
        max_queue: int = 20_000,
        in_flight: int = 2,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.decide, self.max_batch, self.max_wait = decide, max_batch, max_wait
        self.max_queue, self.in_flight = max_queue, in_flight
        self.on_batch = on_batch or (lambda size: None)
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()
        self._waiting = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stop taking batches; let those under way finish."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def submit(self, requests: Sequence[Request]) -> list[Decision]:
        """The decisions on ``requests``, decided with whatever else is waiting."""
        if self._queue is None:
            raise RuntimeError("the batcher has not started")
        if self._waiting + len(requests) > self.max_queue:
            raise Overloaded(f"more than {self.max_queue} transactions are waiting")
        future = asyncio.get_running_loop().create_future()
        self._waiting += len(requests)
        self._queue.put_nowait(_Job(requests, future))
        return await future

    async def _run(self) -> None:
        slots = asyncio.Semaphore(self.in_flight)
        while True:
            await slots.acquire()
            jobs = await self._collect()
            task = asyncio.create_task(self._decide(jobs))
            self._batches.add(task)
            task.add_done_callback(lambda t: (self._batches.discard(t), slots.release()))

    async def _collect(self) -> list[_Job]:
        queue = self._queue
        assert queue is not None
        jobs = [await queue.get()]
        size = len(jobs[0].requests)
        if queue.empty() and self.max_wait > 0:
            await asyncio.sleep(self.max_wait)
        while not queue.empty() and size < self.max_batch:
            job = queue.get_nowait()
            jobs.append(job)
            size += len(job.requests)
        return jobs

    async def _decide(self, jobs: list[_Job]) -> None:
        requests = [r for job in jobs for r in job.requests]
        self._waiting -= len(requests)
        self.on_batch(len(requests))
        try:
            decisions = await self.decide(requests)
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in jobs:
            if not job.future.done():  # a request whose client went away needs no answer
                job.future.set_result(decisions[start : start + len(job.requests)])
            start += len(job.requests)
