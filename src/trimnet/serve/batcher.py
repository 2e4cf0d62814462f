"""Dynamic batching: requests queue and run together, up to ``max_batch`` samples or ``max_delay``.

One worker coroutine per model takes samples off the queue and runs them in one dedicated
thread, so the event loop keeps reading requests while the model computes. A batch starts
when ``max_batch`` samples are waiting or when the oldest has waited ``max_delay``,
whichever comes first; while the model is busy, arrivals pile up and go together next (one
batch may wait in the model's thread behind the running one, so the model never waits for
the event loop).
Requests larger than ``max_batch`` are cut across batches and put back together. The
queue is bounded in samples: past ``max_queue``, ``submit`` raises ``QueueFull``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

log = logging.getLogger(__name__)
# Batches handed to the model's thread at once: with two, the next batch is already waiting in the
# thread when one finishes, so the model does not sit idle until the event loop (busy reading
# hundreds of connections) gets round to collecting the answers and taking the next batch.
PIPELINE = 2


class QueueFull(Exception):
    """The queue holds ``max_queue`` samples already; come back later."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new work."""


class BatchObserver(Protocol):
    def batch(self, size: int, seconds: float, requests: int) -> None: ...
    def queued(self, seconds: float) -> None: ...


@dataclass(eq=False)
class _Job:
    x: np.ndarray
    future: asyncio.Future
    enqueued: float
    left: int
    out: np.ndarray | None = None


@dataclass
class _Slice:
    job: _Job
    start: int
    stop: int


@dataclass
class BatchStats:
    """Counts since the batcher was made (tests and benchmarks read them)."""

    batches: int = 0
    samples: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)

    @property
    def mean_batch(self) -> float:
        return self.samples / self.batches if self.batches else 0.0


