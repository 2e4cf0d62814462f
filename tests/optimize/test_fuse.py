"""Fusion passes: each pattern that must fuse, each that must not, and the numerical check."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trimnet as tn
from trimnet.models import SpecNet, from_spec, to_spec
from trimnet.models.layers import Residual
from trimnet.optimize.fuse import PASSES, FuseError, FusePass, fuse


def spec_net(*layers: dict, in_shape=(3, 8, 8)) -> SpecNet:
    torch.manual_seed(0)
    model = from_spec({"type": "sequential", "layers": list(layers)}, in_shape=in_shape, num_classes=4)
    randomize_bn(model)
    return model.eval()


def randomize_bn(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(n, generator=g) * 0.3)


def conv(cin, cout, k=3, padding=1, bias=False, groups=1, stride=1):
    return {"type": "conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k, "padding": padding,
            "bias": bias, "groups": groups, "stride": stride}


def bn2(n):
    return {"type": "batchnorm2d", "num_features": n}


def bn1(n):
    return {"type": "batchnorm1d", "num_features": n}


def linear(i, o, bias=True):
    return {"type": "linear", "in_features": i, "out_features": o, "bias": bias}


RELU, FLAT, POOL = {"type": "relu"}, {"type": "flatten"}, {"type": "adaptive_avgpool2d", "output_size": 1}


def types(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if not any(True for _ in m.children())]


def same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor, rtol: float = 1e-5) -> bool:
    with torch.inference_mode():
        ya, yb = a.eval()(x), b.eval()(x)
    return float((ya - yb).abs().max()) <= rtol * float(ya.abs().max())


def test_conv_bn_folds_and_stays_a_spec_model(tmp_path):
    model = spec_net(conv(3, 8), bn2(8), RELU, POOL, FLAT, linear(8, 4))
    before = copy.deepcopy(model.state_dict())
    res = fuse(model)
    fused = res.model
    assert type(fused) is SpecNet and fused.arch == model.arch
    assert "BatchNorm2d" not in types(fused) and types(model).count("BatchNorm2d") == 1
    assert to_spec(fused)["layers"][0]["bias"] is True  # the conv absorbed the BN's shift
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is intact
    x = torch.randn(5, 3, 8, 8)
    assert same_outputs(model, fused, x)
    change = res.record.passes[1].changes[0]
    assert change.kind == "fold" and change.layers == ["0", "1"] and change.into == "0" and "bias added" in change.what
    bn_pass = res.record.passes[1]
    assert sum(bn_pass.layers_before.values()) - sum(bn_pass.layers_after.values()) == 1
    assert types(fused)[0] == "Conv2dAct" and res.record.passes[3].changes[0].what.endswith("(relu)")
    assert res.record.check.passed and res.record.check.rel <= 1e-5
    # saved as a spec and rebuilt exactly
    tn.save_artifact(fused, tmp_path / "run", in_shape=(3, 8, 8), class_names=list("abcd"))
    art = tn.load_artifact(tmp_path / "run")
    assert art.meta["spec"] is not None and same_outputs(fused, art.model, x)


def test_linear_bn1d_folds():
    model = spec_net(FLAT, linear(48, 16), bn1(16), RELU, linear(16, 4), in_shape=(3, 4, 4))
    fused = fuse(model).model
    assert "BatchNorm1d" not in types(fused)
    assert same_outputs(model, fused, torch.randn(7, 3, 4, 4))


@pytest.mark.parametrize("between", [[], [FLAT], [POOL, FLAT]], ids=["bn1d-linear", "bn2d-flatten-linear",
                                                                       "bn2d-pool-flatten-linear"])
def test_bn_folds_forward_into_the_next_linear(between):
    if between:
        model = spec_net(conv(3, 6), RELU, bn2(6), *between, linear(6 if POOL in between else 6 * 64, 4))
        bn = "BatchNorm2d"
    else:
        model = spec_net(bn1(12), linear(12, 4), RELU, linear(4, 4), in_shape=(12,))
        bn = "BatchNorm1d"
    res = fuse(model)
    assert bn not in types(res.model)
    fold = res.record.passes[1].changes[0]
    assert "folded forward" in fold.what
    x = torch.randn(6, *model.in_shape)
    assert same_outputs(model, res.model, x)


@pytest.mark.parametrize("groups", [1, 2])
def test_bn_folds_forward_into_an_unpadded_conv(groups):
    model = spec_net(conv(3, 4), RELU, bn2(4), conv(4, 6, k=1, padding=0, bias=True, groups=groups), RELU, POOL, FLAT,
                     linear(6, 4))
    fused = fuse(model).model
    assert "BatchNorm2d" not in types(fused)
    assert same_outputs(model, fused, torch.randn(3, 3, 8, 8))


def test_bn_after_a_nonlinearity_with_a_padded_conv_next_is_not_folded():
    model = spec_net(conv(3, 4), RELU, bn2(4), conv(4, 4, padding=1), RELU, POOL, FLAT, linear(4, 4))
    res = fuse(model)
    assert types(res.model).count("BatchNorm2d") == 1
    reason = res.record.passes[1].skipped[0].reason
    assert "ReLU" in reason and "pads" in reason
    assert same_outputs(model, res.model, torch.randn(2, 3, 8, 8))


def test_bn_whose_input_feeds_a_residual_shortcut_is_not_folded():
    # conv -> Residual(body = bn, relu, conv; shortcut = identity): the conv's output is used twice
    block = {"type": "residual", "body": [bn2(4), RELU, conv(4, 4)]}
    model = spec_net(conv(3, 4), block, POOL, FLAT, linear(4, 4))
    res = fuse(model)
    assert types(res.model).count("BatchNorm2d") == 1
    assert any("shortcut" in s.reason for s in res.record.skipped)
    assert same_outputs(model, res.model, torch.randn(2, 3, 8, 8))


class SharedConvOutput(nn.Module):
    """A user module (not a spec): the conv output feeds both a BN and the residual add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        z = self.bn(y) + y
        z = F.relu(self.bn2(self.conv2(z)))
        return self.head(z.mean((2, 3)))


