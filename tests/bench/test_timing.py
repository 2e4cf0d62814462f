"""The timing loops: warm-up stops when stable (and says when it never was), the measured loop keeps
its bounds, and statistics keep outliers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trimnet.bench import BenchConfig
from trimnet.bench import timing
from trimnet.bench.timing import Stats, measure, measure_pairs, warm_up
from trimnet.errors import ConfigError


@pytest.fixture
def scripted(monkeypatch):
    """A clock that only moves when the measured function runs: its n-th call takes
    durations[n] seconds (the last repeats). Deterministic on any machine, however busy."""

    def make(durations):
        now = [0]
        calls = iter(durations)
        last = [durations[-1]]
        monkeypatch.setattr(timing, "time", SimpleNamespace(perf_counter_ns=lambda: now[0]))

        def fn():
            last[0] = next(calls, last[0])
            now[0] += int(last[0] * 1e9)

        return fn

    return make


def test_warm_up_stops_once_two_windows_agree(scripted):
    # a cold start that speeds up over eight calls, then steady: the median of the earlier
    # window settles only once three of its five calls are steady ones, at call 16
    fn = scripted([0.008, 0.006, 0.004, 0.003, 0.002, 0.0015, 0.001, 0.0007, 0.0005])
    w = warm_up(fn, BenchConfig(warmup_window=5, warmup_tolerance=0.2, warmup_max_s=5))
    assert w.stable and w.runs == 16 and w.change == 0.0


def test_warm_up_is_bounded_and_says_it_did_not_settle(scripted):
    fn = scripted([0.0005 * 1.1 ** n for n in range(200)])  # 10 % slower every call: never stable
    w = warm_up(fn, BenchConfig(warmup_window=5, warmup_tolerance=0.05, warmup_max_s=0.1))
    assert not w.stable and 0.1 <= w.seconds < 0.2


def test_slow_models_get_smaller_windows(scripted):
    w = warm_up(scripted([1.0]), BenchConfig(warmup_window=5, warmup_max_s=8))
    assert w.stable and w.window == 2 and w.runs == 4  # two windows of two fit in half the budget


def test_measure_honours_min_iters_min_time_and_max_iters(scripted):
    assert len(measure(scripted([0.0]), BenchConfig(min_iters=20, min_time_s=0.0, max_iters=20))) == 20
    assert len(measure(scripted([0.001]), BenchConfig(min_iters=1, min_time_s=0.05, max_time_s=1))) == 50
    capped = measure(scripted([0.01]), BenchConfig(min_iters=1000, min_time_s=0.0, max_time_s=0.05, max_iters=1000))
    assert len(capped) == 5  # max_time_s ends it before min_iters


def test_statistics_keep_outliers():
    times = [1_000_000] * 99 + [100_000_000]  # 99 calls of 1 ms and one of 100 ms
    s = Stats.of(times)
    assert s.p50 == pytest.approx(1.0) and s.min == pytest.approx(1.0)
    assert s.max == pytest.approx(100.0) and s.p99 > 1.5 and s.mean == pytest.approx(1.99)
    assert s.iterations == 100


def test_pairs_are_interleaved_and_take_turns_going_first(scripted):
    order = []
    a, b = measure_pairs(lambda: order.append("a"), lambda: order.append("b"),
                         BenchConfig(min_iters=5, max_iters=5, min_time_s=0))
    assert len(a) == len(b) == 5 and order == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]
    tick = scripted([0.002])
    slow_a, fast_b = measure_pairs(tick, lambda: None, BenchConfig(min_iters=4, max_iters=4, min_time_s=0))
    assert slow_a == [2_000_000] * 4 and fast_b == [0] * 4  # each time lands on its own side


def test_loop_overhead_is_small():
    # what the loop adds around each call: a few hundred nanoseconds on any machine
    s = Stats.of(measure(lambda: None, BenchConfig(min_iters=2000, max_iters=2000, min_time_s=0)))
    assert s.p50 < 0.005  # ms


@pytest.mark.parametrize("bad", [dict(warmup_window=1), dict(min_iters=0), dict(min_time_s=5, max_time_s=1),
                                 dict(threads=0), dict(version=2)])
def test_bad_configs_are_user_errors(bad):
    with pytest.raises(ConfigError):
        BenchConfig(**bad).validate()
