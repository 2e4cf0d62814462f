import statistics
import time

from trimnet.bench.rounds import rounds


class SleepRunner:
    def __init__(self, seconds):
        self.seconds = seconds

    def prepare(self, x):
        return x

    def call(self, x):
        time.sleep(self.seconds)


def test_every_round_times_every_runner():
    slow, fast = SleepRunner(0.004), SleepRunner(0.001)
    timed = rounds([slow, fast], x=None, seconds=0.3, min_rounds=5)
    assert len(timed[0]) == len(timed[1]) >= 5  # every round times every runner
    assert statistics.median(timed[0]) > 2 * statistics.median(timed[1])
    assert min(timed[0]) >= 3.9  # a sleep never returns early: these are ms of real calls
