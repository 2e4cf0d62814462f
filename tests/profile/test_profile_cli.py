"""``trimnet profile``: exit codes, JSON keys, the table, run directories."""

from __future__ import annotations

import json

import pytest

from trimnet.artifact import save_artifact
from trimnet.cli.main import main
from trimnet.models import create_model


def _json(capsys, argv: list[str]) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_model_by_name_json(capsys):
    out = _json(capsys, ["profile", "--model", "resnet18", "--input-shape", "1x3x224x224", "--json"])
    assert out["macs"] == 1_814_073_344 and out["params"] == 11_689_512
    assert {"model", "inputs", "batch", "mode", "flops", "per_sample", "memory", "layers", "operators",
            "uncounted", "notes"} <= set(out)
    assert out["mode"] == "inference" and out["inputs"] == [[1, 3, 224, 224]]
    assert out["layers"][0]["type"] == "Conv2d" and out["layers"][0]["output_shape"] == [1, 64, 112, 112]


def test_table_output(capsys):
    assert main(["profile", "--model", "lenet5", "--input-shape", "2x1x28x28", "--num-classes", "10"]) == 0
    text = capsys.readouterr().out
    assert "Conv2d" in text and "MACs" in text and "peak activations" in text


def test_training_and_training_compute(capsys):
    out = _json(capsys, ["profile", "--model", "cnn", "--input-shape", "8x1x8x8", "--num-classes", "10",
                         "--samples", "60000", "--epochs", "10", "--json"])
    assert out["mode"] == "training" and out["backward_flops"] > 0
    compute = out["training_compute"]
    assert compute == {"samples": 60000, "epochs": 10,
                       "flops": round(out["per_sample"]["total_flops"] * 60000 * 10)}


def test_run_directory(tmp_path, capsys):
    model = create_model("mlp", (6,), 3)
    run = save_artifact(model, tmp_path / "run", in_shape=(6,), class_names=["a", "b", "c"])
    out = _json(capsys, ["profile", str(run), "--batch", "4", "--json"])
    assert out["inputs"] == [[4, 6]] and out["macs"] == 4 * (6 * 128 + 128 * 64 + 64 * 3)


def test_depth_totals(capsys):
    out = _json(capsys, ["profile", "--model", "bert_base_encoder", "--input-shape", "1x128x768",
                         "--depth", "1", "--json"])
    assert out["modules"]["0"]["macs"] == 11_173_625_856


@pytest.mark.parametrize("argv,message", [
    (["--model", "resnet5", "--input-shape", "1x3x224x224"], "resnet18"),  # lists the registered models
    (["--model", "cnn"], "--input-shape"),
    (["--model", "cnn", "--input-shape", "1xfoo"], "not like"),
    ([], "run directory or --model"),
    (["--model", "cnn", "--input-shape", "1x1x8x8", "--samples", "0"], "--samples and --epochs"),
    (["/nonexistent/run"], "not a directory"),
])
def test_user_errors_exit_2(capsys, argv, message):
    assert main(["profile", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_input_that_does_not_fit_a_run_directory(tmp_path, capsys):
    run = save_artifact(create_model("cnn", (1, 8, 8), 10), tmp_path / "run", in_shape=(1, 8, 8),
                        class_names=[str(i) for i in range(10)])
    assert main(["profile", str(run), "--input-shape", "1x3x8x8"]) == 2
    err = capsys.readouterr().err
    assert "layer '0' (Conv2d) got (1, 3, 8, 8); it expects channels 1" in err
