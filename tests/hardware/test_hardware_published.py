"""Estimates and recommendations checked against the published-results regression set (benchmarks/published/)."""

from __future__ import annotations

import dataclasses

import pytest

from trimnet.cli.main import main
from trimnet.errors import ConfigError
from trimnet.hardware import estimate, load_catalog, recommend, train_time
from trimnet.hardware.fitted import OFFLINE_LADDER, build_works, figure_works, load_params, predict, seconds
from trimnet.hardware.published import load_figures, split, workload


@pytest.fixture(scope="module")
def figures():
    return {f.id: f for f in load_figures()}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(env=False)


def test_regression_set_is_sourced_and_split_without_overlap(figures, catalog):
    figs = list(figures.values())
    assert len(figs) >= 40
    assert {f.mode for f in figs} == {"inference", "training"}
    families = {catalog[f.device].family for f in figs}  # every device is a catalog device
    assert {"gh100", "ga100", "ad104", "tu104", "ga10b"} <= families and "h200" in {f.device for f in figs}
    assert any(catalog[f.device].kind == "cpu" for f in figs)
    assert all(f.source.startswith("https://github.com/") and "/blob/" in f.source and f.where for f in figs)
    fitted, held = split(figs)
    assert not {f.id for f in fitted} & {f.id for f in held} and len(held) >= len(figs) // 4
    assert split(list(reversed(figs)))[1] == list(reversed(held))  # by id, not by position or value


def _published_cheapest(figures, catalog, ids, target_latency=None, target_throughput=None):
    """The lowest-TDP device whose published figure meets the target (the answer recommend must give)."""
    ok = []
    for fid in ids:
        f = figures[fid]
        if f.metric == "latency_ms":
            meets = f.value <= target_latency * 1e3
        else:
            meets = f.value / f.gpus >= target_throughput
        if meets:
            ok.append(f.device)
    return min(ok, key=lambda d: catalog[d].tdp_w)


FILL = load_params().fill_of("mlperf-squad")
OFFLINE = list(OFFLINE_LADDER)  # an Offline harness runs at its best batch; the fit predicts Offline figures so
CASES = [  # (model, seq, precision, target, batches, runtime, effective_seq, published figure per device)
    ("bert-large", 384, "fp16", {"target_latency": 10e-3}, [1], "tensorrt", None,
     ["trt-bert-t4-bert-large-s384-b1-fp16", "trt-bert-a100-40gb-bert-large-s384-b1-fp16"]),
    ("bert-base", 128, "int8", {"target_latency": 3e-3}, [1], "tensorrt", None,
     ["trt-bert-t4-bert-base-s128-b1-int8", "trt-bert-a100-40gb-bert-base-s128-b1-int8"]),
    ("bert-large", 384, "int8", {"target_latency": 20e-3}, [8], "tensorrt", None,
     ["trt-bert-t4-bert-large-s384-b8-int8", "trt-bert-a100-40gb-bert-large-s384-b8-int8"]),
    ("bert-base", 128, "fp16", {"target_latency": 50e-3}, [32], "tensorrt", None,
     ["trt-bert-t4-bert-base-s128-b32-fp16", "trt-bert-a100-40gb-bert-base-s128-b32-fp16"]),
    ("bert-large", 384, "int8", {"target_latency": 5e-3}, [1], "tensorrt", None,
     ["trt-bert-t4-bert-large-s384-b1-int8", "trt-bert-a100-40gb-bert-large-s384-b1-int8"]),
    ("resnet50", None, "int8", {"target_throughput": 7000}, [256], "tensorrt", None,
     ["mlperf-v3.1-jetson-agx-orin-resnet50-offline", "mlperf-v3.1-l4-resnet50-offline",
      "mlperf-v4.0-h100-sxm-resnet50-offline"]),
    ("resnet50", None, "int8", {"target_throughput": 8000}, OFFLINE, "tensorrt", None,  # L4 12,882 measured
     ["mlperf-v3.1-jetson-agx-orin-resnet50-offline", "mlperf-v3.1-l4-resnet50-offline",
      "mlperf-v4.0-h100-sxm-resnet50-offline"]),
    ("resnet50", None, "int8", {"target_throughput": 40000}, [256], "tensorrt", None,
     ["mlperf-v3.1-l4-resnet50-offline", "mlperf-v4.0-xeon-8592plus-2s-resnet50-offline",
      "mlperf-v4.0-h100-sxm-resnet50-offline"]),
    ("resnet50", None, "int8", {"target_latency": 1e-3}, [1], "tensorrt", None,
     ["mlperf-v3.1-jetson-agx-orin-resnet50-singlestream", "mlperf-v3.1-l4-resnet50-singlestream"]),
    ("bert-large", 384, "int8", {"target_throughput": 700}, [256], "tensorrt", round(FILL * 384),
     ["mlperf-v3.1-jetson-agx-orin-bert-99-offline", "mlperf-v3.1-l4-bert-99-offline"]),
    ("resnet50", None, "fp16", {"target_latency": 20e-3}, [32], "triton", None,
     ["triton-r50-t4-b32", "triton-r50-a100-80gb-b32"]),
]


