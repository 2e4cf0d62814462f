"""``trimnet hardware``: JSON keys, tables, exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest

from trimnet.cli.hardware import parse_flops, parse_latency, parse_rate
from trimnet.cli.main import main
from trimnet.errors import ConfigError
from trimnet.hardware.calibration import save_calibration


def _json(capsys, argv: list[str]) -> dict:
    assert main(["hardware", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list(capsys):
    out = _json(capsys, ["list"])
    h100 = next(d for d in out["devices"] if d["key"] == "h100-sxm")
    assert h100["peak_tflops"]["bf16"] == 989.5 and h100["memory_gb"] == 80 and "nvidia.com" in h100["source"]
    assert out["local"] is None and "not calibrated" in out["local_note"]
    assert main(["hardware", "list"]) == 0
    text = capsys.readouterr().out
    assert "h200" in text and "Sources:" in text and "sparse figures halved" in text


def test_estimate_catalog_device(capsys):
    out = _json(capsys, ["estimate", "--model", "cnn", "--input-shape", "1x1x8x8", "--num-classes", "10",
                         "--device", "h100-sxm,t4", "--batch", "1,64", "--precision", "fp16"])
    ests = out["estimates"]
    assert [(e["device"], e["batch"]) for e in ests] == [("h100-sxm", 1), ("h100-sxm", 64), ("t4", 1), ("t4", 64)]
    e = ests[0]
    assert {"latency_ms", "throughput", "utilization", "bound", "memory", "assumptions", "error", "layers",
            "time_split_s", "achieved_flops", "peak_flops"} <= set(e)
    assert e["assumptions"]["source"] == "fitted" and 0 < e["assumptions"]["efficiency"] <= 1 and e["precision"] == "fp16"
    assert e["error"]["against"] == "published" and e["error"]["status"] == "measured"
    assert {layer["bound"] for layer in e["layers"]} <= {"compute", "memory", "fused", "none"}
    assert ests[1]["throughput"] > ests[0]["throughput"]


def test_estimate_table_and_local(capsys, fake_calibration, tmp_path):
    assert main(["hardware", "estimate", "--model", "mlp", "--input-shape", "1x64", "--num-classes", "3",
                 "--device", "l4", "--layers"]) == 0
    text = capsys.readouterr().out
    assert "latency ms" in text and "fitted efficiency" in text and "error against" in text and "Linear" in text
    save_calibration(fake_calibration)  # into $TRIMNET_CACHE (a temporary folder)
    out = _json(capsys, ["estimate", "--model", "mlp", "--input-shape", "1x64", "--num-classes", "3",
                         "--batch", "1,8", "--backend", "onnxruntime"])
    assert [e["device"] for e in out["estimates"]] == ["local", "local"]
    assert out["estimates"][0]["backend"] == "onnxruntime" and out["estimates"][0]["assumptions"]["source"] == "calibration"


def test_recommend(capsys):
    out = _json(capsys, ["recommend", "--model", "resnet18", "--target-latency", "2ms", "--precision", "bf16"])
    assert {"message", "candidates", "target_latency_s", "error", "assumptions"} <= set(out)
    assert out["target_latency_s"] == pytest.approx(2e-3)
    met = [c for c in out["candidates"] if c["meets"]]
    assert met and all(c["latency_s"] <= 2e-3 and c["headroom"] >= 1 for c in met)
    t4 = next(c for c in out["candidates"] if c["device"] == "t4")
    assert not t4["meets"] and "no published bf16" in t4["reason"]
    assert main(["hardware", "recommend", "--model", "resnet18", "--target-latency", "1us"]) == 0
    assert "No device meets" in capsys.readouterr().out


def test_train_time(capsys):
    out = _json(capsys, ["train-time", "--total-flops", "2e19", "--precision", "bf16", "--device", "a100-80gb,h100-sxm"])
    rows = {r["device"]: r for r in out["results"]}
    assert rows["a100-80gb"]["seconds"] == pytest.approx(2e19 / (312e12 * 0.5))
    assert {"hours", "days", "achievable_flops", "energy_kwh_at_tdp", "basis"} <= set(rows["h100-sxm"])
    out = _json(capsys, ["train-time", "--model", "cnn", "--input-shape", "32x1x8x8", "--num-classes", "10",
                         "--samples", "1000", "--epochs", "3", "--device", "l4"])
    assert out["batch"] == 32 and out["results"][0]["total_flops"] > 0


@pytest.mark.parametrize("argv,message", [
    (["estimate", "--model", "cnn", "--input-shape", "1x1x8x8", "--device", "h1000"], "unknown device 'h1000'"),
    (["estimate", "--model", "cnn", "--input-shape", "1x1x8x8", "--device", "local"], "not calibrated yet"),
    (["estimate", "--model", "cnn", "--input-shape", "1x1x8x8", "--device", "t4", "--precision", "bf16"],
     "no published bf16"),
    (["recommend", "--model", "cnn", "--input-shape", "1x1x8x8", "--target-latency", "5"], "needs a unit"),
    (["recommend", "--model", "cnn", "--input-shape", "1x1x8x8"], "--target-latency"),
    (["train-time", "--device", "t4"], "--total-flops"),
    (["estimate", "--model", "foo"], "--input-shape"),
    ([], "needs an action"),
])
def test_errors_exit_2_with_one_line(capsys, argv, message):
    assert main(["hardware", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unit_parsing():
    assert parse_latency("5ms") == pytest.approx(5e-3) and parse_latency("800us") == pytest.approx(8e-4)
    assert parse_latency("0.5s") == 0.5
    assert parse_rate("2000/s") == 2000 and parse_rate("2k") == 2000
    assert parse_flops("2e19") == 2e19 and parse_flops("20E") == 2e19
    with pytest.raises(ConfigError):
        parse_rate("fast")