def test_fx_folds_a_user_module_but_not_a_bn_whose_input_is_shared():
    model = SharedConvOutput()
    randomize_bn(model)
    model.eval()
    x = torch.randn(3, 3, 8, 8)
    res = fuse(model, example_inputs=x)
    assert res.record.mode == "torch.fx" and isinstance(res.model, torch.fx.GraphModule)
    kinds = types(res.model)
    assert kinds.count("BatchNorm2d") == 1  # bn2 folded into conv2, bn kept
    assert [c.layers for c in res.record.changes] == [["conv2", "bn2"]]
    assert any(s.layer == "bn" and "(conv) is also used by add" in s.reason for s in res.record.skipped)
    assert same_outputs(model, res.model, x)
    assert isinstance(model.bn2, nn.BatchNorm2d)  # the original keeps its layers


def test_bn_with_batch_statistics_is_not_folded():
    model = spec_net(conv(3, 4), bn2(4), RELU, POOL, FLAT, linear(4, 4))
    model[1] = nn.BatchNorm2d(4, track_running_stats=False)
    res = fuse(model)
    assert types(res.model).count("BatchNorm2d") == 1
    assert "running statistics" in res.record.skipped[0].reason


def test_linear_chain_with_dropout_between_merges_into_one():
    model = spec_net(linear(16, 32), {"type": "dropout", "p": 0.3}, linear(32, 24), linear(24, 4, bias=False),
                     in_shape=(16,))
    res = fuse(model)
    assert types(res.model) == ["Linear"]
    assert res.model[0].in_features == 16 and res.model[0].out_features == 4
    assert [p.name for p in res.record.passes if p.changes] == ["drop_identity", "linear_merge"]
    assert len(res.record.passes[2].changes) == 2
    assert same_outputs(model, res.model, torch.randn(9, 16))


def test_linear_relu_linear_is_not_merged():
    model = spec_net(linear(16, 8), RELU, linear(8, 4), in_shape=(16,))
    res = fuse(model)
    assert types(res.model) == ["LinearAct", "Linear"]  # the ReLU fuses into the first linear, nothing merges
    assert [c.kind for c in res.record.changes] == ["fuse"]
    assert same_outputs(model, res.model, torch.randn(5, 16))


def test_a_bottleneck_is_not_merged():
    model = spec_net(linear(64, 4), linear(4, 64), RELU, linear(64, 4), in_shape=(64,))
    res = fuse(model)
    assert types(res.model).count("Linear") + types(res.model).count("LinearAct") == 3
    assert "bottleneck" in res.record.passes[2].skipped[0].reason


def test_conv_then_1x1_conv_merges_with_strides_multiplied():
    model = spec_net(conv(3, 8), bn2(8), conv(8, 6, k=1, padding=0, stride=2), RELU, POOL, FLAT, linear(6, 4),
                     in_shape=(3, 9, 9))
    res = fuse(model)
    convs = [m for m in res.model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].stride == (2, 2) and convs[0].out_channels == 6
    assert same_outputs(model, res.model, torch.randn(2, 3, 9, 9))


