"""The formulas table: one entry per aten operator, returning ``(macs, flops)``.

``macs`` are the multiply-accumulates of conv, linear/matmul and attention products (bias
excluded); ``flops`` is all floating-point work, a multiply-accumulate counting 2. Every
number here is documented in docs/profiler.md; change them together.

A formula is called as ``f(*args, **kwargs, result=out)`` with the operator's own
arguments, so its signature reads like the aten schema (trailing defaults included).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

Count = tuple[int, int]
Formula = Callable[..., Count]

# aten operator name (the overload packet's, e.g. "convolution", "add_") -> formula. Names,
# not operator objects, so that importing this table resolves no operator schemas.
FORMULAS: dict[str, Formula] = {}


def formula(*names: str) -> Callable[[Formula], Formula]:
    def register(fn: Formula) -> Formula:
        for name in names:
            FORMULAS[name] = fn
        return fn

    return register


def numel(t: Any) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


def first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for v in value:
            if isinstance(v, torch.Tensor):
                return v
    return None


def _prod(xs) -> int:
    return math.prod(int(x) for x in xs)


def _is_float(*tensors: Any) -> bool:
    return any(isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex()) for t in tensors)


# ---------------------------------------------------------------- matrix products

def _mm_macs(a: torch.Tensor, b: torch.Tensor) -> int:
    # (..., m, k) @ (..., k, n): every output element is k multiply-accumulates
    return _prod(a.shape[:-1]) * b.shape[-1] * a.shape[-1]


@formula("mm", "bmm")
def _mm(a, b, *_, result=None, **__) -> Count:
    macs = _mm_macs(a, b)
    return macs, 2 * macs


@formula("addmm", "baddbmm")
def _addmm(bias, a, b, *_, result=None, **__) -> Count:
    macs = _mm_macs(a, b)
    return macs, 2 * macs + numel(result)  # + the bias add


@formula("_addmm_activation")
def _addmm_activation(bias, a, b, *_, use_gelu=False, result=None, **__) -> Count:
    macs = _mm_macs(a, b)
    return macs, 2 * macs + numel(result) * (1 + (GELU if use_gelu else 1))


@formula("mv", "dot", "vdot")
def _mv(a, b, *_, result=None, **__) -> Count:
    macs = a.numel() if a.dim() == 1 else a.shape[0] * a.shape[1]
    return macs, 2 * macs


@formula("addmv")
def _addmv(bias, a, v, *_, result=None, **__) -> Count:
    macs = a.shape[0] * a.shape[1]
    return macs, 2 * macs + numel(result)


@formula("linear")
def _linear(x, w, bias=None, *_, result=None, **__) -> Count:
    macs = _prod(x.shape[:-1]) * w.shape[0] * w.shape[-1]
    return macs, 2 * macs + (numel(result) if bias is not None else 0)


# ---------------------------------------------------------------- convolution

def conv_macs(x: torch.Tensor, w: torch.Tensor, out_shape, transposed: bool) -> int:
    """Multiply-accumulates of a (grouped, strided, dilated, transposed) convolution.

    Direct: every output element sums (C_in / groups) x kernel products, i.e.
    ``numel(out) * w.shape[1] * prod(kernel)``. Transposed: every *input* element is
    scattered through (C_out / groups) x kernel products, ``numel(x) * w.shape[1] * prod(kernel)``.
    """
    per = w.shape[1] * _prod(w.shape[2:])
    return (x.numel() if transposed else _prod(out_shape)) * per


@formula("convolution", "_convolution")
def _conv(x, w, bias, stride, padding, dilation, transposed, *_, result=None, **__) -> Count:
    macs = conv_macs(x, w, result.shape, bool(transposed))
    return macs, 2 * macs + (numel(result) if bias is not None else 0)


@formula("convolution_backward")
def _conv_backward(grad_out, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                   output_mask, *_, result=None, **__) -> Count:
    fwd = conv_macs(x, w, grad_out.shape, bool(transposed))
    macs = fwd * (int(output_mask[0]) + int(output_mask[1]))  # grad input, grad weight: one conv each
    bias = grad_out.numel() - grad_out.shape[1] if output_mask[2] else 0  # sum over all but channels
    return macs, 2 * macs + bias


# ---------------------------------------------------------------- attention

SOFTMAX = 5  # per element: max, subtract, exp, sum, divide
SCORE_FWD = 1 + SOFTMAX  # per attention score: scale, softmax
SCORE_BWD = 5  # per score: recompute exp (subtract, exp), dS = P * (dP - D) (subtract, multiply), scale


def _attn_shapes(q, k, v) -> tuple[int, int, int, int, int]:
    return _prod(q.shape[:-2]), q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]


@formula("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
         "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention",
         "_scaled_dot_product_fused_attention_overrideable", "_scaled_dot_product_attention_math")
def _sdpa(q, k, v, *_, result=None, **__) -> Count:
    batch, lq, lk, e, ev = _attn_shapes(q, k, v)
    scores = batch * lq * lk
    macs = scores * (e + ev)  # Q K^T, then P V
    return macs, 2 * macs + SCORE_FWD * scores


@formula("_scaled_dot_product_flash_attention_for_cpu_backward", "_scaled_dot_product_flash_attention_backward",
         "_scaled_dot_product_efficient_attention_backward", "_scaled_dot_product_cudnn_attention_backward",
         "_scaled_dot_product_fused_attention_overrideable_backward")
def _sdpa_backward(grad_out, q, k, v, *_, result=None, **__) -> Count:
    batch, lq, lk, e, ev = _attn_shapes(q, k, v)
    scores = batch * lq * lk
    # recompute Q K^T (e), dO V^T (ev), P^T dO (ev), dS K (e), dS^T Q (e)
    macs = scores * (3 * e + 2 * ev)
    return macs, 2 * macs + SCORE_BWD * scores + 2 * batch * lq * ev  # D = rowsum(dO * O)


def _mha_count(q, k, embed_dim: int, num_heads: int) -> tuple[int, int, int]:
    """(macs, bias adds, scores) of packed multi-head attention over (B, L, D) inputs."""
    b, lq, d = q.shape[0], q.shape[-2], embed_dim
    lk = k.shape[-2]
    proj = b * (lq + 2 * lk) * d * d + b * lq * d * d  # q, k, v projections, output projection
    scores = b * num_heads * lq * lk
    attn = scores * 2 * (d // num_heads)
    return proj + attn, b * (2 * lq + 2 * lk) * d, scores


@formula("_native_multi_head_attention")
def _native_mha(q, k, v, embed_dim, num_head, *_, result=None, **__) -> Count:
    macs, bias, scores = _mha_count(q, k, embed_dim, num_head)
    return macs, 2 * macs + bias + SCORE_FWD * scores


@formula("_transformer_encoder_layer_fwd")
def _encoder_layer(src, embed_dim, num_heads, qkv_w, qkv_b, proj_w, proj_b, use_gelu, norm_first, eps,
                   nw1, nb1, nw2, nb2, ffn_w1, ffn_b1, ffn_w2, ffn_b2, *_, result=None, **__) -> Count:
    macs, bias, scores = _mha_count(src, src, embed_dim, num_heads)
    tokens = src.numel() // embed_dim
    hidden = ffn_w1.shape[0]
    ffn = 2 * tokens * embed_dim * hidden
    flops = 2 * (macs + ffn) + bias + SCORE_FWD * scores
    flops += tokens * (hidden + embed_dim)  # ffn biases
    flops += tokens * hidden * (GELU if use_gelu else 1)  # activation
    flops += 2 * src.numel() * (1 + LAYER_NORM + 2)  # two residual adds, two affine layer norms
    return macs + ffn, flops


# ---------------------------------------------------------------- normalization

NORM_STATS = 2  # per element: sum and sum of squares
NORM_APPLY = 2  # per element: subtract the mean, multiply by 1/std
LAYER_NORM = NORM_STATS + NORM_APPLY


def _norm_flops(x, weight, bias, stats: bool) -> int:
    per = (NORM_STATS if stats else 0) + NORM_APPLY + (weight is not None) + (bias is not None)
    return x.numel() * per


@formula("native_batch_norm", "_native_batch_norm_legit", "cudnn_batch_norm", "miopen_batch_norm")
def _batch_norm(x, weight=None, bias=None, *rest, result=None, **__) -> Count:
    training = next((a for a in rest if isinstance(a, bool)), False)  # the first bool is `training`
    return 0, _norm_flops(x, weight, bias, training)


@formula("_native_batch_norm_legit_no_training")
def _batch_norm_eval(x, weight=None, bias=None, *_, result=None, **__) -> Count:
    return 0, _norm_flops(x, weight, bias, False)


@formula("native_layer_norm")
def _layer_norm(x, normalized_shape, weight=None, bias=None, *_, result=None, **__) -> Count:
    return 0, _norm_flops(x, weight, bias, True)


@formula("native_group_norm")
def _group_norm(x, weight=None, bias=None, *_, result=None, **__) -> Count:
    return 0, _norm_flops(x, weight, bias, True)


@formula("_fused_rms_norm")
def _rms_norm(x, normalized_shape, weight=None, *_, result=None, **__) -> Count:
    return 0, x.numel() * (2 + 1 + (weight is not None))  # square, sum; multiply by 1/rms; weight


def _norm_backward_flops(n: int, mask, stats: bool) -> int:
    need_xhat = mask[1] or (stats and mask[0])
    per = 2 * need_xhat + (mask[0] and (4 if stats else 1)) + 2 * bool(mask[1]) + bool(mask[2])
    return n * per


@formula("native_batch_norm_backward")
def _batch_norm_backward(grad_out, x, weight, rm, rv, sm, si, train, eps, output_mask, *_, result=None,
                         **__) -> Count:
    mask = (output_mask[0], output_mask[1] and weight is not None, output_mask[2] and weight is not None)
    return 0, _norm_backward_flops(x.numel(), mask, bool(train))


@formula("cudnn_batch_norm_backward", "miopen_batch_norm_backward")
def _cudnn_batch_norm_backward(x, *_, result=None, **__) -> Count:
    return 0, _norm_backward_flops(x.numel(), (True, True, True), True)


@formula("native_layer_norm_backward")
def _layer_norm_backward(grad_out, x, normalized_shape, mean, rstd, weight, bias, output_mask, *_, result=None,
                         **__) -> Count:
    mask = (output_mask[0], output_mask[1] and weight is not None, output_mask[2] and bias is not None)
    return 0, _norm_backward_flops(x.numel(), mask, True)


@formula("native_group_norm_backward")
def _group_norm_backward(grad_out, x, mean, rstd, weight, n, c, hw, group, output_mask, *_, result=None,
                         **__) -> Count:
    mask = (output_mask[0], output_mask[1] and weight is not None, output_mask[2] and weight is not None)
    return 0, _norm_backward_flops(x.numel(), mask, True)


# ---------------------------------------------------------------- softmax

@formula("_softmax", "_log_softmax", "_safe_softmax")
def _softmax(x, *_, result=None, **__) -> Count:
    return 0, SOFTMAX * x.numel()


@formula("_softmax_backward_data", "_log_softmax_backward_data")
def _softmax_backward(grad_out, *_, result=None, **__) -> Count:
    return 0, 4 * grad_out.numel()  # multiply, sum, subtract, multiply (log-softmax: sum, exp, multiply, subtract)


# ---------------------------------------------------------------- pooling

def _window(kernel_size, ndim: int) -> int:
    ks = list(kernel_size) if isinstance(kernel_size, (list, tuple)) else [kernel_size]
    return _prod(ks * ndim if len(ks) == 1 else ks)


def _pool(ndim: int) -> Formula:
    def count(x, kernel_size, *_, result=None, **__) -> Count:
        # max: a comparison per window element; average: adds and one divide per window
        return 0, numel(first_tensor(result)) * _window(kernel_size, ndim)

    return count


for _n in (1, 2, 3):
    for _name in (f"max_pool{_n}d", f"max_pool{_n}d_with_indices", f"avg_pool{_n}d"):
        formula(_name)(_pool(_n))


def _pool_backward(ndim: int, scatter: bool) -> Formula:
    def count(grad_out, x, kernel_size, *_, result=None, **__) -> Count:
        # max: each gradient is added once into its argmax; average: spread over the window
        return 0, grad_out.numel() * (1 if scatter else _window(kernel_size, ndim))

    return count


for _n in (2, 3):
    formula(f"max_pool{_n}d_with_indices_backward")(_pool_backward(_n, True))
    formula(f"avg_pool{_n}d_backward")(_pool_backward(_n, False))


def adaptive_window_sum(in_size: int, out_size: int) -> int:
    """Sum of adaptive pooling bin lengths along one dimension (bins may overlap)."""
    return sum(math.ceil((i + 1) * in_size / out_size) - (i * in_size) // out_size for i in range(out_size))


def adaptive_elements(x_shape, out_shape, ndim: int) -> int:
    """Input elements summed (or compared) by adaptive pooling over the last ``ndim`` dims."""
    lead = _prod(out_shape[:-ndim])
    return lead * _prod(adaptive_window_sum(x_shape[-d], out_shape[-d]) for d in range(1, ndim + 1))


def _adaptive(ndim: int, backward: bool) -> Formula:
    def count(a, b, *_, result=None, **__) -> Count:
        if backward:  # (grad_out, input)
            return 0, adaptive_elements(b.shape, a.shape, ndim)
        return 0, adaptive_elements(a.shape, first_tensor(result).shape, ndim)

    return count


for _n in (1, 2, 3):
    formula(f"_adaptive_avg_pool{_n}d", f"adaptive_max_pool{_n}d")(_adaptive(_n, False))
    formula(f"_adaptive_avg_pool{_n}d_backward")(_adaptive(_n, True))


@formula("adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward")
def _adaptive_max_backward(grad_out, *_, result=None, **__) -> Count:
    return 0, grad_out.numel()


# ---------------------------------------------------------------- reductions

def _reduction(per_input: int, minus_output: int = 0, per_output: int = 0) -> Formula:
    def count(x, *rest, result=None, **__) -> Count:
        if not _is_float(x):
            return 0, 0
        if rest and isinstance(rest[0], torch.Tensor):  # max(a, b), min(a, b): elementwise
            return 0, numel(first_tensor(result))
        out = numel(first_tensor(result))
        return 0, per_input * x.numel() - minus_output * out + per_output * out

    return count


formula("sum", "prod", "amax", "amin", "max", "min", "argmax", "argmin", "nansum")(_reduction(1, minus_output=1))
formula("mean", "nanmean", "cumsum", "cumprod")(_reduction(1))
formula("var", "var_mean")(_reduction(4))  # mean, subtract, square, sum (+ divide)
formula("std", "std_mean", "logsumexp")(_reduction(4, per_output=1))  # + sqrt / log per output
formula("linalg_vector_norm", "norm")(_reduction(2, per_output=1))  # square, sum; root per output

# ---------------------------------------------------------------- elementwise

GELU = 5  # 0.5 * x * (1 + erf(x / sqrt 2)): scale, erf, add, two multiplies
GELU_TANH = 9


def _elementwise(cost: int) -> Formula:
    def count(*args, result=None, **kwargs) -> Count:
        out = first_tensor(result)
        if out is None or not _is_float(out, *args):
            return 0, 0  # integer and boolean work is not floating-point work
        return 0, cost * out.numel()

    return count


def _gelu(x, *_, approximate="none", result=None, **__) -> Count:
    return 0, (GELU_TANH if approximate == "tanh" else GELU) * numel(result)


def _gelu_backward(grad_out, x, *_, approximate="none", result=None, **__) -> Count:
    return 0, (18 if approximate == "tanh" else 11) * numel(result)


formula("gelu", "gelu_")(_gelu)
formula("gelu_backward")(_gelu_backward)

# FLOPs per output element; an in-place twin (``add_``) counts the same.
ELEMENTWISE: dict[int, tuple[str, ...]] = {
    1: ("add", "sub", "rsub", "mul", "div", "neg", "abs", "relu", "relu6", "hardtanh", "threshold", "clamp",
        "clamp_min", "clamp_max", "maximum", "minimum", "fmax", "fmin", "leaky_relu", "_prelu_kernel", "exp",
        "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "reciprocal", "pow", "square", "sin",
        "cos", "tan", "tanh", "sigmoid", "erf", "erfc", "atan", "atan2", "sinh", "cosh", "floor", "ceil",
        "round", "trunc", "sign", "frac", "fmod", "remainder", "hardshrink", "softshrink", "eq", "ne", "lt",
        "le", "gt", "ge", "threshold_backward", "hardtanh_backward", "leaky_relu_backward",
        "hardsigmoid_backward"),
    2: ("addcmul", "addcdiv", "lerp", "silu", "glu", "native_dropout", "native_dropout_backward",
        "elu_backward"),
    3: ("elu", "celu", "softplus", "hardsigmoid", "log_sigmoid_forward", "sigmoid_backward", "tanh_backward",
        "softplus_backward", "hardswish_backward"),
    4: ("selu", "hardswish"),
    5: ("mish",),
    6: ("silu_backward",),
    7: ("upsample_bilinear2d", "_upsample_bilinear2d_aa"),  # 4 multiplies, 3 adds
}
for _cost, _names in ELEMENTWISE.items():
    _fn = _elementwise(_cost)
    formula(*_names, *(n + "_" for n in _names))(_fn)


def _per_source(cost: int, position: int) -> Formula:
    """``cost`` FLOPs per element of argument ``position`` (a gradient or source spread elsewhere)."""

    def count(*args, result=None, **__) -> Count:
        src = args[position]
        return 0, cost * src.numel() if _is_float(src) else 0

    return count


# gradients scattered back to inputs: one add per incoming gradient element (bilinear: 4 multiply-adds)
formula("embedding_dense_backward", "upsample_nearest1d_backward", "upsample_nearest2d_backward",
        "upsample_nearest3d_backward")(_per_source(1, 0))
formula("upsample_bilinear2d_backward")(_per_source(8, 0))
formula("scatter_add", "scatter_add_", "index_add", "index_add_")(_per_source(1, 3))  # one add per source element
POINTWISE_DEFAULT = 1  # any other op tagged pointwise: 1 FLOP per output element

# ---------------------------------------------------------------- no floating-point work

# Data movement, creation and selection: real bytes, no FLOPs. Listed so that they are not
# reported as uncounted.
ZERO_FLOP = frozenset((
    "clone", "copy", "copy_", "_to_copy", "cat", "stack", "empty", "empty_like", "empty_strided", "new_empty",
    "new_empty_strided", "zeros", "zeros_like", "new_zeros", "ones", "ones_like", "new_ones", "full",
    "full_like", "new_full", "fill", "fill_", "zero_", "scalar_tensor", "arange", "linspace", "randn", "rand",
    "randint", "randperm", "normal", "normal_", "uniform_", "index", "index_select", "gather", "take", "scatter",
    "scatter_", "index_put", "index_put_", "index_copy", "slice_scatter", "select_scatter", "diagonal_scatter",
    "as_strided_scatter", "select_backward", "slice_backward", "constant_pad_nd", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d", "replication_pad3d",
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact2d", "repeat",
    "roll", "flip", "tril", "triu", "embedding", "masked_scatter", "_local_scalar_dense", "nonzero",
    "masked_select", "_unique2", "unique_dim", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    "native_channel_shuffle", "logical_and", "logical_or", "logical_not", "bitwise_and", "bitwise_or",
    "bitwise_not", "set_", "resize_", "_reshape_copy", "im2col", "_assert_async", "_assert_tensor_metadata",
    "_functional_assert_async", "sym_constrain_range", "one_hot", "tensor_split", "split_with_sizes_copy",
    "unbind_copy", "_foreach_copy_", "bernoulli", "bernoulli_", "rand_like", "randn_like", "where", "masked_fill",
    "masked_fill_",
))

# Views that the schema does not mark as views: no bytes moved, no FLOPs.
VIEW_LIKE = frozenset(("_unsafe_view", "alias", "detach", "lift_fresh", "_reshape_alias", "lift",
                       "lift_fresh_copy"))

# Operators whose result depends on tensor values: the path through the model may too.
DATA_DEPENDENT = frozenset(("_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim",
                            "is_nonzero", "equal"))


def aten_name(func: Any) -> str | None:
    """``"add_"`` for ``aten.add_.Tensor``; None for operators outside the aten namespace."""
    return func._overloadpacket.__name__ if func.namespace == "aten" else None


def known(func: Any) -> bool:
    """Whether the table says what this operator does (a formula, or no floating-point work)."""
    name = aten_name(func)
    return func.is_view or name in FORMULAS or name in ZERO_FLOP or name in VIEW_LIKE


def count(func: Any, args: tuple, kwargs: dict, result: Any) -> Count | None:
    """``(macs, flops)`` of one operator call, or ``None`` when no formula covers it."""
    name = aten_name(func)
    fn = FORMULAS.get(name) if name is not None else None
    if fn is not None:
        macs, flops = fn(*args, **kwargs, result=result)
        return int(macs), int(flops)
    if func.is_view or name in ZERO_FLOP or name in VIEW_LIKE:
        return 0, 0
    if torch.Tag.pointwise in func.tags:
        return _elementwise(POINTWISE_DEFAULT)(*args, result=result)
    return None
