"""Lower precision: every method builds, is measured against fp32, saved, and loads back within tolerance."""

import json

import numpy as np
import pytest
import torch

import trimnet as tn
from trimnet.cli.main import main
from trimnet.optimize.quantize import (AccuracyDropError, Latency, QuantizeConfig, load_quantized, quantize,
                                       runtime_model)
from trimnet.optimize.quantize import api as quantize_api
from trimnet.optimize.quantize.measure import MIN_SQNR_DB, sqnr_db

pytest.importorskip("onnxruntime")
TINY = ["--model.options.widths", "[16,16,32]", "--model.options.hidden", "64"]
FAST = dict(calibration=128, batch_sizes=(1,), bench_time_s=0.05)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits-cnn"
    assert main(["train", "--data", "digits", "--model", "cnn", "--train.epochs", "2", "--out", str(out),
                 "--train.lr", "0.01", *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def ort_int8(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "int8-ort"
    config = QuantizeConfig("int8", backend="onnxruntime", keep_slower=True, **FAST)
    return quantize(run_dir, config=config, out=out), out


def logits(run_dir, x):
    art = tn.load_artifact(run_dir)
    with torch.inference_mode():
        return art.model(x).numpy()


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_ort_static_int8_is_measured_saved_and_loads(ort_int8, run_dir):
    result, out = ort_int8
    assert result.kept == "int8" and result.parity["passed"]
    assert result.accuracy_before > 0.8 and result.accuracy_drop <= 0.03
    assert [m.batch for m in result.latency] == [1] and result.latency[0].fp32_ms > 0 and result.latency[0].lowp_ms > 0
    convs = [layer for layer in result.layers if layer["op"] == "Conv"]
    assert len(convs) == 3 and all(layer["precision"] == "int8" for layer in convs)
    assert "weight int8 per-channel (16 scales)" in convs[0]["quantized"]
    assert result.details["runtime_ops"].get("com.microsoft.QLinearConv") == 3  # onnxruntime runs integer convs
    entry = runtime_model(out)
    assert entry == {"backend": "onnxruntime", "precision": "int8", "options": {}, "file": "model_int8.onnx",
                     "format": "onnx"}
    assert (out / "model_int8.onnx").is_file() and (out / "quantize.json").is_file()
    assert json.loads((out / "metrics.json").read_text())["test_accuracy_int8"] == result.accuracy_after
    art = tn.load_artifact(out)  # still an ordinary run: the fused fp32 model, as a spec
    assert art.meta["spec"] is not None and art.meta["data"]["source"] == "digits"
    x = tn.load_dataset("digits").x_test[:64]
    with load_quantized(out) as runner:
        assert sqnr_db(logits(run_dir, x), runner.run(x.numpy())) >= MIN_SQNR_DB["int8"]


@pytest.mark.slow  # one of the slowest outside the slow set; CI runs it
def test_openvino_static_int8_through_nncf(run_dir, tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    result = quantize(run_dir, config=QuantizeConfig("int8", backend="openvino", keep_slower=True, **FAST),
                      out=tmp_path / "q")
    assert result.kept == "int8" and result.parity["passed"] and result.details["tool"] == "nncf.quantize"
    assert result.details["int8_layers"] == 5  # three convs and two fully connected layers run in int8
    assert result.accuracy_drop <= 0.03
    assert runtime_model(tmp_path / "q")["file"] == "model_int8.xml"
    assert (tmp_path / "q" / "model_int8.bin").is_file()
    with load_quantized(tmp_path / "q") as runner:
        assert runner.run(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 10)
    # the file carries the trimnet metadata, so the bench harness can read its input shape
    from trimnet.bench import BenchConfig

    res = tn.benchmark(tmp_path / "q" / "model_int8.xml", backends=["openvino"],
                       config=BenchConfig(min_time_s=0.01, max_time_s=0.1, warmup_max_s=0.05, min_iters=2))
    assert res.results[0].status == "ok"


def test_dynamic_int8_quantizes_the_linear_layers_of_an_mlp(tmp_path):
    data = tn.load_dataset("breast_cancer")
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=(64, 32))
    tn.train(model, data, tn.TrainConfig(epochs=3))
    result = quantize(model, data, QuantizeConfig("int8-dynamic", keep_slower=True, **FAST))
    assert result.backend == "onnxruntime" and result.parity["passed"]
    assert [layer["precision"] for layer in result.layers] == ["int8"] * 3
    assert result.accuracy_drop <= 0.03
    saved = result.save(tmp_path / "q")
    assert runtime_model(saved)["file"] == "model_int8_dynamic.onnx"
    art = tn.load_artifact(saved)
    assert art.class_names == data.class_names
    assert tn.evaluate(art).accuracy == pytest.approx(result.accuracy_before, abs=1e-6)  # it records its dataset


def test_torch_bf16_saves_bf16_weights_and_loads_as_bf16(run_dir, tmp_path):
    result = quantize(run_dir, config=QuantizeConfig("bf16", backend="torch", keep_slower=True, **FAST),
                      out=tmp_path / "q")
    assert result.kept == "bf16" and result.parity["passed"] and all(r["precision"] == "bf16" for r in result.layers)
    assert runtime_model(tmp_path / "q") == {"backend": "torch", "precision": "bf16", "options": {}}
    from safetensors.torch import load_file

    assert {t.dtype for t in load_file(tmp_path / "q" / "model.safetensors").values()} == {torch.bfloat16}
    with load_quantized(tmp_path / "q") as runner:
        x = torch.randn(4, 1, 8, 8)
        assert runner.model.dtype == torch.bfloat16
        assert np.abs(runner.run(x.numpy()) - logits(run_dir, x)).max() < 0.1 * np.abs(logits(run_dir, x)).max()


def test_openvino_bf16_is_kept_only_where_the_cpu_runs_it(run_dir):
    pytest.importorskip("openvino")
    result = quantize(run_dir, config=QuantizeConfig("bf16", **FAST))
    lowered = result.details["bf16_layers"] > 0
    assert result.backend == "openvino" and result.parity["passed"]
    if not lowered:
        assert result.kept == "fp32" and "cannot run bf16" in result.reason and result.latency == []
    assert result.accuracy_drop <= 0.01


def test_slower_int8_keeps_fp32(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize_api.measure, "latency",
                        lambda *a, **k: [Latency(1, 1.0, 1.5, ratio=1.5), Latency(8, 4.0, 5.0, ratio=1.25)])
    result = quantize(run_dir, config=QuantizeConfig("int8", backend="onnxruntime", **FAST), out=tmp_path / "q")
    assert result.kept == "fp32" and "slower than fp32" in result.reason
    assert result.speedup == pytest.approx((1 / 1.5 / 1.25) ** 0.5)
    entry = runtime_model(tmp_path / "q")
    assert entry["precision"] == "fp32" and entry["file"] == "model.onnx"
    assert not (tmp_path / "q" / "model_int8.onnx").exists()


def test_accuracy_guard_rejects_and_writes_nothing(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize_api.measure, "accuracy", lambda *a, **k: 0.5)
    with pytest.raises(AccuracyDropError, match=r"loses \d+\.\d+ points .* more than the allowed 0\.50") as err:
        quantize(run_dir, config=QuantizeConfig("bf16", backend="torch", max_accuracy_drop=0.005,
                                                keep_slower=True, **FAST), out=tmp_path / "q")
    assert err.value.result.accuracy_after == 0.5 and err.value.result.accuracy_before > 0.8
    assert not (tmp_path / "q").exists()


def cli(capsys, *argv):
    code = main(["quantize", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def with_command(monkeypatch):
    """Register the subcommand for these tests (the CLI lists it once it ships)."""
    from trimnet.cli import main as cli_main

    monkeypatch.setitem(cli_main.COMMANDS, "quantize", "quantize")


def test_cli_quantize_json_and_table(run_dir, tmp_path, capsys, with_command):
    code, out, err = cli(capsys, run_dir, "--precision", "int8-dynamic", "--calibration", "32", "--batch-sizes", "1",
                         "--bench-time", "0.05", "--out", tmp_path / "q", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accepted"] and report["precision"] == "int8-dynamic" and report["backend"] == "onnxruntime"
    assert set(report["accuracy"]) == {"before", "after", "drop", "split"} and report["latency"][0]["batch"] == 1
    assert report["kept"] in ("int8-dynamic", "fp32") and (tmp_path / "q" / "model.json").is_file()
    # an existing output is not overwritten without --overwrite
    code, _, err = cli(capsys, run_dir, "--precision", "int8-dynamic", "--out", tmp_path / "q")
    assert code == 2 and "--overwrite" in err
    code, out, _ = cli(capsys, "--list-methods")
    assert code == 0 and "int8" in out and "openvino" in out and "onnxruntime" in out


def test_cli_accuracy_guard_exits_2_and_leaves_everything_as_it_was(run_dir, tmp_path, capsys, monkeypatch,
                                                                    with_command):
    monkeypatch.setattr(quantize_api.measure, "accuracy", lambda *a, **k: 0.5)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    code, out, err = cli(capsys, run_dir, "--precision", "bf16", "--backend", "torch", "--max-accuracy-drop", "0.005",
                         "--keep-slower", "--batch-sizes", "1", "--bench-time", "0.05", "--out", tmp_path / "q")
    assert code == 2
    assert err.startswith("error: bf16 on torch loses") and "more than the allowed 0.50" in err and "-> 0.5000" in err
    assert "rejected, nothing written" in out and "test accuracy" in out
    assert not (tmp_path / "q").exists()
    assert before == {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


def test_config_is_validated():
    with pytest.raises(tn.ConfigError, match="unknown precision"):
        QuantizeConfig("int4").validate()
    with pytest.raises(tn.ConfigError, match="max_accuracy_drop"):
        QuantizeConfig(max_accuracy_drop=5).validate()
    with pytest.raises(tn.ConfigError, match="int8-dynamic runs on: onnxruntime"):
        quantize(torch.nn.Linear(4, 2), None, QuantizeConfig("int8-dynamic", backend="openvino"))
    cfg = QuantizeConfig("int8", backend="onnxruntime", calibration=128)
    assert QuantizeConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(tn.DataError, match="needs data"):
        quantize(torch.nn.Linear(4, 2), None, cfg)


def test_accuracy_is_measured_on_the_split_asked_for(run_dir):
    from trimnet.train.evaluate import dataset_of

    art = tn.load_artifact(run_dir)
    x_val, y_val = dataset_of(art).split("val")
    with torch.inference_mode():
        expected = (art.model(x_val.float()).argmax(1) == y_val).float().mean().item()
    result = quantize(run_dir, config=QuantizeConfig("bf16", backend="torch", keep_slower=True, **FAST), split="val")
    assert result.accuracy_before == pytest.approx(expected)
    assert result.to_dict()["accuracy"]["split"] == "val" and "validation accuracy" in result.summary()
