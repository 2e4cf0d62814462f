"""The README's commands, as written and in order, on a fresh clone.

Every line of every ``bash`` block runs in a ``git clone`` of this repository, one after the
other, each one expected to exit 0; the ``python`` block runs as a script after them.
``make`` lines are dry-run (``make -n``): they build a virtual environment from the network,
which the suite's own environment stands in for. ``trimnet serve`` starts in the background;
the ``curl`` lines after it talk to it, then it is stopped. Slow (several full runs); CI runs it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(block: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments and blanks dropped."""
    out, current = [], ""
    for line in block.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.strip().startswith("#"):
            out.append(current.strip())
        current = ""
    return out


def test_the_readme_blocks_parse():
    """Cheap guard: the walkthrough finds the commands the README shows, comments removed."""
    text = (ROOT / "README.md").read_text()
    cmds = [c for b in blocks(text, "bash") for c in commands(b)]
    assert "make run" in [shlex.split(c, comments=True)[0] + " " + shlex.split(c, comments=True)[1] for c in cmds]
    assert any(c.startswith("torchrun") and "--out" in c for c in cmds)  # its own run directory
    assert len(blocks(text, "python")) == 1
    # the torchrun line must not write where the step before it wrote
    train = [shlex.split(c, comments=True) for c in cmds if "trimnet train" in c or c.startswith("torchrun")]
    outs = [a[a.index("--out") + 1] for a in train if "--out" in a]
    assert len(outs) == len(set(outs))


def _env(clone: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(clone / "src")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["CI"] = "1"
    return env


def _wait_ready(port: int, seconds: float = 120) -> None:
    import urllib.request

    end = time.time() + seconds
    while time.time() < end:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"trimnet serve did not become ready on port {port}")


def _stop(server: subprocess.Popen | None) -> None:
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_every_readme_command_works_in_order_on_a_fresh_clone(tmp_path):
    clone = tmp_path / "trimnet"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = _env(clone)
    text = (clone / "README.md").read_text()
    server = None
    try:
        for block in blocks(text, "bash"):
            for cmd in commands(block):
                argv = shlex.split(cmd, comments=True)
                if argv[0] == "make":
                    argv = ["make", "-n", *argv[1:]]
                if argv[0] == "python":
                    argv[0] = sys.executable
                if argv[:2] == ["trimnet", "serve"]:
                    _stop(server)  # one server at a time: the README's serve lines share a port
                    server = subprocess.Popen(argv, cwd=clone, env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE)
                    _wait_ready(int(argv[argv.index("--port") + 1]))
                    continue
                if argv[0] == "curl" and shutil.which("curl") is None:
                    pytest.skip("curl is not installed")
                done = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)
                assert done.returncode == 0, f"`{cmd}` exited {done.returncode}:\n{done.stderr[-3000:]}"
                if argv[0] == "curl" and "infer" in cmd:
                    assert '"outputs"' in done.stdout, done.stdout
    finally:
        _stop(server)
    script = clone / "readme_example.py"
    script.write_text(blocks(text, "python")[0])
    done = subprocess.run([sys.executable, str(script)], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=3600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OptimizeResult(winner=" in done.stdout and (clone / "model.onnx").exists()
    # what the reproduce line of the default run's report says, pasted, works too
    import json

    summary = json.loads((clone / "runs" / "digits-cnn-run" / "summary.json").read_text())
    first = shlex.split(summary["commands"][0])
    assert first[:3] == ["trimnet", "run", "-c"] and (clone / first[3]).exists()