def test_1x1_conv_with_padding_is_not_merged():
    model = spec_net(conv(3, 8, bias=True), conv(8, 6, k=1, padding=1, bias=True), RELU, POOL, FLAT, linear(6, 4))
    res = fuse(model)
    assert types(res.model).count("Conv2d") + types(res.model).count("Conv2dAct") == 2
    assert "pads" in res.record.passes[2].skipped[0].reason


def test_dropout_and_identity_are_removed_and_counted():
    model = spec_net(linear(8, 8), {"type": "dropout", "p": 0.5}, RELU, {"type": "identity"}, linear(8, 4),
                     in_shape=(8,))
    res = fuse(model, passes=["drop_identity"])
    assert types(res.model) == ["Linear", "ReLU", "Linear"]
    rec = res.record.passes[0]
    assert rec.layers_before == {"Dropout": 1, "Identity": 1, "Linear": 2, "ReLU": 1}
    assert rec.layers_after == {"Linear": 2, "ReLU": 1} and [c.kind for c in rec.changes] == ["remove", "remove"]


def test_a_pass_that_changes_outputs_raises(monkeypatch):
    def broken(chain, log):
        for item in chain.items:
            if isinstance(item.module, nn.Linear):
                with torch.no_grad():
                    item.module.bias.add_(1.0)
        return chain.items

    monkeypatch.setitem(PASSES._items, "broken", FusePass("broken", "adds one to every bias", broken))
    with pytest.raises(FuseError, match="broken changed the model's outputs"):
        fuse(spec_net(linear(8, 4), in_shape=(8,)), passes=["broken"])


def test_unknown_pass_and_untraceable_model():
    with pytest.raises(tn.ConfigError, match="bn_fold"):
        fuse(spec_net(linear(8, 4), in_shape=(8,)), passes=["nope"])

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(FuseError, match="torch.fx cannot trace"):
        fuse(Branchy(), example_inputs=torch.randn(2, 4))


ZOO = [("cnn", (1, 8, 8), {"widths": (8, 8, 16), "hidden": 32}),
       ("mlp", (16,), {"hidden": (32, 16), "dropout": 0.1, "batchnorm": True}),
       ("lenet5", (1, 28, 28), {}),
       ("resnet18", (3, 32, 32), {"width": 0.125}),
       ("resnet50", (3, 32, 32), {"width": 0.125}),
       ("mobilenetv2", (3, 32, 32), {"width": 0.25}),
       ("vgg16_bn", (3, 32, 32), {"width": 0.125, "hidden": 32, "pool_size": 1}),
       ("transformer", (1, 8, 8), {"dim": 16, "depth": 1, "heads": 2})]


@pytest.mark.parametrize("name,shape,options", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_fuse_exactly(name, shape, options):
    torch.manual_seed(0)
    model = tn.create_model(name, shape, 10, **options)
    randomize_bn(model)
    model.eval()
    res = fuse(model)
    assert type(res.model) is SpecNet and "BatchNorm2d" not in types(res.model) and "Dropout" not in types(res.model)
    if any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        assert "BatchNorm1d" not in types(res.model)
    assert same_outputs(model, res.model, torch.randn(3, *shape))
    assert sum(res.record.layers_after.values()) <= sum(res.record.layers_before.values())


@pytest.mark.parametrize("name,shape,options", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_models_fused_run_exactly_on_the_onednn_kernels(name, shape, options, monkeypatch):
    from trimnet.models import fused as FU

    monkeypatch.setattr(FU, "ONEDNN_MIN_MACS_PER_CALL", 0)  # small test inputs: every eligible conv on oneDNN
    torch.manual_seed(0)
    model = tn.create_model(name, shape, 10, **options)
    randomize_bn(model)
    fused = fuse(model.eval()).model
    assert same_outputs(model, fused, torch.randn(3, *shape))
    convs = [m for m in fused.modules() if isinstance(m, FU.Conv2dAct) and m.kernel == "onednn"]
    assert all("_packed_weight" in m.__dict__ for m in convs)  # the oneDNN kernel did run


def test_fused_model_exports_and_passes_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    model = tn.create_model("cnn", (1, 8, 8), 10, widths=(8, 8, 16), hidden=32)
    randomize_bn(model)
    fused = fuse(model.eval()).model
    result = tn.export(fused, tmp_path / "model.onnx", torch.randn(2, 1, 8, 8))
    assert result.parity.passed and result.parity.precision == "f32"