@pytest.mark.parametrize("model,seq,precision,target,batches,runtime,effective_seq,ids", CASES,
                         ids=[f"{c[0]}-{c[2]}-{next(iter(c[3].values())):g}" for c in CASES])
def test_recommend_names_the_published_cheapest(figures, catalog, model, seq, precision, target, batches, runtime,
                                                effective_seq, ids):
    devices = [figures[i].device for i in ids]
    assert all(figures[i].model == model and figures[i].precision == precision for i in ids)
    answer = _published_cheapest(figures, catalog, ids, **target)
    rec = recommend(workload(model, seq), precision=precision, devices=devices, batches=batches, catalog=catalog,
                    include_local=False, runtime=runtime, effective_seq=effective_seq, **target)
    assert rec.met and rec.met[0].device == answer, rec.message
    losers = {figures[i].device for i in ids} - {c.device for c in rec.met}
    assert all(not c.meets and c.reason for c in rec.candidates if c.device in losers)


def test_a_target_met_only_inside_the_band_is_not_called_met(catalog):
    prof = workload("bert-base", 128)
    est = estimate(prof, "t4", "int8", 1, catalog=catalog)
    band = est.error["band"]
    assert est.error["against"] == "published" and 0 < band < 1
    target = est.latency_s * (1 + band / 2)  # the estimate meets it; its pessimistic edge does not
    rec = recommend(prof, target_latency=target, precision="int8", devices=["t4"], batches=[1], catalog=catalog)
    (cand,) = rec.candidates
    assert not cand.meets and "error band" in cand.reason and cand.latency_s < target
    assert "No device meets" in rec.message


def test_error_field_is_the_published_error_for_the_device_class(catalog):
    prof = workload("resnet50")
    t4 = estimate(prof, "t4", "fp16", 8, catalog=catalog).error
    h200 = estimate(prof, "h200", "int8", 8, catalog=catalog).error
    assert t4["scope"] == "tu104" and t4["figures"] >= 4 and 0 <= t4["within_20"] <= 1
    assert h200["scope"] == "gpu devices" and "held-out" in h200["basis"]


def test_runtimes_differ_by_their_overheads(catalog):
    prof = workload("resnet50")
    lat = {r: estimate(prof, "a100-80gb", "fp16", 1, catalog=catalog, runtime=r).latency_s
           for r in ("tensorrt", "triton", "torch-eager", "torch-compile", "onnxruntime")}
    assert lat["tensorrt"] < lat["torch-compile"] < lat["torch-eager"]
    assert lat["triton"] > lat["tensorrt"] + 0.5e-3  # a request round trip
    with pytest.raises(ConfigError, match="unknown runtime 'tvm'; choose one of: tensorrt, triton"):
        estimate(prof, "a100-80gb", "fp16", 1, catalog=catalog, runtime="tvm")


