"""Training under torchrun: two gloo processes on CPU against one process, and recovery from a
killed worker. These start real process groups, so they are marked slow."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trimnet.artifact import load_artifact

CONFIG = """
data: {source: digits}
model: {name: mlp, options: {hidden: [64]}}
train: {epochs: %(epochs)d, batch_size: 64, lr: 0.003, checkpoint_every: 5}
"""


def torchrun(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def env():
    return {**os.environ, "CI": "1", "OMP_NUM_THREADS": "1"}


def write_config(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(CONFIG % {"epochs": epochs})
    return path


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
    cfg = write_config(tmp_path, epochs=3)
    subprocess.run([sys.executable, "-m", "trimnet", "train", "-c", str(cfg), "--out", str(tmp_path / "one")],
                   env=env(), check=True, capture_output=True)
    done = subprocess.run(torchrun("-m", "trimnet", "train", "-c", str(cfg), "--out", str(tmp_path / "two")),
                          env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    one, two = load_artifact(tmp_path / "one"), load_artifact(tmp_path / "two")
    assert two.metrics["world_size"] == 2 and one.metrics["world_size"] == 1
    for key, a in one.model.state_dict().items():
        assert torch.allclose(a, two.model.state_dict()[key], atol=1e-5), key
    assert abs(one.metrics["test_accuracy"] - two.metrics["test_accuracy"]) < 0.01
    # rank 0 alone wrote the run: one metrics row per epoch, no duplicates
    assert len((tmp_path / "two" / "metrics.jsonl").read_text().splitlines()) == 3


def _workers(root: int) -> list[int]:
    """Descendant processes of ``root`` that run trimnet train."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid:
                frontier.append(child)
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    continue
                if b"trimnet" in cmd and b"train" in cmd and b"torch.distributed.run" not in cmd:
                    found.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_killed_worker_restarts_from_checkpoint(tmp_path):
    cfg = write_config(tmp_path, epochs=12)
    out = tmp_path / "run"
    agent = subprocess.Popen(torchrun("--max-restarts=1", "-m", "trimnet", "train", "-c", str(cfg),
                                      "--out", str(out), "--train.batch_size", "16"),
                             env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ckpt = out / "checkpoints" / "last.pt"
    killed = None
    deadline = time.time() + 120
    while time.time() < deadline and agent.poll() is None and killed is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=True)["loop"]["epoch"] >= 2:
            workers = _workers(agent.pid)
            if workers:
                killed = workers[-1]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    log, _ = agent.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed; make it longer\n" + log[-2000:]
    assert agent.returncode == 0, log[-3000:]
    art = load_artifact(out)
    assert art.metrics["epochs_run"] == 12
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 12
