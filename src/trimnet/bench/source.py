"""What to measure: a module, an artifact (run directory) or an exported file, made uniform."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trimnet.errors import ConfigError


@dataclass
class Source:
    name: str
    in_shape: tuple[int, ...]
    example: torch.Tensor  # one batch of inputs; the batch sizes measured are tiled from it
    model: nn.Module | None = None  # None for an exported file: only ONNX-reading backends run it
    exported: Path | None = None  # model.onnx / model.xml given by the user
    meta: dict = field(default_factory=dict)

    def inputs(self, batch: int) -> np.ndarray:
        """``batch`` samples: the example's rows, repeated as needed."""
        reps = -(-batch // len(self.example))
        x = self.example.repeat(reps, *[1] * (self.example.dim() - 1))[:batch]
        return np.ascontiguousarray(x.numpy(), dtype=np.float32)

    def describe(self, flops_per_sample: float | None) -> dict:
        params = sum(p.numel() for p in self.model.parameters()) if self.model is not None else None
        return {"name": self.name, "input_shape": list(self.in_shape), "params": params,
                "flops_per_sample": flops_per_sample,
                "source": str(self.exported) if self.exported else self.meta.get("path")}


def resolve_source(model_or_path: Any, example_inputs: torch.Tensor | None = None, seed: int = 0) -> Source:
    """A ``Source`` from an ``nn.Module``, an ``Artifact``, a run directory or a .onnx / .xml file."""
    from trimnet.artifact import resolve_model

    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        if path.suffix in (".onnx", ".xml") and path.is_file():
            in_shape = _exported_shape(path) if example_inputs is None else tuple(example_inputs.shape[1:])
            return Source(name=path.stem, in_shape=in_shape, example=_example(example_inputs, in_shape, seed),
                          exported=path, meta={"path": str(path)})
    resolved = resolve_model(model_or_path, verb="benchmark", accepts="an nn.Module, a run directory or a .onnx / "
                                                                       ".xml file")
    model, art = resolved.module, resolved.artifact
    if example_inputs is None and resolved.in_shape is None:
        raise ConfigError(f"pass example_inputs: {type(model).__name__} does not record its input shape")
    in_shape = tuple(example_inputs.shape[1:]) if example_inputs is not None else resolved.in_shape
    if art is not None:
        return Source(name=art.name, in_shape=in_shape, example=_example(example_inputs, in_shape, seed),
                      model=model, meta={"path": str(art.path), "arch": art.meta.get("arch")})
    return Source(name=getattr(model, "arch", type(model).__name__), in_shape=in_shape,
                  example=_example(example_inputs, in_shape, seed), model=model)


def _example(example_inputs: torch.Tensor | None, in_shape: tuple[int, ...], seed: int) -> torch.Tensor:
    if example_inputs is not None:
        x = torch.as_tensor(example_inputs).float()
        if x.dim() < 1 or len(x) == 0:
            raise ConfigError(f"example_inputs must be a batch (B, *in_shape) with B >= 1; got shape {tuple(x.shape)}")
        return x.contiguous()
    return torch.randn((1, *in_shape), generator=torch.Generator().manual_seed(seed))


def _exported_shape(path: Path) -> tuple[int, ...]:
    """The input shape recorded in an export's trimnet metadata."""
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        shape = props.get("trimnet.input_shape")
    else:
        import openvino as ov

        model, key = ov.Core().read_model(str(path)), ["trimnet", "input_shape"]
        shape = model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None
    if not shape:
        raise ConfigError(f"{path} has no trimnet input shape in its metadata; pass example_inputs (--input-shape)")
    return tuple(json.loads(shape))
