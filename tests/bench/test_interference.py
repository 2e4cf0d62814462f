"""Interference: other processes' CPU use is measured, unsteady loops are re-timed, busy figures flagged."""

import time

import torch
from torch import nn

from trimnet.bench import BenchConfig, benchmark
from trimnet.bench.harness import BackendSpec, measure_runner
from trimnet.bench.interference import CpuSample, Watch, auto_threads, free_cores, others_cores, usable_cores


def test_a_cpu_burner_is_seen_and_leaves_one_thread(cpu_burner):
    assert free_cores() < usable_cores() - 0.5 * cpu_burner  # the burners' cores are not free
    assert auto_threads() == 1  # not a fixed 2: a loaded machine gets one thread
    with Watch() as watch:
        time.sleep(0.3)
    assert watch.others >= 0.5 * cpu_burner and watch.busy(threads=1)
    assert watch.to_dict(threads=1)["busy"] is True


def test_own_work_is_not_counted_as_interference():
    a = CpuSample.now()
    end = time.perf_counter() + 10
    # this process burning CPU is not "other work": burn 0.3 s of it, however busy the machine is
    while CpuSample.now().own_s - a.own_s < 0.3 and time.perf_counter() < end:
        sum(range(10_000))
    b = CpuSample.now()
    own_cores = (b.own_s - a.own_s) / (b.wall - a.wall)
    total = (b.busy_s - a.busy_s) / (b.wall - a.wall)
    assert own_cores > 0.02
    assert others_cores(a, b) <= total - 0.8 * own_cores


class JitterRunner:
    """Calls that take 0.2 ms, or 3 ms every third call: a loop whose repeats never agree.

    Every third, not a random 30 %: with the ``random`` module seeded by earlier tests, a random
    draw could give a loop with too few slow calls to be unsteady (the suite failed that way).
    """

    precision, parity = "f32", None

    def __init__(self):
        self.calls = 0

    def prepare(self, x):
        return x

    def call(self, x):
        self.calls += 1
        time.sleep(0.003 if self.calls % 3 == 0 else 0.0002)

    def describe(self):
        return {"device": "cpu", "threads": 1}


def test_an_unsteady_loop_is_timed_again_and_flagged():
    cfg = BenchConfig(threads=1, warmup_window=3, warmup_max_s=0.05, min_iters=20, min_time_s=0.05,
                      max_time_s=0.2, retimes=2)
    m = measure_runner(JitterRunner(), torch.zeros(1, 4).numpy(), cfg, BackendSpec.parse("torch"))
    info = m.interference
    assert info["retimed"] == 2 and not info["steady"] and info["flagged"] and info["spread"] > 0.5
    assert m.flagged


def test_benchmark_on_a_loaded_machine_flags_its_figures(cpu_burner, quick):
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).eval()
    res = benchmark(model, torch.randn(1, 32), backends=["torch"], config=quick)
    m = res.results[0]
    assert m.interference["busy"] and m.interference["others_cores"] >= 0.5 * cpu_burner
    assert "busy" in res.table() and "other work competed" in res.table()
    assert res.to_dict()["results"][0]["interference"]["flagged"] is True