def test_fp8_runs_on_hopper_and_is_refused_where_there_is_none(catalog):
    prof = workload("bert-large", 384)
    fp8 = estimate(prof, "h100-sxm", "fp8", 64, catalog=catalog)
    fp16 = estimate(prof, "h100-sxm", "fp16", 64, catalog=catalog)
    assert fp8.latency_s < 0.8 * fp16.latency_s and fp8.memory["weights_bytes"] < fp16.memory["weights_bytes"]
    with pytest.raises(ConfigError, match="t4 has no published fp8 figure"):
        estimate(prof, "t4", "fp8", 1, catalog=catalog)


def test_effective_sequence_length_shrinks_the_work(catalog):
    prof = workload("bert-base", 384)
    padded = estimate(prof, "a100-40gb", "fp16", 32, catalog=catalog)
    packed = estimate(prof, "a100-40gb", "fp16", 32, catalog=catalog, effective_seq=192)
    assert packed.flops == pytest.approx(padded.flops / 2, rel=0.05)
    assert 0.3 * padded.latency_s < packed.latency_s < 0.75 * padded.latency_s
    with pytest.raises(ConfigError, match="1..384"):
        estimate(prof, "a100-40gb", "fp16", 32, catalog=catalog, effective_seq=500)
    with pytest.raises(ConfigError, match="sequence model"):
        estimate(workload("resnet50"), "a100-40gb", "fp16", 32, catalog=catalog, effective_seq=100)


def test_l2_term_charges_resident_activations_less(catalog):
    dev = catalog["a100-80gb"]
    works = build_works(workload("resnet50"), 1, "fp16")
    params = load_params()
    with_l2 = seconds(works, dev, "fp16", "tensorrt", params)
    without = seconds(works, dataclasses.replace(dev, l2_bytes=None), "fp16", "tensorrt", params)
    assert with_l2.memory.sum() < 0.6 * without.memory.sum() and with_l2.seconds < without.seconds


def test_training_on_several_gpus_pays_an_all_reduce(catalog):
    prof = workload("resnet50", training=True)
    one = train_time(prof, samples=1_281_167, devices=["a100-80gb"], precision="fp16", batch=256, catalog=catalog)[0]
    eight = train_time(prof, samples=1_281_167, devices=["a100-80gb"], precision="fp16", batch=256, catalog=catalog,
                       gpus=8)[0]
    assert eight.allreduce_s > 0 and one.allreduce_s is None
    assert one.seconds / 8 < eight.seconds < one.seconds / 4
    assert eight.error["against"] == "published" and eight.error["scope"] == "training steps"
    with pytest.raises(ConfigError, match="gpus must be a positive integer"):
        train_time(prof, samples=10, devices=["a100-80gb"], gpus=0, catalog=catalog)


def test_cli_runtime_and_band(capsys):
    assert main(["hardware", "recommend", "--model", "resnet50", "--precision", "int8", "--target-throughput", "7000/s",
                 "--device", "jetson-agx-orin,l4", "--batches", "256"]) == 0
    out = capsys.readouterr().out
    assert "Cheapest: l4" in out and "band" in out
    assert main(["hardware", "estimate", "--model", "resnet50", "--device", "t4", "--runtime", "bogus"]) == 2
    assert "choose one of: tensorrt" in capsys.readouterr().err


def test_offline_figures_are_predicted_at_the_harness_best_batch(figures, catalog):
    # MLPerf Offline states no batch; its harness is tuned to the best one, and the L4's best ResNet-50
    # batch is a small one, whose activations stay in its 48 MB L2
    fig, params = figures["mlperf-v3.1-l4-resnet50-offline"], load_params()
    per_sample = {b: seconds(figure_works(fig, {}, 1.0, b), catalog["l4"], "int8", "tensorrt", params).seconds / b
                  for b in OFFLINE_LADDER}
    best = min(per_sample, key=per_sample.get)
    assert best < 256 and per_sample[best] < 0.9 * per_sample[256]
    assert predict(fig, catalog, params) == pytest.approx(per_sample[best] * fig.model_batch)
