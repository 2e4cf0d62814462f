"""Self-attention's cost term by term, node dispatch on graph runtimes, and unfused residual adds."""

from __future__ import annotations

import dataclasses

import onnx
import pytest

from trimnet.hardware.attention import (EXPORTED_EXTRA_NODES, AttentionCurve, fit_attention, terms_of_shape,
                                        terms_of_work)
from trimnet.hardware.calibration import Series
from trimnet.hardware.estimate import estimate
from trimnet.hardware.measure import Op
from trimnet.hardware.onnx_graphs import onnx_graph
from trimnet.hardware.roofline import layer_work
from trimnet.profile import LayerProfile, Profile

# 1 us + 1 us per head + 1e-11 s per FLOP + 1 ns per token value + 2 ns per score
CURVE = AttentionCurve(t0=1e-6, per_heads=1e-6, per_flops=1e-11, per_tokens=1e-9, per_scores=2e-9)


def _attention(batch: int = 2, tokens: int = 4, dim: int = 8, heads: int = 2, name: str = "0.body.1") -> LayerProfile:
    """SelfAttention over (batch, tokens, dim) as the profiler records it: 2 B N^2 D MACs, 6 FLOPs per score."""
    macs = 2 * batch * tokens * tokens * dim
    scores = batch * heads * tokens * tokens
    return LayerProfile(name=name, type="SelfAttention", output_shape=(batch, tokens, dim), params=0, macs=macs,
                        flops=2 * macs + 6 * scores, weight_bytes=0, input_bytes=3 * 4 * batch * tokens * dim,
                        output_bytes=4 * batch * tokens * dim)


def _linear(name: str, batch: int = 2, tokens: int = 4, dim: int = 8) -> LayerProfile:
    out = batch * tokens * dim
    return LayerProfile(name=name, type="Linear", output_shape=(batch, tokens, dim), params=dim * dim + dim,
                        macs=out * dim, flops=2 * out * dim + out, weight_bytes=4 * (dim * dim + dim),
                        input_bytes=4 * out, output_bytes=4 * out)


def _block() -> Profile:
    """A residual around attention and its output projection: x + proj(attn(x))."""
    add = LayerProfile(name="0", type="Residual", output_shape=(2, 4, 8), params=0, macs=0, flops=64,
                       weight_bytes=0, input_bytes=512, output_bytes=256)
    layers = [add, _attention(), _linear("0.body.1.proj")]
    return Profile(model="block", inputs=[(2, 4, 8)], batch=2, training=False, tensors="fake", macs=0,
                   flops=sum(x.flops for x in layers), params=72, trainable_params=72, backward_flops=0,
                   layers=layers, param_bytes={"float32": 288}, peak_activation_bytes=1024)


def test_terms_of_a_profiled_layer_are_those_of_its_shape():
    # 2 samples x 2 heads = 4 sequences of 4 tokens of 4 values: 64 scores, 64 token values
    terms = terms_of_work(layer_work(_attention()))
    assert terms == pytest.approx(terms_of_shape(4, 4, 4))
    assert terms == pytest.approx({"heads": 4, "flops": 4 * 64 * 4 + 6 * 64, "tokens": 64, "scores": 64})


def test_fit_recovers_known_costs():
    shapes = [(1, 4, 8), (2, 16, 32), (32, 64, 32), (24, 128, 64), (96, 8, 32), (128, 16, 8), (48, 32, 16)]
    seconds = [CURVE.time(terms_of_shape(*s)) for s in shapes]
    fit = fit_attention(shapes, seconds)
    assert fit.error < 1e-6 and fit.points == len(shapes)
    for s, t in zip(shapes, seconds):
        assert fit.time(terms_of_shape(*s)) == pytest.approx(t, rel=1e-6)
    assert fit_attention(shapes[:4], seconds[:4]) is None  # fewer points than terms + 1


def test_many_short_heads_cost_more_than_their_flops(fake_calibration):
    """The local estimate times attention by its terms: here 4 heads of 4 tokens cost 4 us of dispatch
    where their 1408 FLOPs would take 0.014 us."""
    series = dataclasses.replace(fake_calibration.series["torch/fp32"], attention=CURVE)
    fake_calibration.series["torch/fp32"] = series
    profile = _block()
    torch_est = estimate(profile, "local", calibration=fake_calibration, backend="torch")
    attn = next(x for x in torch_est.layers if x.role == "attention")
    heads, flops, tokens, scores = 4, 4 * 64 * 4 + 6 * 64, 64, 64
    gemms, moves = heads * 1e-6 + flops * 1e-11, tokens * 1e-9 + scores * 2e-9
    assert attn.bound == "compute" and attn.time_s == pytest.approx(1e-6 + 2e-6 + gemms + moves)  # t0, layer_s
    assert series.to_dict()["attention"]["per_heads"] == 1e-6
    assert Series.from_dict(series.to_dict()).attention == CURVE
    old = {k: v for k, v in series.to_dict().items() if k != "attention"}  # a calibration from before
    assert Series.from_dict(old).attention is None


def test_graph_runtime_pays_a_node_per_exported_node(fake_calibration):
    fake_calibration.series["onnxruntime/fp32"] = dataclasses.replace(
        fake_calibration.series["onnxruntime/fp32"], attention=CURVE)  # layer_s: 2 us per node
    est = estimate(_block(), "local", calibration=fake_calibration, backend="onnxruntime")
    add, attn, proj = est.layers
    assert attn.overhead_s == pytest.approx(1e-6 + 2e-6 * (1 + EXPORTED_EXTRA_NODES))
    # the product is timed as a chain's slope (its dispatch included); its bias Add is a node of its own
    assert proj.overhead_s == pytest.approx(5e-6 + 2e-6)
    # onnxruntime folds a residual add into a convolution, not into a matrix product: here it runs
    assert not add.fused and add.time_s == pytest.approx(5e-6 + 2e-6 + 768 / 1e10)
    ov = estimate(_block(), "local", calibration=fake_calibration, backend="openvino")
    assert ov.layers[0].fused  # OpenVINO folds it into the FullyConnected before it


def test_calibration_graphs_keep_what_a_model_runs(tmp_path):
    """q, k and v are split by three distinct nodes (a runtime would merge identical ones), and the
    node-cost chain has as many nodes as asked."""
    path, _ = onnx_graph(Op("attention", (4, 16, 16)), tmp_path / "a.onnx")
    g = onnx.load(str(path)).graph
    splits = [n for n in g.node if n.op_type == "Reshape" and n.input[0] == "x"]
    assert len(splits) == 3 and len({n.input[1] for n in splits}) == 3
    consts = {i.name: tuple(onnx.numpy_helper.to_array(i).ravel()) for i in g.initializer}
    assert len({consts[n.input[1]] for n in splits}) == 3  # different values: not shared as one constant
    path, _ = onnx_graph("tiny", tmp_path / "t.onnx", repeat=30)
    assert len(onnx.load(str(path)).graph.node) == 30
