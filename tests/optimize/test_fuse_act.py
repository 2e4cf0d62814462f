"""act_fuse and the fused layers: conv/linear + activation as one step, exact against the two layers."""

import copy

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trimnet as tn
from trimnet.models import from_spec, to_spec
from trimnet.models import fused as FU
from trimnet.models.fused import ACTIVATIONS, Conv2dAct, LinearAct
from trimnet.optimize.fuse import fuse

ACTS = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "silu": nn.SiLU(), "gelu": nn.GELU(),
        "gelu_tanh": nn.GELU(approximate="tanh"), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}


def close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> bool:
    return float((a - b).abs().max()) <= rtol * max(float(b.abs().max()), 1e-6)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("kernel", ["onednn", "native"])
@pytest.mark.parametrize("name", sorted(ACTS))
def test_every_activation_matches_conv_then_activation(name, kernel, bias, monkeypatch):
    monkeypatch.setattr(FU, "ONEDNN_MIN_MACS_PER_CALL", 0)  # small inputs: take the oneDNN kernel anyway
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 3, padding=1, stride=2, bias=bias).eval()
    fused = Conv2dAct.from_conv(conv, name, kernel).eval()
    x = torch.randn(3, 16, 9, 9)
    with torch.inference_mode():
        ref = ACTS[name](conv(x))
        assert close(fused(x), ref) and close(fused(x), ref)  # twice: the packed weight is reused
    assert ("_packed_weight" in fused.__dict__) == (kernel == "onednn")
    out = fused(x)  # autograd on: the plain path, same numbers
    assert close(out, ref)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_linear_activation_matches_and_trains(name):
    torch.manual_seed(0)
    lin = nn.Linear(12, 5)
    fused = LinearAct.from_linear(lin, name)
    x = torch.randn(4, 12)
    ref = ACTS[name](lin(x))
    out = fused(x)
    assert close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    assert close(fused.weight.grad, lin.weight.grad)


def test_conv_act_trains_like_the_two_layers():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    fused = Conv2dAct.from_conv(conv, "relu")
    x = torch.randn(2, 8, 6, 6)
    F.relu(conv(x)).square().sum().backward()
    fused(x).square().sum().backward()
    assert close(fused.weight.grad, conv.weight.grad) and close(fused.bias.grad, conv.bias.grad)


def test_small_calls_take_pytorchs_kernel():
    conv = Conv2dAct.from_conv(nn.Conv2d(64, 64, 3, padding=1), "relu").eval()
    assert conv.kernel == "onednn"
    with torch.inference_mode():
        conv(torch.randn(1, 64, 8, 8))  # 2.4 M multiply-adds: oneDNN's fixed cost would not pay
        assert "_packed_weight" not in conv.__dict__
        conv(torch.randn(8, 64, 8, 8))  # 19 M
        assert "_packed_weight" in conv.__dict__


def test_packed_weight_follows_weight_changes_and_copies(monkeypatch):
    monkeypatch.setattr(FU, "ONEDNN_MIN_MACS_PER_CALL", 0)
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1).eval()
    fused = Conv2dAct.from_conv(conv, "relu").eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.inference_mode():
        fused(x)
    with torch.no_grad():
        fused.weight.mul_(-1.0)  # in place: the packed copy must be rebuilt
        conv.weight.mul_(-1.0)
    with torch.inference_mode():
        assert close(fused(x), F.relu(conv(x)))
    fused.load_state_dict(nn.Conv2d(16, 16, 3, padding=1).state_dict())
    copied = copy.deepcopy(fused)  # the oneDNN tensor is left behind, and rebuilt on use
    with torch.inference_mode():
        assert close(copied(x), fused(x)) and not close(fused(x), F.relu(conv(x)))


def test_kernel_choice_follows_the_work_per_output():
    assert Conv2dAct.from_conv(nn.Conv2d(1, 64, 3, padding=1), "relu").kernel == "native"  # 9 MACs per output
    assert Conv2dAct.from_conv(nn.Conv2d(32, 32, 3, padding=1, groups=32), "relu").kernel == "native"  # depthwise
    assert Conv2dAct.from_conv(nn.Conv2d(64, 64, 3, padding=1), "relu").kernel == "onednn"


