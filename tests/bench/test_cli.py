"""``trimnet bench`` from the command line: output, files, exit codes."""

from __future__ import annotations

import json

import pytest
import torch

import trimnet as tn
from trimnet.cli.main import main

QUICK = ["--threads", "1", "--min-time", "0.02", "--max-time", "0.3", "--bench.warmup_max_s=0.1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = tn.create_model("cnn", (1, 8, 8), 3, widths=(4, 4, 8), hidden=8).eval()
    return tn.save_artifact(model, tmp_path_factory.mktemp("runs") / "tiny", in_shape=(1, 8, 8),
                            class_names=["a", "b", "c"])


def test_bench_json_for_a_zoo_model(capsys):
    rc = main(["bench", "--model", "mlp", "--input-shape", "2x16", "--num-classes", "4", "--backends", "torch",
               "--json", *QUICK])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["schema_version"] == 1
    assert data["model"]["input_shape"] == [16] and [r["batch"] for r in data["results"]] == [2]


def test_bench_table_for_a_run_directory_and_json_file(run_dir, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["bench", str(run_dir), "--backends", "torch", "--batch", "1,4", "--out", str(out), *QUICK])
    table = capsys.readouterr().out
    assert rc == 0 and "p50 ms" in table and "tiny" in table
    assert [r["batch"] for r in json.loads(out.read_text())["results"]] == [1, 4]


def test_bench_compare_two_backends(run_dir, capsys):
    rc = main(["bench", str(run_dir), "--compare", "torch", "torch", "--json", *QUICK])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["kind"] == "trimnet.bench.compare" and data["results"][0]["pairs"] >= 5


@pytest.mark.parametrize("argv,message", [
    (["--model", "mlp", "--input-shape", "1x16", "--backends", "tensorrt"], "unknown backend 'tensorrt'; installed:"),
    (["--model", "mlp"], "--input-shape"),
    ([], "nothing to measure"),
    (["--model", "mlp", "--input-shape", "1x16", "--bench.min_iters=0"], "min_iters"),
    (["--model", "mlp", "--input-shape", "1x16", "--train.epochs=3"], "bench.* overrides"),
])
def test_bench_user_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_list_backends(capsys):
    assert main(["bench", "--list-backends", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["torch"]["usable"] and "threads" in data["torch"]["options"]
    assert set(data) >= {"torch", "torch-compile", "onnxruntime", "openvino", "torch-cuda", "onnxruntime-cuda"}
