"""``benchmark``: one result per (backend, batch), in the JSON schema docs/bench.md documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import trimnet as tn
from trimnet.bench import SCHEMA_VERSION, BackendSpec, benchmark
from trimnet.errors import ConfigError
from trimnet.runtime import backend_status

DOCS = Path(__file__).resolve().parents[2] / "docs" / "bench.md"
TOP_KEYS = {"schema_version", "kind", "model", "config", "environment", "results"}
RESULT_KEYS = {"backend", "backend_name", "options", "batch", "status", "reason", "precision", "latency_ms",
               "iterations", "measured_s", "throughput_samples_per_s", "achieved_flops", "first_run_ms", "warmup",
               "memory", "parity", "runner", "interference"}
LATENCY_KEYS = {"p50", "p90", "p99", "min", "mean", "max", "std"}


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return tn.create_model("mlp", (16,), 4, hidden=(32,)).eval()


@pytest.fixture(scope="module")
def result(mlp):
    from trimnet.bench import BenchConfig

    quick = BenchConfig(threads=1, warmup_window=3, warmup_max_s=0.1, min_iters=5, min_time_s=0.02, max_time_s=0.3)
    return benchmark(mlp, torch.randn(1, 16), backends=["torch", "torch-cuda"], batch_sizes=[1, 8], config=quick)


def test_one_result_per_backend_and_batch(result):
    assert [(m.backend, m.batch) for m in result.results] == [("torch", 1), ("torch", 8), ("torch-cuda", 1),
                                                               ("torch-cuda", 8)]


def test_json_schema(result):
    data = json.loads(json.dumps(result.to_dict()))  # plain JSON all the way down
    assert set(data) == TOP_KEYS and data["schema_version"] == SCHEMA_VERSION == 1 and data["kind"] == "trimnet.bench"
    assert data["model"]["input_shape"] == [16] and data["model"]["params"] == 16 * 32 + 32 + 32 * 4 + 4
    env = data["environment"]
    assert env["threads"] == 1 and env["versions"]["torch"] == torch.__version__ and env["cpu"]["name"]
    for r in data["results"]:
        assert set(r) == RESULT_KEYS
    ok = data["results"][1]
    assert ok["status"] == "ok" and ok["reason"] is None and set(ok["latency_ms"]) == LATENCY_KEYS
    lat = ok["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert ok["iterations"] >= 5 and ok["throughput_samples_per_s"] > 0
    assert ok["runner"]["threads"] == 1 and ok["precision"] == "f32" and ok["parity"]["passed"]
    assert ok["memory"]["peak_rss_bytes"] > 0 and ok["warmup"]["runs"] >= 1


def test_achieved_flops_come_from_the_profiler(result):
    pytest.importorskip("trimnet.profile")
    flops = result.model["flops_per_sample"]
    assert flops is not None and flops >= 2 * (16 * 32 + 32 * 4)  # the two matmuls at least
    m = result.get("torch", 8)
    assert m.achieved_flops == pytest.approx(flops * 8 / (m.p50 / 1e3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the skip on machines without CUDA")
def test_unusable_backend_is_skipped_with_its_reason(result):
    skipped = result.get("torch-cuda", 1)
    assert skipped.status == "skipped" and "CUDA" in skipped.reason and skipped.latency_ms is None
    assert "skipped: no CUDA device" in result.table()


def test_every_json_key_is_documented(result):
    text = DOCS.read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", text))
    data = result.to_dict()
    keys = TOP_KEYS | RESULT_KEYS | LATENCY_KEYS | set(data["model"]) | set(data["environment"])
    keys |= set(data["results"][0]["warmup"]) | set(data["results"][0]["memory"])
    assert keys - documented == set()


def test_table_lists_every_case(result):
    table = result.table()
    assert "p50 ms" in table and "samples/s" in table
    rows = [line for line in table.splitlines() if line.startswith(("torch ", "torch-cuda "))]
    assert len(rows) == len(result.results)


def test_onnx_backends_share_one_export(mlp, quick):
    status = backend_status()
    names = [n for n in ("onnxruntime", "openvino", "openvino:hint=throughput") if status[n.split(":")[0]] is None]
    if not names:
        pytest.skip("neither onnxruntime nor openvino is installed")
    names.insert(1, "torch")  # a module backend between them
    res = benchmark(mlp, torch.randn(2, 16), backends=names, config=quick)
    assert [m.batch for m in res.results] == [2] * len(names)  # the example's batch by default
    assert all(m.status == "ok" and m.parity["passed"] for m in res.results)
    assert all(m.runner["threads"] == 1 for m in res.results)


def test_backend_specs_carry_options():
    spec = BackendSpec.parse("openvino:precision=bf16:hint=throughput:threads=4")
    assert spec.name == "openvino" and spec.options == {"precision": "bf16", "hint": "throughput", "threads": 4}
    assert spec.label == "openvino:precision=bf16:hint=throughput:threads=4"
    with pytest.raises(ConfigError, match="key=value"):
        BackendSpec.parse("openvino:bf16")


def test_bad_requests_fail_before_measuring(mlp, quick):
    with pytest.raises(ConfigError, match="unknown backend 'tensorrt'; installed: .*torch"):
        benchmark(mlp, torch.randn(1, 16), backends=["torch", "tensorrt"], config=quick)
    with pytest.raises(ConfigError, match="batch sizes"):
        benchmark(mlp, torch.randn(1, 16), backends=["torch"], batch_sizes=[0], config=quick)


def test_a_run_directory_is_measured_with_its_input_shape(mlp, tmp_path, quick):
    run = tn.save_artifact(mlp, tmp_path / "run", in_shape=(16,), class_names=list("abcd"))
    res = benchmark(str(run), backends=["torch"], batch_sizes=[3], config=quick)
    assert res.model["name"] == "run" and res.model["input_shape"] == [16] and res.results[0].batch == 3


def test_an_exported_file_runs_on_the_backends_that_read_it(mlp, tmp_path, quick):
    if backend_status()["onnxruntime"] is not None:
        pytest.skip("onnxruntime is not installed")
    path = tn.export(mlp, tmp_path / "m.onnx", torch.randn(2, 16)).path
    res = benchmark(str(path), backends=["onnxruntime", "torch"], batch_sizes=[2], config=quick)
    assert res.model["input_shape"] == [16] and res.model["params"] is None  # from the file's metadata
    ort_result, torch_result = res.results
    assert ort_result.status == "ok" and ort_result.parity is None  # no module to check against
    assert torch_result.status == "skipped" and "runs PyTorch modules, not m.onnx" in torch_result.reason
