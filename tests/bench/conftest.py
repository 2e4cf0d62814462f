import pytest

from trimnet.bench import BenchConfig


@pytest.fixture
def quick():
    """Measurement settings for tests: a few milliseconds per case."""
    return BenchConfig(threads=1, warmup_window=3, warmup_max_s=0.1, min_iters=5, min_time_s=0.02, max_time_s=0.3)
