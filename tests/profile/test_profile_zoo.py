"""The zoo at 224x224 and 1000 classes against the published MACs and parameter counts.

MACs here are conv + linear + matmul + attention multiply-accumulates, bias excluded:
torchvision's "GFLOPS" column and the papers' convention. Fake tensors keep these fast.
"""

from __future__ import annotations

import pytest
import torch

from trimnet.errors import ModelError
from trimnet.models import create_model, list_models
from trimnet.profile import profile

IMAGENET = (3, 224, 224)

# model: (MACs, params)
PUBLISHED = {
    "resnet18": (1_814_073_344, 11_689_512),
    "resnet34": (3_663_761_408, 21_797_672),
    "resnet50": (4_089_184_256, 25_557_032),
    "mobilenetv2": (300_774_272, 3_504_872),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_macs_and_params(name):
    macs, params = PUBLISHED[name]
    prof = profile(create_model(name, IMAGENET, 1000), input_shape=(1, *IMAGENET))
    assert prof.macs == macs
    assert prof.params == params
    assert prof.uncounted == {}
    assert prof.flops > 2 * prof.macs  # plus bias, norms, activations, pooling, adds


def _vgg16_macs_by_hand() -> int:
    """Configuration D: thirteen 3x3 convs ("same" padding) and three linears."""
    convs = [(3, 64, 224), (64, 64, 224), (64, 128, 112), (128, 128, 112), (128, 256, 56), (256, 256, 56),
             (256, 256, 56), (256, 512, 28), (512, 512, 28), (512, 512, 28), (512, 512, 14), (512, 512, 14),
             (512, 512, 14)]
    macs = sum(cout * size * size * cin * 9 for cin, cout, size in convs)
    return macs + 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000


def test_vgg16():
    prof = profile(create_model("vgg16", IMAGENET, 1000), input_shape=(1, *IMAGENET))
    assert prof.macs == _vgg16_macs_by_hand() == 15_470_264_320  # 15.47 G
    assert prof.params == 138_357_544


def test_bert_base_encoder_at_128_tokens():
    prof = profile(create_model("bert_base_encoder", (128, 768), 1000), input_shape=(1, 128, 768))
    encoder = prof.by_module(depth=1)["0"]
    # 12 x (128*12*768^2 + 2*128^2*768): four 768x768 projections and the 768x3072 MLP (12*768^2 per
    # token), plus Q K^T and P V
    assert encoder["macs"] == 12 * (128 * 12 * 768**2 + 2 * 128**2 * 768) == 11_173_625_856
    assert prof.macs == encoder["macs"] + 768 * 1000  # + the linear head on the token mean
    assert prof.params == 85_054_464 + 768 * 1000 + 1000
    assert prof.uncounted == {}


def test_macs_scale_with_batch():
    model = create_model("resnet18", IMAGENET, 1000)
    one = profile(model, input_shape=(1, *IMAGENET))
    eight = profile(model, input_shape=(8, *IMAGENET))
    assert eight.macs == 8 * one.macs and eight.flops == 8 * one.flops
    assert eight.per_sample()["macs"] == one.macs


# small inputs and options per zoo model (as in tests/models); a model not listed is tried
# on 1x8x8 images, then on 30 features
SMALL = {
    "mlp": ((30,), {}),
    "transformer": ((30,), {}),
    "text_transformer": ((16,), {"vocab_size": 50, "dim": 32, "heads": 4}),
    "bert_base_encoder": ((16, 48), {"depth": 2, "heads": 4}),
    "resnet18": ((3, 8, 8), {"width": 0.25}),
    "resnet34": ((1, 8, 8), {"width": 0.125}),
    "resnet50": ((3, 8, 8), {"width": 0.125}),
    "resnet20": ((3, 8, 8), {"width": 0.5}),
    "resnet56": ((3, 8, 8), {"width": 0.25}),
    "vgg16": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 2}),
    "vgg16_bn": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 1}),
    "mobilenetv2": ((3, 8, 8), {"width": 0.25}),
}
# the backward pass too for these (fake tensors' first backward of a new shape is slow; the
# formula and functional-twin tests cover conv, norm and pooling backward both ways)
TRAINING = {"mlp", "cnn", "transformer", "bert_base_encoder"}


def _small_model(name: str):
    tries = [SMALL[name]] if name in SMALL else [((1, 8, 8), {}), ((30,), {})]
    for in_shape, options in tries:
        try:
            return create_model(name, in_shape, 10, **options), in_shape
        except ModelError:
            continue
    pytest.skip(f"{name} builds on none of {[t[0] for t in tries]}; add it to SMALL")


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_counts_the_same_on_fake_and_real_tensors(name):
    model, in_shape = _small_model(name)
    x = torch.randn(2, *in_shape)
    for training in (False, True) if name in TRAINING else (False,):
        fake = profile(model, x, training=training, fake=True).to_dict()
        real = profile(model, x, training=training, fake=False).to_dict()
        assert (fake.pop("tensors"), real.pop("tensors")) == ("fake", "real")
        assert fake == real  # counts, bytes, peak memory, per layer and per operator
        assert fake["uncounted"] == {} and fake["macs"] > 0
