"""``trimnet export`` from the command line: the file lands in the run directory, errors exit 2."""

from __future__ import annotations

import json

import pytest
import torch

import trimnet as tn
from trimnet.cli.main import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = tn.create_model("cnn", (1, 8, 8), 3, widths=(4, 4, 8), hidden=8).eval()
    return tn.save_artifact(model, tmp_path_factory.mktemp("runs") / "tiny", in_shape=(1, 8, 8),
                            class_names=["a", "b", "c"])


def test_export_writes_into_the_run_directory(run_dir, capsys):
    pytest.importorskip("onnxruntime")
    rc = main(["export", str(run_dir), "--format", "onnx", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and (run_dir / "model.onnx").exists() and data["parity"]["passed"]
    assert data["path"] == str(run_dir / "model.onnx") and data["opset"] == 18


def test_export_errors_exit_2(run_dir, tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert main(["export", str(run_dir), "--format", "onnx", "--precision", "f16"]) == 2
    err = capsys.readouterr().err
    assert "precision" in err and "Traceback" not in err
