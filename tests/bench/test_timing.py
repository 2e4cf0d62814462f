"""The timing loops: warm-up stops when stable (and says when it never was), the measured loop keeps
its bounds, and statistics keep outliers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from trimnet.bench import BenchConfig
from trimnet.bench.timing import Stats, measure, measure_pairs, warm_up
from trimnet.errors import ConfigError


def sleeper(durations):
    """A function whose n-th call takes durations[n] seconds (the last one repeats)."""
    calls = iter(durations)
    last = [durations[-1]]

    def fn():
        last[0] = next(calls, last[0])
        end = time.perf_counter() + last[0]
        while time.perf_counter() < end:
            pass

    return fn


def test_warm_up_stops_once_two_windows_agree():
    # a cold start that speeds up over eight calls, then steady: the median of the earlier
    # window settles only once three of its five calls are steady ones, at call 16
    fn = sleeper([0.008, 0.006, 0.004, 0.003, 0.002, 0.0015, 0.001, 0.0007, 0.0005])
    w = warm_up(fn, BenchConfig(warmup_window=5, warmup_tolerance=0.2, warmup_max_s=5))
    assert w.stable and 14 <= w.runs < 200
    assert w.change is not None and w.change < 0.2


def test_warm_up_is_bounded_and_says_it_did_not_settle():
    durations = list(0.0005 * 1.1 ** np.arange(200))  # 10 % slower every call: never stable
    w = warm_up(sleeper(durations), BenchConfig(warmup_window=5, warmup_tolerance=0.05, warmup_max_s=0.1))
    assert not w.stable and 0.1 <= w.seconds < 0.5


def test_measure_honours_min_iters_min_time_and_max_iters():
    quick = BenchConfig(min_iters=20, min_time_s=0.0, max_iters=20)
    assert len(measure(lambda: None, quick)) == 20
    timed = measure(sleeper([0.001]), BenchConfig(min_iters=1, min_time_s=0.05, max_time_s=1))
    assert sum(timed) / 1e9 >= 0.045 and len(timed) < 100
    capped = measure(sleeper([0.01]), BenchConfig(min_iters=1000, min_time_s=0.0, max_time_s=0.05, max_iters=1000))
    assert len(capped) < 20  # max_time_s ends it before min_iters


def test_statistics_keep_outliers():
    times = [1_000_000] * 99 + [100_000_000]  # 99 calls of 1 ms and one of 100 ms
    s = Stats.of(times)
    assert s.p50 == pytest.approx(1.0) and s.min == pytest.approx(1.0)
    assert s.max == pytest.approx(100.0) and s.p99 > 1.5 and s.mean == pytest.approx(1.99)
    assert s.iterations == 100


def test_pairs_are_interleaved():
    order = []
    a, b = measure_pairs(lambda: order.append("a"), lambda: order.append("b"),
                         BenchConfig(min_iters=5, max_iters=5, min_time_s=0))
    assert len(a) == len(b) == 5 and order == ["a", "b"] * 5


def test_loop_overhead_is_small():
    # what the loop adds around each call: a few hundred nanoseconds on any machine
    s = Stats.of(measure(lambda: None, BenchConfig(min_iters=2000, max_iters=2000, min_time_s=0)))
    assert s.p50 < 0.005  # ms


@pytest.mark.parametrize("bad", [dict(warmup_window=1), dict(min_iters=0), dict(min_time_s=5, max_time_s=1),
                                 dict(threads=0), dict(version=2)])
def test_bad_configs_are_user_errors(bad):
    with pytest.raises(ConfigError):
        BenchConfig(**bad).validate()
