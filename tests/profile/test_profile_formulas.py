"""Every formula against a tiny net whose MACs and FLOPs are worked out by hand.

Each case is run with fake tensors and with real ones: the counts must be identical.
The arithmetic in the comments is the formula table of docs/profiler.md.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trimnet.profile import profile
from trimnet.profile.formulas import adaptive_window_sum


class Fn(nn.Module):
    """A module whose forward is a plain function: the functional calls are the test."""

    def __init__(self, fn, *params: nn.Parameter):
        super().__init__()
        self.fn = fn
        self.ps = nn.ParameterList(params)

    def forward(self, *xs):
        return self.fn(*xs, *self.ps)


def _w(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape))


# name, module factory, input shapes, expected MACs, expected FLOPs
CASES = [
    # out (2,8,4,4)=256 elements x (C_in/groups=2) x 3x3 kernel = 4608 MACs; + 256 bias adds
    ("conv_grouped_strided_dilated", lambda: nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=2, groups=2),
     [(2, 4, 9, 9)], 4608, 2 * 4608 + 256),
    # depthwise: out (1,6,5,5)=150 x 1 x 9
    ("conv_depthwise", lambda: nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), [(1, 6, 5, 5)], 1350, 2700),
    # transposed: every input element (100) x (C_out/groups=3) x 9; bias over out (1,6,11,11)=726
    ("conv_transposed_grouped", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), [(1, 4, 5, 5)],
     2700, 5400 + 726),
    # conv1d: out (2,4,8)=64 x 3 x 3
    ("conv1d", lambda: nn.Conv1d(3, 4, 3, padding=1, bias=False), [(2, 3, 8)], 576, 1152),
    # leading dims: 2*3 rows x 5 x 7; bias over 42 outputs
    ("linear_leading_dims", lambda: nn.Linear(5, 7), [(2, 3, 5)], 210, 420 + 42),
    ("linear_no_bias", lambda: nn.Linear(5, 7, bias=False), [(4, 5)], 140, 280),
    # (2,3,4) @ (4,5): 6 rows x 4 x 5
    ("matmul_at", lambda: Fn(lambda x, w: x @ w, _w(4, 5)), [(2, 3, 4)], 120, 240),
    ("torch_matmul", lambda: Fn(lambda x, w: torch.matmul(x, w), _w(4, 5)), [(2, 3, 4)], 120, 240),
    # broadcast batch: (2,1,3,4) @ (5,4,6) -> (2,5,3,6) x 4
    ("matmul_broadcast", lambda: Fn(lambda x, w: x @ w, _w(5, 4, 6)), [(2, 1, 3, 4)], 720, 1440),
    ("bmm", lambda: Fn(lambda a, b: torch.bmm(a, b)), [(2, 3, 4), (2, 4, 6)], 144, 288),
    ("einsum", lambda: Fn(lambda a, b: torch.einsum("bij,bjk->bik", a, b)), [(2, 3, 4), (2, 4, 6)], 144, 288),
    ("mv", lambda: Fn(lambda a, v: torch.mv(a, v)), [(3, 4), (4,)], 12, 24),
    # attention: 2*3 heads x 5 queries x 7 keys = 210 scores x (8 + 8); + scale and softmax (6) per score
    ("sdpa", lambda: Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
     [(2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 8)], 3360, 2 * 3360 + 6 * 210),
    # norms: elements x (statistics 2 if computed, normalize 2, weight 1, bias 1)
    ("layer_norm", lambda: nn.LayerNorm(6), [(2, 4, 6)], 0, 48 * 6),
    ("layer_norm_plain", lambda: nn.LayerNorm(6, elementwise_affine=False), [(2, 4, 6)], 0, 48 * 4),
    ("batch_norm_eval", lambda: nn.BatchNorm2d(3), [(2, 3, 4, 4)], 0, 96 * 4),
    ("group_norm", lambda: nn.GroupNorm(2, 4), [(2, 4, 3, 3)], 0, 72 * 6),
    # pooling: output elements x window
    ("max_pool", lambda: nn.MaxPool2d(3, stride=2, padding=1), [(1, 2, 8, 8)], 0, 32 * 9),
    ("avg_pool", lambda: nn.AvgPool2d(2), [(1, 2, 8, 8)], 0, 32 * 4),
    # 7 -> 3 bins of 3 each way: 9 x 9 per channel
    ("adaptive_avg_pool", lambda: nn.AdaptiveAvgPool2d(3), [(1, 2, 7, 7)], 0, 2 * 81),
    # global pooling is a mean: one per input element
    ("global_avg_pool", lambda: nn.AdaptiveAvgPool2d(1), [(1, 2, 7, 7)], 0, 98),
    ("mean", lambda: Fn(lambda x: x.mean(dim=1)), [(2, 8)], 0, 16),
    # elementwise, per element: add 1, relu 1, gelu 5, silu 2, hardswish 4, softmax 5
    ("residual_add", lambda: Fn(lambda x: x + x * 2), [(2, 8)], 0, 32),
    ("relu", lambda: nn.ReLU(), [(2, 8)], 0, 16),
    ("relu6", lambda: nn.ReLU6(), [(2, 8)], 0, 16),
    ("gelu", lambda: nn.GELU(), [(2, 8)], 0, 80),
    ("gelu_tanh", lambda: nn.GELU(approximate="tanh"), [(2, 8)], 0, 9 * 16),
    ("silu", lambda: nn.SiLU(), [(2, 8)], 0, 32),
    ("hardswish", lambda: nn.Hardswish(), [(2, 8)], 0, 64),
    ("softmax", lambda: nn.Softmax(dim=-1), [(2, 5)], 0, 50),
    ("log_softmax", lambda: nn.LogSoftmax(dim=-1), [(2, 5)], 0, 50),
]


@pytest.mark.parametrize("fake", [True, False], ids=["fake", "real"])
@pytest.mark.parametrize("name,make,shapes,macs,flops", CASES, ids=[c[0] for c in CASES])
def test_formula_by_hand(name, make, shapes, macs, flops, fake):
    torch.manual_seed(0)
    model = make()
    inputs = tuple(torch.randn(s) for s in shapes)
    prof = profile(model, inputs, fake=fake)
    assert (prof.macs, prof.flops) == (macs, flops)
    assert prof.uncounted == {}


def test_attention_math_path_has_the_same_macs():
    # value width != key width sends CPU attention down the math path (mul, bmm, softmax, bmm)
    model = Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v))
    shapes = [(2, 3, 5, 8), (2, 3, 7, 8), (2, 3, 7, 4)]
    fake = profile(model, tuple(torch.randn(s) for s in shapes))
    real = profile(model, tuple(torch.randn(s) for s in shapes), fake=False)
    assert fake.macs == real.macs == 210 * (8 + 4)
    assert fake.flops == real.flops
    assert fake.uncounted == {}


def test_batch_norm_training_counts_statistics():
    # training: statistics (2) + normalize (2) + weight and bias (2) per element
    prof = profile(nn.BatchNorm2d(3), torch.randn(2, 3, 4, 4), training=True)
    assert prof.flops == 96 * 6


def test_linear_backward_is_counted_from_real_operators():
    model = nn.Sequential(nn.Linear(5, 7), nn.Linear(7, 3))
    prof = profile(model, torch.randn(4, 5), training=True)
    second, first = prof.layers[1], prof.layers[0]
    # second layer: grad input (4x3x7) and grad weight (7x4x3) products, bias grad sums 3 rows of 3
    assert (second.backward_macs, second.backward_flops) == (168, 2 * 168 + 9)
    # first layer: its input needs no gradient, so only grad weight (5x4x7) and the bias sum
    assert (first.backward_macs, first.backward_flops) == (140, 2 * 140 + 21)
    assert prof.backward_macs == 308


def test_conv_backward_skips_input_gradient_of_first_layer():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.Conv2d(4, 4, 3, bias=False))
    prof = profile(model, torch.randn(1, 2, 8, 8), training=True)
    c1, c2 = prof.layers
    assert c1.macs == 36 * 4 * 2 * 9 and c2.macs == 16 * 4 * 4 * 9
    assert c1.backward_macs == c1.macs  # weight gradient only
    assert c2.backward_macs == 2 * c2.macs  # input and weight gradients


@pytest.mark.parametrize("in_size,out_size,expected", [(7, 3, 9), (8, 4, 8), (5, 3, 7), (4, 8, 8)])
def test_adaptive_bins(in_size, out_size, expected):
    assert adaptive_window_sum(in_size, out_size) == expected


@pytest.mark.parametrize("fake", [True, False], ids=["fake", "real"])
def test_fused_attention_fast_paths_match_the_unfused_ops(fake):
    # eval + no grad runs the fused kernels (_native_multi_head_attention,
    # _transformer_encoder_layer_fwd); training runs linears, bmm and softmax: the same MACs.
    # MHA, N=2, L=5, D=32, 4 heads: q,k,v,out projections 4 x 10 x 32^2 = 40960;
    # Q K^T and P V: 2 x (2*4 heads x 5 x 5 scores) x 8 = 3200
    class SelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(32, 4, batch_first=True)

        def forward(self, x):
            return self.mha(x, x, x, need_weights=False)[0]

    mha = SelfAttention()
    layer = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True, dropout=0.0)
    x = torch.randn(2, 5, 32)
    for model, macs in ((mha, 44160), (layer, 44160 + 2 * 10 * 32 * 64)):
        inference = profile(model, x, fake=fake)
        training = profile(model, x, training=True, fake=fake)
        assert inference.macs == training.macs == macs
        assert inference.uncounted == {} and training.uncounted == {}
        fused = "aten._transformer_encoder_layer_fwd" if model is layer else "aten._native_multi_head_attention"
        assert fused in inference.operators and fused not in training.operators  # the fused kernel did run
