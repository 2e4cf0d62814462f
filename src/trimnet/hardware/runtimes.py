"""Runtimes a catalog device can be estimated under, with what each fuses and what it costs per call and layer.

``tensorrt`` builds one engine (norms, activations and residual adds folded into the
convolutions and matmuls, attention fused); ``triton`` serves such an engine and adds a
client round trip per request; ``torch-eager`` launches every layer as its own kernel from
Python; ``torch-compile`` fuses elementwise chains into generated kernels; ``onnxruntime``
(CUDA execution provider) fuses like its CPU graph. The overheads of runtimes with published
figures are fitted (``fitted.json``); the others are the defaults below, stated as assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

from trimnet.errors import ConfigError

_FUSE_ALL = frozenset({"norm", "activation", "simple_activation", "add", "free", "layernorm"})


@dataclass(frozen=True)
class Runtime:
    name: str
    fuses: frozenset[str]
    call_s: float  # per call, before fitting (host dispatch, synchronization, a request round trip)
    layer_s: float  # per executed layer, before fitting (launch + the shortest kernel)
    fused_attention: bool  # one kernel for softmax(QK^T)V rather than three
    about: str


RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("tensorrt", _FUSE_ALL, 20e-6, 3e-6, True, "TensorRT engine: norms, activations, residual adds and "
                                                      "layer norms fused; attention one kernel"),
    Runtime("triton", _FUSE_ALL, 1.0e-3, 3e-6, True, "a TensorRT engine behind Triton Inference Server: as "
                                                     "tensorrt plus a client request round trip"),
    Runtime("torch-eager", frozenset({"free"}), 50e-6, 15e-6, False, "PyTorch eager: every layer its own "
                                                                     "kernel launched from Python"),
    Runtime("torch-compile", frozenset({"norm", "activation", "simple_activation", "add", "free"}), 40e-6, 6e-6, True,
            "torch.compile: elementwise chains fused into generated kernels, CUDA graphs off"),
    Runtime("onnxruntime", frozenset({"norm", "simple_activation", "add", "free"}), 40e-6, 6e-6, False,
            "onnxruntime CUDA execution provider: BN folded, ReLU and adds fused into convolutions"),
)}
ALIASES = {"optimized": "tensorrt", "eager": "torch-eager"}  # the names estimate() took before runtimes had a registry


def get_runtime(name: str) -> Runtime:
    key = ALIASES.get(name, name)
    if key not in RUNTIMES:
        raise ConfigError(f"unknown runtime {name!r}; choose one of: {', '.join(RUNTIMES)}")
    return RUNTIMES[key]
