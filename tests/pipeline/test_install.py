"""Install: a torch range for users' own builds, the exact CPU pin where the project builds its venv,
and `make run` installing only what the run needs."""

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_asks_for_a_torch_range_that_the_tested_pin_satisfies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(Requirement(d) for d in deps if Requirement(d).name == "torch")
    assert "==" not in str(torch.specifier)  # a CUDA build of another patch release must install
    assert torch.specifier.contains("2.13.0") and torch.specifier.contains("2.5.1")
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_the_run_extra_only(tmp_path):
    def plan(target: str) -> str:
        # a venv path that does not exist, so make shows every step it would take
        return subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout

    run, test = plan("run"), plan("test")
    assert "\".[run]\"" in run and ".[dev]" not in run and "-m pytest" not in run
    assert ".[dev]" in test and "torch==2.13.0" in run
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("pytest" in d or "hypothesis" in d for d in extras["run"])
