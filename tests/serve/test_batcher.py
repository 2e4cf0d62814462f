import asyncio
import threading
import time

import numpy as np
import pytest

from trimnet.serve.batcher import Batcher, BatcherClosed, QueueFull


class Recorder:
    """A model that doubles its input and records every batch it is given (and the thread it ran in)."""

    def __init__(self, sleep: float = 0.0, fail_on: float | None = None):
        self.sizes: list[int] = []
        self.threads: set[str] = set()
        self.sleep = sleep
        self.fail_on = fail_on

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.sizes.append(len(x))
        self.threads.add(threading.current_thread().name)
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise RuntimeError("model failure")
        return x * 2


def rows(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.float32)[:, None]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_concurrent_requests_run_together_up_to_max_batch():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch=4, max_delay_s=0.05, max_queue=100)
        outs = await asyncio.gather(*(b.submit(rows(i, 1)) for i in range(10)))
        await b.close()
        return b, outs

    b, outs = run(main())
    assert model.sizes == [4, 4, 2]
    assert [float(o[0, 0]) for o in outs] == [2.0 * i for i in range(10)]
    assert b.stats.batches == 3 and b.stats.mean_batch == pytest.approx(10 / 3) and b.stats.largest == 4
    assert all(name.startswith("trimnet-serve-") for name in model.threads)  # never on the event loop


def test_a_request_larger_than_max_batch_is_split_and_reassembled():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch=4, max_delay_s=0.0, max_queue=100)
        big, small = await asyncio.gather(b.submit(rows(0, 10)), b.submit(rows(100, 3)))
        await b.close()
        return big, small

    big, small = run(main())
    assert model.sizes == [4, 4, 4, 1]  # 10 + 3 samples packed into full batches
    np.testing.assert_array_equal(big, rows(0, 10) * 2)
    np.testing.assert_array_equal(small, rows(100, 3) * 2)


def test_a_lone_request_waits_max_delay_for_company_and_no_longer():
    async def lone(delay):
        b = Batcher(Recorder(), max_batch=8, max_delay_s=delay, max_queue=100)
        await b.submit(rows(0, 1))  # start the worker and the thread
        t0 = time.perf_counter()
        await b.submit(rows(0, 1))
        waited = time.perf_counter() - t0
        await b.close()
        return waited

    assert run(lone(0.15)) >= 0.14
    assert run(lone(0.0)) < 0.1


def test_a_full_batch_does_not_wait_for_the_delay():
    model = Recorder()

    async def main():
        b = Batcher(model, max_batch=4, max_delay_s=10.0, max_queue=100)
        t0 = time.perf_counter()
        await asyncio.gather(*(b.submit(rows(i, 1)) for i in range(4)))
        waited = time.perf_counter() - t0
        await b.close()
        return waited

    assert run(main()) < 5 and model.sizes == [4]


def test_the_queue_is_bounded_and_recovers():
    model = Recorder(sleep=0.05)

    async def main():
        b = Batcher(model, max_batch=2, max_delay_s=0.0, max_queue=4)
        results = await asyncio.gather(*(b.submit(rows(i, 1)) for i in range(12)), return_exceptions=True)
        full = [r for r in results if isinstance(r, QueueFull)]
        assert b.queued == 0
        after = await b.submit(rows(7, 2))  # room again once the queue has drained
        await b.close()
        return results, full, after

    results, full, after = run(main())
    assert len(full) == 8 and "max_queue 4" in str(full[0])
    assert sum(isinstance(r, np.ndarray) for r in results) == 4
    np.testing.assert_array_equal(after, rows(7, 2) * 2)


def test_a_failing_batch_fails_its_requests_only_and_the_worker_lives_on():
    model = Recorder(fail_on=-1.0)

    async def main():
        b = Batcher(model, max_batch=8, max_delay_s=0.0, max_queue=100)
        with pytest.raises(RuntimeError, match="model failure"):
            await b.submit(np.full((1, 1), -1.0, dtype=np.float32))
        out = await b.submit(rows(3, 1))
        await b.close()
        return out

    assert float(run(main())[0, 0]) == 6.0


def test_close_drains_the_queue_then_refuses_work():
    model = Recorder(sleep=0.02)

    async def main():
        b = Batcher(model, max_batch=2, max_delay_s=1.0, max_queue=100)
        pending = [asyncio.ensure_future(b.submit(rows(i, 1))) for i in range(5)]
        await asyncio.sleep(0.01)
        await b.close(timeout=10)
        done = [p.result() for p in pending]
        with pytest.raises(BatcherClosed):
            await b.submit(rows(0, 1))
        return done

    done = run(main())
    assert [float(d[0, 0]) for d in done] == [0.0, 2.0, 4.0, 6.0, 8.0]


def test_requests_whose_client_left_are_not_computed():
    model = Recorder(sleep=0.05)

    async def main():
        b = Batcher(model, max_batch=1, max_delay_s=0.0, max_queue=100)
        first = asyncio.ensure_future(b.submit(rows(0, 1)))
        await asyncio.sleep(0.01)  # the first batch is running; the rest wait
        gone = asyncio.ensure_future(b.submit(rows(1, 1)))
        kept = asyncio.ensure_future(b.submit(rows(2, 1)))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.gather(first, kept)
        await b.close()

    run(main())
    assert model.sizes == [1, 1]
