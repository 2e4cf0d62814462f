"""Every registered model, pruned by half: still runs, really smaller, exports with parity, reloads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import trimnet as tn
from trimnet.models import create_model, list_models
from trimnet.optimize.prune import PruneConfig, prune
from trimnet.profile import profile

pytest.importorskip("torch_pruning")

# Small inputs and widths (at least 16 channels where it matters) keep each model to seconds.
SMALL = {
    "mlp": ((30,), {}),
    "transformer": ((30,), {"dim": 32, "heads": 4}),
    "text_transformer": ((16,), {"vocab_size": 50, "dim": 32, "heads": 4}),
    "bert_base_encoder": ((16, 48), {"depth": 2, "heads": 4}),
    "resnet18": ((3, 8, 8), {"width": 0.25}),
    "resnet34": ((1, 8, 8), {"width": 0.25}),
    "resnet50": ((3, 8, 8), {"width": 0.125}),
    "resnet20": ((3, 8, 8), {"width": 0.5}),
    "resnet56": ((3, 8, 8), {"width": 0.5}),
    "vgg16": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 2}),
    "vgg16_bn": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 1}),
    "mobilenetv2": ((3, 8, 8), {"width": 0.25}),
}
QUICK = {"cnn", "lenet5", "mlp", "transformer", "vgg16"}  # the others (ONNX export of deep nets) are slow
# The share of parameters and MACs at most kept at ratio 0.5: a layer between two pruned
# layers keeps a quarter, one next to the input or output half. BERT's encoder width is its
# input's (no embedding layer), so only heads and MLP widths shrink there.
KEPT = {"bert_base_encoder": 0.55}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _trained_looking(model: nn.Module) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in QUICK else pytest.mark.slow)
                                  for n in list_models()])
def test_zoo_model_pruned_by_half(name, tmp_path):
    in_shape, options = SMALL.get(name, ((1, 8, 8), {}))
    torch.manual_seed(0)
    model = _trained_looking(create_model(name, in_shape, 5, **options))
    x = torch.randn((32, *in_shape), generator=torch.Generator().manual_seed(2))
    before = profile(model, x[:1])
    res = prune(model, x, PruneConfig(criterion="apoz", ratio=0.5, round_to=1))
    pruned = res.model
    after = profile(pruned, x[:1])

    limit = KEPT.get(name, 0.40)
    assert _params(pruned) <= limit * _params(model), res.record.summary()
    assert after.macs <= limit * before.macs, res.record.summary()
    assert res.record.macs == (before.macs, after.macs) and res.record.params[1] == _params(pruned)
    with torch.no_grad():
        y = pruned(x[:3])
    assert y.shape == (3, 5) and torch.isfinite(y).all()

    run = tn.save_artifact(pruned, tmp_path / "run", in_shape=in_shape, class_names=list("abcde"))
    art = tn.load_artifact(run)
    assert art.meta["spec"] == tn.to_spec(pruned)
    with torch.no_grad():
        assert torch.allclose(art.model(x[:3]), y, atol=1e-6)

    pytest.importorskip("onnxruntime")
    from trimnet.runtime import export

    result = export(pruned, tmp_path / "model.onnx", x[:2])
    assert result.parity.passed, result.parity.summary()
