import shutil
from pathlib import Path

import pytest

from trimnet.cli.main import main


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory) -> Path:
    """A tiny trained run (iris, small MLP, one epoch): seconds to make, every command takes it."""
    out = tmp_path_factory.mktemp("iris") / "iris-mlp"
    assert main(["train", "--data", "iris", "--model", "mlp", "--train.epochs", "1", "--out", str(out),
                 "--model.options", "{hidden: [16]}"]) == 0
    return out


@pytest.fixture
def iris_copy(iris_run, tmp_path) -> Path:
    """A copy of the run to damage."""
    dst = tmp_path / "run"
    shutil.copytree(iris_run, dst)
    return dst


def _assert_clean_error(code: int, err: str, *needles: str) -> str:
    """What a failing command must look like to a user: exit 2, one line on stderr naming the
    problem, no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _temp_files(root: Path) -> list[Path]:
    """Half-written files: trimnet's temporaries are named .NAME.XXXX beside their target."""
    return [p for p in Path(root).rglob(".*") if p.is_file()]


@pytest.fixture
def clean_error():
    return _assert_clean_error


@pytest.fixture
def temp_files():
    return _temp_files
