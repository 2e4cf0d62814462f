"""The model zoo: every registered model builds, runs and round-trips through its spec;
the classic architectures have their published parameter counts exactly."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trimnet.errors import ModelError
from trimnet.models import create_model, from_spec, list_models, to_spec

# A small input and options per model, to keep the file fast; a model not listed here is
# tried on 8x8 single-channel images with its defaults.
SMALL = {
    "mlp": ((30,), {}),
    "cnn": ((1, 8, 8), {}),
    "lenet5": ((1, 8, 8), {}),
    "resnet18": ((3, 8, 8), {"width": 0.25}),
    "resnet34": ((1, 8, 8), {"width": 0.125}),
    "resnet50": ((3, 8, 8), {"width": 0.125}),
    "resnet20": ((3, 8, 8), {"width": 0.5}),
    "resnet56": ((3, 8, 8), {"width": 0.25}),
    "vgg16": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 2}),
    "vgg16_bn": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 1}),
    "mobilenetv2": ((3, 8, 8), {"width": 0.25}),
    "transformer": ((30,), {}),
    "text_transformer": ((16,), {"vocab_size": 50, "dim": 32, "heads": 4}),
    "bert_base_encoder": ((16, 48), {"depth": 2, "heads": 4}),
}
DEFAULT_SMALL = ((1, 8, 8), {})
NUM_CLASSES = 7

# torchvision's parameter counts at 224x224 and 1000 classes (REFERENCE.md).
PUBLISHED_PARAMS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "mobilenetv2": 3_504_872,
}


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-default values, so equal outputs mean equal weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if t.dim() == 1 else
                        torch.randn(t.shape, generator=g) * 0.1)
    return model.eval()


def _small(name: str) -> tuple[tuple, dict]:
    return SMALL.get(name, DEFAULT_SMALL)


def test_zoo_has_every_family():
    assert {"mlp", "cnn", "lenet5", "resnet18", "resnet34", "resnet50", "resnet20", "resnet56", "vgg16",
            "mobilenetv2", "transformer", "bert_base_encoder"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_builds_runs_and_round_trips(name):
    in_shape, options = _small(name)
    torch.manual_seed(0)
    model = randomize(create_model(name, in_shape, NUM_CLASSES, **options))
    x = torch.randn(2, *in_shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()

    spec = json.loads(json.dumps(to_spec(model)))  # what model.json holds
    rebuilt = from_spec(spec).eval()
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()} == want
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), out, rtol=0, atol=0)
    assert to_spec(rebuilt) == spec


@pytest.mark.parametrize("name,expected", sorted(PUBLISHED_PARAMS.items()))
def test_parameter_counts_match_torchvision(name, expected):
    with torch.device("meta"):  # no memory, no init: counting shapes is all we need
        model = create_model(name, (3, 224, 224), 1000)
    assert all(p.is_meta for p in model.parameters())
    assert n_params(model) == expected


def test_cifar_resnets_use_option_b_shortcuts():
    with torch.device("meta"):
        r20 = create_model("resnet20", (3, 32, 32), 10)
        r56 = create_model("resnet56", (3, 32, 32), 10)
    # Option A (zero-padded identity) has 269,722 / 853,018; the two 1x1 conv + BN
    # projections add 16*32 + 64 + 32*64 + 128 = 2,752.
    assert n_params(r20) == 269_722 + 2_752
    assert n_params(r56) == 853_018 + 2_752


@pytest.mark.parametrize("in_shape,expected", [((1, 32, 32), 61_706), ((1, 28, 28), 61_706), ((1, 8, 8), 21_386)])
def test_lenet5_sizes(in_shape, expected):
    model = create_model("lenet5", in_shape, 10)
    assert n_params(model) == expected  # 61,706: the paper's LeNet-5 with a 10-way output
    assert model(torch.zeros(1, *in_shape)).shape == (1, 10)


def test_bert_base_encoder_has_bert_base_parameter_count():
    with torch.device("meta"):
        model = create_model("bert_base_encoder", (128, 768), 2)
    encoder = model[0]
    assert len(encoder) == 12
    assert all(n_params(block) == 7_087_872 for block in encoder)
    assert n_params(encoder) == 85_054_464


def test_transformer_patches_8x8_digits_into_16_tokens():
    model = create_model("transformer", (1, 8, 8), 10)
    assert model[0].kernel_size == (2, 2)
    pos = next(m for m in model if type(m).__name__ == "PositionEmbedding")
    assert pos.num_tokens == 16
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_vgg16_skips_pools_on_small_inputs_and_keeps_its_classifier():
    with torch.device("meta"):
        small = create_model("vgg16", (1, 8, 8), 1000)
        full = create_model("vgg16", (1, 224, 224), 1000)
    pools = [m for m in small if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 3  # 8 -> 4 -> 2 -> 1; the last two would go below 1x1
    assert sum(isinstance(m, nn.MaxPool2d) for m in full) == 5
    assert n_params(small) == n_params(full)
    tiny = create_model("vgg16", (3, 1, 1), 3, width=0.0625, hidden=8)
    assert tiny(torch.randn(2, 3, 1, 1)).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenetv2"])
def test_imagenet_nets_run_on_digits(name):
    model = create_model(name, (1, 8, 8), 10).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def _replace_conv(old: nn.Conv2d, keep_out: slice = slice(None), keep_in: slice = slice(None)) -> nn.Conv2d:
    w = old.weight.data[keep_out, keep_in]
    new = nn.Conv2d(w.shape[1], w.shape[0], old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    new.weight.data.copy_(w)
    if old.bias is not None:
        new.bias.data.copy_(old.bias.data[keep_out])
    return new


def _replace_bn(old: nn.BatchNorm2d, keep: slice) -> nn.BatchNorm2d:
    new = nn.BatchNorm2d(len(range(*keep.indices(old.num_features))))
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).data.copy_(getattr(old, name).data[keep])
    return new


def _assert_rebuilds(model: nn.Module, x: torch.Tensor) -> None:
    model.eval()  # the replacement BNs were made in training mode
    rebuilt = from_spec(json.loads(json.dumps(to_spec(model)))).eval()
    rebuilt.load_state_dict(model.state_dict())  # strict: any width mismatch raises
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)


def test_channels_pruned_in_place_round_trip():
    model = randomize(create_model("cnn", (1, 8, 8), 10))
    before = n_params(model)
    keep = slice(0, 32)
    model[0] = _replace_conv(model[0], keep_out=keep)
    model[1] = _replace_bn(model[1], keep)
    model[3] = _replace_conv(model[3], keep_in=keep)
    model.eval()  # the new BN was made in training mode
    x = torch.randn(4, 1, 8, 8)
    assert model(x).shape == (4, 10)
    layers = to_spec(model)["layers"]
    assert (layers[0]["out_channels"], layers[1]["num_features"], layers[3]["in_channels"]) == (32, 32, 32)
    assert n_params(model) < before
    _assert_rebuilds(model, x)


def test_pruned_residual_block_round_trips():
    """Pruning inside a nested residual body (resnet20, first block) is recorded too."""
    model = randomize(create_model("resnet20", (3, 8, 8), 10))
    block = model[3][0][0]  # stage 1, block 0, its residual
    keep = slice(0, 5)
    block.body[0] = _replace_conv(block.body[0], keep_out=keep)
    block.body[1] = _replace_bn(block.body[1], keep)
    block.body[3] = _replace_conv(block.body[3], keep_in=keep)
    body = to_spec(model)["layers"][3]["layers"][0]["layers"][0]["body"]
    assert (body[0]["out_channels"], body[1]["num_features"], body[3]["in_channels"]) == (5, 5, 5)
    _assert_rebuilds(model, torch.randn(2, 3, 8, 8))


def test_unknown_model_lists_the_registered_names():
    with pytest.raises(ModelError) as err:
        create_model("resnet-18", (3, 32, 32), 10)
    for name in list_models():
        assert name in str(err.value)


@pytest.mark.parametrize("name,in_shape,fragment", [
    ("resnet18", (30,), "(C, H, W)"),
    ("lenet5", (1, 3, 3), "4x4"),
    ("bert_base_encoder", (1, 8, 8), "(tokens, dim)"),
    ("transformer", (1, 8, 8), "multiple of heads"),
])
def test_bad_inputs_raise_model_error_naming_the_fix(name, in_shape, fragment):
    options = {"heads": 5} if name == "transformer" else {}
    with pytest.raises(ModelError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        create_model(name, in_shape, 10, **options)
