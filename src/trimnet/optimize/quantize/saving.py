"""A quantized model in a run directory, and the runner that loads it back.

The run directory is an ordinary one (``model.safetensors`` + ``model.json``: the fused
fp32 model, so every PyTorch tool still works) with the lower-precision model beside it,
named by a ``runtime_model`` entry in ``model.json``::

    "runtime_model": {"backend": "openvino", "file": "model_int8.xml", "precision": "int8",
                      "format": "openvino-ir", "options": {"precision": "f32"}}

``file`` is absent for PyTorch (the bf16/fp16 weights are the safetensors themselves).
Readers that do not know the entry load the fp32 model, as before; ``load_quantized``
loads what the entry names.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from trimnet.errors import ArtifactError

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.optimize.quantize.method import Candidate
    from trimnet.optimize.quantize.result import QuantizeResult

RECORD = "quantize.json"
# the name model.json has always given a format where it differs from the export format's own
STORED_FORMAT = {"openvino": "openvino-ir"}


def file_set(file: Path) -> list[Path]:
    """``file`` and the files its format writes beside it (model.xml: model.bin)."""
    from trimnet.runtime.backend import format_of

    fmt = format_of(file)
    return [file, *(file.with_suffix(s) for s in (fmt.companions if fmt else ()))]


def stored_format(file: Path) -> str:
    from trimnet.runtime.backend import format_of

    fmt = format_of(file)
    name = fmt.name if fmt else file.suffix.lstrip(".")
    return STORED_FORMAT.get(name, name)


def open_candidate(candidate: "Candidate", baseline: bool, fp32_model: nn.Module | None, in_shape: tuple[int, ...],
                   threads: int | None = None):
    """A runner for the candidate (or for its fp32 baseline) on its backend, without a parity check."""
    from trimnet.runtime import get_backend, load_runner

    backend = get_backend(candidate.backend)
    options = dict(candidate.baseline_options if baseline else candidate.options)
    if threads is not None and "threads" in backend.options:
        options["threads"] = threads
    file = candidate.baseline_file if baseline else candidate.file
    module = (candidate.baseline_module or fp32_model) if baseline else candidate.module
    example = torch.zeros((1, *in_shape))
    return load_runner(candidate.backend, module if file is None else None, example, check=False, exported=file,
                       **options)


def save_result(result: "QuantizeResult", out: str | Path) -> Path:
    """Write the kept model (and the fp32 fused model beside it) into run directory ``out``."""
    from trimnet.artifact import save_artifact, write_json
    from trimnet.models.spec import is_describable
    from trimnet.optimize.quantize.result import saved_name

    c = result.candidate
    if c is None or result.fp32_model is None:
        raise ArtifactError("this QuantizeResult holds no model to save (it was loaded from JSON)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = result.source or {}
    lowered = result.kept == result.precision
    runtime: dict = {"backend": c.backend, "precision": result.kept,
                     "options": dict(c.options if lowered else c.baseline_options)}
    model = result.fp32_model
    file = c.file if lowered else c.baseline_file
    if file is not None:
        name = saved_name(result, file)
        for src in file_set(file):
            shutil.copyfile(src, out / (name if src == file else Path(name).with_suffix(src.suffix).name))
        runtime.update(file=name, format=stored_format(file))
    elif lowered:
        inner = c.module.model  # LowPrecision wrapper: save the cast weights as the spec's safetensors
        model = inner if is_describable(inner) else c.module
    extra = {k: v for k, v in info.get("meta", {}).items() if k in ("data", "kind")}
    extra.update(runtime_model=runtime, quantized_from=info.get("path"),
                 quantize={"precision": result.precision, "backend": result.backend, "kept": result.kept,
                           "summary": result.summary()})
    metrics = {"test_accuracy": result.accuracy_after if lowered else result.accuracy_before,
               "test_accuracy_fp32": result.accuracy_before, f"test_accuracy_{result.precision}": result.accuracy_after,
               "speedup": result.speedup if result.latency else None}
    save_artifact(model, out, in_shape=info["in_shape"], class_names=info["class_names"],
                  normalization=info.get("normalization"), metrics=metrics, extra=extra)
    result.path = out
    write_json(out / RECORD, result.to_dict())
    return out


def runtime_model(run_dir: str | Path) -> dict | None:
    """The ``runtime_model`` entry of a run directory's model.json (None for a plain run)."""
    from trimnet.artifact import META, read_json

    meta = read_json(Path(run_dir) / META)
    return meta.get("runtime_model") if isinstance(meta, dict) else None


def load_quantized(run_dir: str | Path, *, threads: int | None = None):
    """A runner for the model a run directory's ``runtime_model`` names (fp32 PyTorch for a plain run)."""
    from trimnet.artifact import load_artifact
    from trimnet.optimize.quantize.torch_lowp import DTYPES, LowPrecision
    from trimnet.runtime import get_backend, load_runner

    art = load_artifact(run_dir)
    entry = art.meta.get("runtime_model") or {"backend": "torch", "precision": "fp32"}
    backend = entry.get("backend", "torch")
    options = dict(entry.get("options") or {})
    if threads is not None and "threads" in get_backend(backend).options:
        options["threads"] = threads
    example = art.example_inputs(1)
    if entry.get("file"):
        file = art.path / entry["file"]
        if not file.is_file():
            raise ArtifactError(f"{file} is missing; model.json names it as the {entry.get('precision')} model "
                                "to run; quantize the model again")
        return load_runner(backend, None, example, check=False, exported=file, **options)
    model = art.model
    if entry.get("precision") in DTYPES:
        model = LowPrecision(model, DTYPES[entry["precision"]]).eval()
    return load_runner(backend, model, example, check=False, **options)
