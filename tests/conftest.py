import os

import pytest
import torch

# Two threads everywhere: the suite's machines have two cores, and thread counts change
# floating-point summation order (and so bit-exactness tests).
torch.set_num_threads(2)
os.environ.setdefault("CI", "1")  # no progress bars in test output


@pytest.fixture(scope="session")
def digits():
    import trimnet as tn

    return tn.load_dataset("digits")


@pytest.fixture(scope="session")
def small_digits(digits):
    """A fifth of digits: enough to train on in a second."""
    from dataclasses import replace

    return replace(digits, x_train=digits.x_train[:300], y_train=digits.y_train[:300],
                   x_val=digits.x_val[:60], y_val=digits.y_val[:60])


@pytest.fixture
def cpu_burner():
    """Busy loops in other processes, one per usable core: a deliberately loaded machine."""
    import subprocess
    import sys
    import time

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    time.sleep(0.3)  # let them start spinning
    try:
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@pytest.fixture
def cli(capfd):
    """Run the trimnet command in this process: (exit code, stdout, stderr)."""
    from trimnet.cli.main import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capfd.readouterr()
        return code, out, err

    return run