def test_fused_spec_model_saves_rebuilds_profiles_and_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = tn.create_model("cnn", in_shape=(1, 8, 8), num_classes=10).eval()
    res = fuse(model)
    fused = res.model
    layers = to_spec(fused)["layers"]
    assert [s["type"] for s in layers][:2] == ["conv2d_act", "conv2d_act"]
    assert {s["kernel"] for s in layers if s["type"] == "conv2d_act"} == {"native", "onednn"}
    rebuilt = from_spec(to_spec(fused), in_shape=(1, 8, 8), num_classes=10)
    rebuilt.load_state_dict(fused.state_dict())
    x = torch.randn(5, 1, 8, 8)
    with torch.inference_mode():
        assert close(rebuilt.eval()(x), model(x))
    # the profiler sees the conv and the activation, as with the activations left apart
    apart = fuse(model, passes=["drop_identity", "bn_fold", "linear_merge"]).model
    before, after = tn.profile(apart, x[:1]), tn.profile(fused, x[:1])
    assert (after.macs, after.flops, after.params) == (before.macs, before.flops, before.params)
    # export runs the plain operators; onnxruntime gets Conv + Relu and matches PyTorch
    tn.export(fused, tmp_path / "m.onnx", x[:2])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert {"Conv", "Relu"} <= ops and not any("mkldnn" in op.lower() for op in ops)


class PaddedSame(nn.Module):
    """A user module (traced with fx): a conv with padding='same' cannot take the fused kernel."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding="same")
        self.r1 = nn.ReLU()
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.r2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.r3 = nn.ReLU()

    def forward(self, x):
        return self.r3(self.pool(self.r2(self.b(self.r1(self.a(x))))))


def test_what_must_not_fuse_is_left_with_a_reason():
    torch.manual_seed(0)
    model = PaddedSame().eval()
    res = fuse(model, example_inputs=torch.randn(2, 3, 8, 8))
    act = res.record.passes[-1]
    assert [c.layers for c in act.changes] == [["b", "r2"]]
    reasons = {s.layer: s.reason for s in act.skipped}
    assert "same" in reasons["r1"] and "AdaptiveAvgPool2d" in reasons["r3"]
    x = torch.randn(4, 3, 8, 8)
    with torch.inference_mode():
        assert close(res.model(x), model(x))


def test_activation_table_is_complete():
    assert set(ACTS) | {"none"} == set(ACTIVATIONS)


def test_a_conv_without_activation_is_packed_when_that_pays():
    torch.manual_seed(0)
    block = {"type": "residual", "body": [{"type": "conv2d", "in_channels": 16, "out_channels": 16, "kernel_size": 3,
                                            "padding": 1}]}
    model = from_spec({"type": "sequential", "layers": [
        {"type": "conv2d", "in_channels": 3, "out_channels": 16, "kernel_size": 3, "padding": 1},  # 27 MACs/output
        block, {"type": "adaptive_avgpool2d", "output_size": 1}, {"type": "flatten"},
        {"type": "linear", "in_features": 16, "out_features": 4}]}, in_shape=(3, 8, 8), num_classes=4).eval()
    res = fuse(model)
    packed = [c for c in res.record.passes[-1].changes if c.kind == "pack"]
    assert [c.layers for c in packed] == [["1.body.0"]]
    assert type(res.model[0]) is nn.Conv2d  # too little work per output: PyTorch's kernel is faster there
    assert res.model[1].body[0].activation == "none" and res.model[1].body[0].kernel == "onednn"
    x = torch.randn(3, 3, 8, 8)
    with torch.inference_mode():
        assert close(res.model(x), model(x))


def test_a_fused_model_is_measured_and_pruned_by_its_activations():
    pytest.importorskip("torch_pruning")
    from trimnet.optimize.prune import PruneConfig, prune
    from trimnet.optimize.stats import activation_stats

    torch.manual_seed(0)
    model = tn.create_model("cnn", in_shape=(1, 8, 8), num_classes=10, widths=(16, 16, 32), hidden=64).eval()
    fused = fuse(model).model
    x = torch.randn(64, 1, 8, 8)
    stats = activation_stats(fused, x, samples=64)
    assert sorted(stats.sites) == ["0", "1", "3", "6"]  # three Conv2dAct and the LinearAct
    assert all(s.source == s.name and s.exact_zeros for s in stats.sites.values())
    res = prune(fused, x, PruneConfig(criterion="apoz", ratio=0.5, round_to=1, recalibrate_bn=False))
    assert {g.criterion for g in res.record.groups} == {"apoz"}  # ranked by the fused layers' own outputs
    assert res.model[0].out_channels == 8 and type(res.model[0]) is Conv2dAct
    with torch.inference_mode():
        assert res.model(x).shape == (64, 10)