class Batcher:
    """Runs ``fn`` (a numpy batch in, a numpy batch out, row for row) on dynamic batches."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 64, max_delay_s: float = 0.0,
                 max_queue: int = 1024, name: str = "model", observer: BatchObserver | None = None):
        self.fn = fn
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.name = name
        self.observer = observer
        self.stats = BatchStats()
        self._queue: collections.deque[_Slice] = collections.deque()
        self._queued = 0  # samples in the queue
        self._need = 1  # queued samples that wake the sleeping worker
        self._waiter: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._running = 0  # batches handed to the model's thread and not yet answered

    @property
    def queued(self) -> int:
        return self._queued

    @property
    def idle(self) -> bool:
        return not self._queue and not self._running

    def start(self) -> None:
        """Start the worker on the running event loop (``submit`` does this on first use)."""
        self._closing = False
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"trimnet-serve-{self.name}")
        self._task = loop.create_task(self._work(), name=f"batcher-{self.name}")

    async def submit(self, x: np.ndarray) -> np.ndarray:
        """Queue ``x`` (batch first) and wait for its outputs; raises ``QueueFull`` or ``BatcherClosed``."""
        if self._closing:
            raise BatcherClosed(f"{self.name} is shutting down")
        n = len(x)
        if n == 0:
            raise ValueError("submit needs at least one sample")
        if self._queued + n > self.max_queue:
            raise QueueFull(f"{self.name}: {self._queued} samples queued, {n} more would pass max_queue "
                            f"{self.max_queue}")
        self.start()
        loop = asyncio.get_running_loop()
        job = _Job(x=x, future=loop.create_future(), enqueued=loop.time(), left=n)
        self._queue.append(_Slice(job, 0, n))
        self._queued += n
        if self._queued >= self._need:
            self._wake()
        return await job.future

    async def close(self, timeout: float | None = None) -> None:
        """Take no new work, finish what is queued (for up to ``timeout`` s), then stop the worker."""
        self._closing = True
        self._wake()
        task = self._task
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except asyncio.TimeoutError:
                task.cancel()
        self._fail_queued(BatcherClosed(f"{self.name} shut down before this request ran"))
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _sleep(self, need: int, delay: float | None) -> None:
        """Sleep until ``need`` samples are queued, ``delay`` s pass, or close() is called."""
        loop = asyncio.get_running_loop()
        self._need = need
        self._waiter = loop.create_future()
        timer = loop.call_later(delay, self._wake) if delay is not None else None
        try:
            await self._waiter
        finally:
            self._waiter = None
            self._need = 1
            if timer is not None:
                timer.cancel()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        running: set[asyncio.Task] = set()
        try:
            while True:
                if not self._queue:
                    if self._closing:
                        break
                    await self._sleep(1, None)
                    continue
                if self._queued < self.max_batch and not self._closing:
                    wait = self._queue[0].job.enqueued + self.max_delay_s - loop.time()
                    if wait > 0:
                        await self._sleep(self.max_batch, wait)
                        continue
                if len(running) >= PIPELINE:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue  # more may have arrived meanwhile: take the next batch as it is now
                batch = self._take()
                if batch:
                    task = loop.create_task(self._run_logged(batch))
                    running.add(task)
                    task.add_done_callback(running.discard)
            if running:
                await asyncio.gather(*running, return_exceptions=True)
        except asyncio.CancelledError:
            for task in running:
                task.cancel()
            raise

    async def _run_logged(self, batch: list[_Slice]) -> None:
        self._running += 1
        try:
            await self._run(batch)
        except Exception:  # never let the worker die: the next batch may well succeed
            log.exception("batcher %s: a batch failed", self.name)
        finally:
            self._running -= 1

    def _take(self) -> list[_Slice]:
        """Up to ``max_batch`` samples from the head of the queue, cutting the last request if needed."""
        room = self.max_batch
        batch: list[_Slice] = []
        while self._queue and room > 0:
            head = self._queue[0]
            size = head.stop - head.start
            if head.job.future.done():  # its client went away; do not compute it
                self._queue.popleft()
                self._queued -= size
                continue
            if size <= room:
                batch.append(self._queue.popleft())
                taken = size
            else:
                batch.append(_Slice(head.job, head.start, head.start + room))
                head.start += room
                taken = room
            self._queued -= taken
            room -= taken
        return batch

    async def _run(self, batch: list[_Slice]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        parts = [s.job.x[s.start:s.stop] for s in batch]
        x = parts[0] if len(parts) == 1 else np.concatenate(parts)
        size = len(x)
        try:
            if self._executor is None:
                raise BatcherClosed(f"{self.name} is shut down")
            y, seconds = await loop.run_in_executor(self._executor, self._timed, x)
            if len(y) != size:
                raise RuntimeError(f"the model returned {len(y)} rows for a batch of {size}")
        except BaseException as exc:
            for s in batch:
                if not s.job.future.done():
                    s.job.future.set_exception(exc if isinstance(exc, Exception) else BatcherClosed(str(exc)))
            raise
        self._record(batch, size, seconds, started)
        offset = 0
        for s in batch:
            job, n = s.job, s.stop - s.start
            if not job.future.done():
                if n == len(job.x):
                    job.out = y[offset:offset + n]
                else:
                    if job.out is None:
                        job.out = np.empty((len(job.x), *y.shape[1:]), dtype=y.dtype)
                    job.out[s.start:s.stop] = y[offset:offset + n]
                job.left -= n
                if job.left == 0:
                    job.future.set_result(job.out)
            offset += n

    def _timed(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        """``fn(x)`` and the seconds it took, timed in the model's thread (not counting a wait behind another)."""
        t0 = time.perf_counter()
        y = self.fn(x)
        return y, time.perf_counter() - t0

    def _record(self, batch: list[_Slice], size: int, seconds: float, started: float) -> None:
        self.stats.batches += 1
        self.stats.samples += size
        self.stats.largest = max(self.stats.largest, size)
        self.stats.sizes[size] += 1
        if self.observer is not None:
            self.observer.batch(size, seconds, len(batch))
            for s in batch:
                self.observer.queued(started - s.job.enqueued)

    def _fail_queued(self, exc: Exception) -> None:
        while self._queue:
            s = self._queue.popleft()
            if not s.job.future.done():
                s.job.future.set_exception(exc)
        self._queued = 0
