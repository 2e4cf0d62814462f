"""Conv and linear layers with their activation fused in: one computation step at inference.

``Conv2dAct`` is ``activation(conv(x))`` as one oneDNN primitive on CPU
(``torch.ops.mkldnn._convolution_pointwise``, the kernel ``torch.compile`` itself emits for
conv + activation on CPU): the activation runs on the conv's output while it is still in
cache, and one module call replaces two. ``LinearAct`` is ``activation(linear(x))`` with the
activation applied in place on the product.

The fused kernel runs only where it computes exactly what the two layers did and nothing
has to see the layers apart: plain float32 CPU tensors, no autograd, no tracing, export or
dispatch mode (the profiler, fake tensors). Everywhere else the layer runs as the conv (or
linear) followed by its activation, so ONNX export, ``torch.compile``, training and the
profiler see the ordinary operators. The weights are the conv's (or linear's) own, so the
layer saves in safetensors under the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trimnet.errors import ModelError


@dataclass(frozen=True)
class Activation:
    name: str
    module: type[nn.Module]
    attr: str  # oneDNN post-op name
    scalars: tuple[float, ...]
    algorithm: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    apply_: Callable[[torch.Tensor], torch.Tensor]  # in place, on a tensor nobody else holds

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        # in place saves an allocation, but autograd needs the product it would overwrite
        return self.apply(y) if y.requires_grad else self.apply_(y)


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


def _gelu_tanh(y: torch.Tensor) -> torch.Tensor:
    return F.gelu(y, approximate="tanh")


ACTIVATIONS: dict[str, Activation] = {a.name: a for a in [
    Activation("relu", nn.ReLU, "relu", (), "", torch.relu, torch.relu_),
    Activation("relu6", nn.ReLU6, "hardtanh", (0.0, 6.0), "", F.relu6, lambda y: y.clamp_(0.0, 6.0)),
    Activation("silu", nn.SiLU, "swish", (), "", F.silu, lambda y: F.silu(y, inplace=True)),
    Activation("gelu", nn.GELU, "gelu", (), "none", F.gelu, F.gelu),
    Activation("gelu_tanh", nn.GELU, "gelu", (), "tanh", _gelu_tanh, _gelu_tanh),
    Activation("sigmoid", nn.Sigmoid, "sigmoid", (), "", torch.sigmoid, torch.sigmoid_),
    Activation("tanh", nn.Tanh, "tanh", (), "", torch.tanh, torch.tanh_),
    # a conv with no activation after it still gains from the packed weight
    Activation("none", nn.Identity, "none", (), "", _identity, _identity),
]}


def activation_of(module: nn.Module) -> str | None:
    """The name under which ``module`` fuses as an activation, or None."""
    kind = type(module)
    if kind is nn.GELU:
        return "gelu" if module.approximate == "none" else "gelu_tanh"
    for a in ACTIVATIONS.values():
        if kind is a.module and a.name != "none":
            return a.name
    return None


def _activation(name: str) -> Activation:
    if name not in ACTIVATIONS:
        raise ModelError(f"unknown fused activation {name!r}; choose from: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


_HAS_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
_POINTWISE = torch.ops.mkldnn._convolution_pointwise.default if _HAS_ONEDNN else None


def _plain_inference(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """True where the fused kernel may run: float32 CPU inference with nobody watching the operators."""
    return (type(x) is torch.Tensor and x.dtype == torch.float32 and weight.dtype == torch.float32
            and x.device.type == "cpu" and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and torch._C._len_torch_dispatch_stack() == 0)


# oneDNN pays on convs with enough work per output value; below this many multiply-adds per
# output (a 3x3 conv over one channel, a depthwise 3x3) PyTorch's own kernel is faster:
# 10 us against 31 us for 1 -> 64 channels on 8x8 at batch 1 (2 threads, measured)
ONEDNN_MIN_MACS_PER_OUTPUT = 64
# and per call: oneDNN's fixed cost per call (~30 us here) loses to PyTorch's kernel on small
# work. Calls alone break even near 1.3 M multiply-adds at batch 1 on 2 threads (1.18 M: 0.80-0.92x,
# 1.33 M: 1.18x, 2.36 M: 1.17-1.33x), but inside a whole model each switch between oneDNN and
# PyTorch kernels costs too: the digits CNN at batch 1 (2.4 M and 1.2 M) ran 0.9-1.0x with its
# convs on oneDNN against 1.2x on PyTorch's kernels, so the bar sits above it. An input
# that is not in PyTorch's default layout came from a oneDNN layer (its outputs are channels-last):
# it stays with oneDNN, since PyTorch's kernel on channels-last input costs far more (137 against
# 41 us on the digits CNN's third conv)
ONEDNN_MIN_MACS_PER_CALL = 4_000_000


def _macs_per_output(conv: nn.Conv2d) -> int:
    return conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]


def kernel_for(conv: nn.Conv2d) -> str:
    """The kernel a conv fuses onto: ``"onednn"`` where it has the work per output value to pay for it."""
    return "onednn" if _macs_per_output(conv) >= ONEDNN_MIN_MACS_PER_OUTPUT else "native"


class Conv2dAct(nn.Conv2d):
    """``activation(conv2d(x))`` in one step; weights and bias are the conv's.

    ``kernel``: ``"onednn"`` runs the conv with the activation as its post-op on a weight
    packed once in oneDNN's blocked layout, on calls with enough work to pay oneDNN's fixed
    cost; ``"native"`` (and a small call) runs PyTorch's conv and the activation in place on
    its output. ``from_conv`` picks by the work per output value.
    """

    def __init__(self, *args, activation: str = "relu", kernel: str = "onednn", **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.padding, str) or self.padding_mode != "zeros":
            raise ModelError("Conv2dAct needs numeric zero padding")
        if kernel not in ("onednn", "native"):
            raise ModelError(f"unknown Conv2dAct kernel {kernel!r}; choose onednn or native")
        self.activation = _activation(activation).name
        self.kernel = kernel
        # multiply-adds per input position: times the batch and the input's height and width, the call's work
        self._macs_per_pixel = _macs_per_output(self) * self.out_channels / (self.stride[0] * self.stride[1])

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, activation: str, kernel: str | None = None) -> "Conv2dAct":
        new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
                  dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, device=conv.weight.device,
                  dtype=conv.weight.dtype, activation=activation, kernel=kernel or kernel_for(conv))
        new.load_state_dict(conv.state_dict())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.kernel == "onednn" and _HAS_ONEDNN and x.dim() == 4 and _plain_inference(x, self.weight)
                and (x.shape[0] * x.shape[2] * x.shape[3] * self._macs_per_pixel >= ONEDNN_MIN_MACS_PER_CALL
                     or not x.is_contiguous())):
            packed, args = self._packed()
            return _POINTWISE(x, packed, self.bias, *args)
        return ACTIVATIONS[self.activation](self._conv_forward(x, self.weight, self.bias))

    def _packed(self) -> tuple[torch.Tensor, tuple]:
        """The weight in oneDNN's blocked layout, packed once (again only when the weight changes).

        Unpacked, oneDNN reorders the weight on every call, which costs as much as the conv
        itself on small inputs; one packing serves every batch size.
        """
        w = self.weight
        key = (id(w), w.data_ptr(), w._version)
        cached = self.__dict__.get("_packed_weight")
        if cached is None or cached[0] != key:
            geometry = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(w.detach().to_mkldnn(), *geometry)
            act = ACTIVATIONS[self.activation]
            cached = self.__dict__["_packed_weight"] = (key, packed, (*geometry, act.attr, list(act.scalars),
                                                                       act.algorithm))
        return cached[1], cached[2]

    def __getstate__(self) -> dict:
        # the packed weight is a oneDNN tensor that cannot be copied or pickled; it is rebuilt on use
        return {k: v for k, v in super().__getstate__().items() if k != "_packed_weight"}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}, kernel={self.kernel}"


class LinearAct(nn.Linear):
    """``activation(linear(x))`` in one step; weight and bias are the linear's."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None,
                 activation: str = "relu"):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.activation = _activation(activation).name

    @classmethod
    def from_linear(cls, linear: nn.Linear, activation: str) -> "LinearAct":
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                  device=linear.weight.device, dtype=linear.weight.dtype, activation=activation)
        new.load_state_dict(linear.state_dict())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](F.linear(x, self.weight, self.bias))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation}"
