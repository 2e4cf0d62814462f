"""Export to ONNX (torch.onnx dynamo exporter) and OpenVINO IR, each followed by a parity check.

The formats are registry entries (``ExportFormat`` in ``backend.py``): ONNX is registered
here, OpenVINO IR by the openvino backend; ``export`` asks the registry for the writer, the
precisions, the files written and the backend that checks them.

The ONNX file has a dynamic batch dimension named ``batch``, an explicit opset, and the
model's metadata (trimnet version, input shape, class names, normalization) in
``metadata_props``; the OpenVINO IR is converted from that ONNX file and carries the same
metadata in its ``rt_info`` under ``trimnet``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from trimnet.errors import ConfigError, require
from trimnet.precision import Precision
from trimnet.runtime.backend import ExportFormat, export_formats, format_of, get_format, register_format
from trimnet.runtime.errors import ExportError
from trimnet.runtime.parity import ParityReport, check_parity, eval_mode, random_inputs, real_inputs

DEFAULT_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "logits"


@dataclass
class ExportResult:
    path: Path
    format: str
    precision: str
    opset: int
    parity: ParityReport
    metadata: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def files(self) -> list[Path]:
        return [self.path, *(self.path.with_suffix(s) for s in get_format(self.format).companions)]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "files": [str(f) for f in self.files], "format": self.format,
                "precision": self.precision, "opset": self.opset, "seconds": round(self.seconds, 3),
                "metadata": self.metadata, "parity": self.parity.to_dict()}


def export(
    model: Any,
    path: str | Path,
    example_inputs: torch.Tensor | None = None,
    *,
    format: str | None = None,
    opset: int = DEFAULT_OPSET,
    precision: str | Precision = Precision.FP32.element,
    inputs: torch.Tensor | None = None,
    dataset: Any = None,
    class_names: Sequence[str] | None = None,
    normalization: Any = None,
    metadata: dict | None = None,
) -> ExportResult:
    """Export ``model`` (an ``nn.Module``, an ``Artifact`` or a run directory) to ``path`` and check it against PyTorch.

    An ``OptimizeResult`` exports its winner as it ships (an int8 winner's own file) and
    returns the path written.

    The format follows ``format`` (a format or a backend name) or the suffix of ``path``
    (``.onnx``, ``.xml``); a directory gets ``model.onnx`` / ``model.xml``. ``precision`` is
    recorded in the runtime's spelling (``f32``, ``f16``) whichever spelling is given. The check runs seeded random inputs and the real
    ones given as ``inputs`` or ``dataset`` (its test split); a failure raises ``ParityError``.
    """
    from trimnet.artifact import resolve_model

    if hasattr(model, "shipped") and hasattr(model, "export"):  # an OptimizeResult: export what ships
        return model.export(path, example_inputs)
    start = time.perf_counter()
    art = resolve_model(model).artifact
    if art is not None:
        model = art.model
        class_names = class_names or art.class_names
        normalization = normalization if normalization is not None else art.normalization
        example_inputs = example_inputs if example_inputs is not None else art.example_inputs(2)
        metadata = {"arch": art.meta.get("arch"), **(metadata or {})}
    from trimnet.models.families import as_module

    model = as_module(model, dataset, example_inputs)
    if dataset is not None:
        class_names = class_names or dataset.class_names
        normalization = normalization if normalization is not None else dataset.normalization
    example_inputs = _example(model, example_inputs)
    fmt, path = resolve_path(path, format)
    spec = get_format(fmt)
    allowed = ", ".join(p.element for p in spec.precisions)
    try:
        wanted = Precision.parse(precision)
    except ValueError:
        wanted = None
    if wanted not in spec.precisions:
        raise ConfigError(f"{fmt} export supports precision {allowed}; got {precision!r}")
    precision = wanted.element  # recorded as it always was: f32, f16
    meta = build_metadata(model, tuple(example_inputs.shape[1:]), class_names, normalization,
                          {"precision": precision, **(metadata or {})})
    spec.write(model, path, example_inputs, opset=opset, precision=precision, metadata=meta)
    checks = random_inputs(example_inputs.shape[1:], model=model) + real_inputs(inputs, dataset)
    report = check_file(model, path, checks, precision=precision)
    return ExportResult(path=path, format=fmt, precision=precision, opset=opset, parity=report, metadata=meta,
                        seconds=time.perf_counter() - start)


def resolve_path(path: str | Path, format: str | None) -> tuple[str, Path]:
    """(format, file path) from a file or directory path and an optional format name."""
    path = Path(path)
    asked = get_format(format) if format is not None else None
    found = format_of(path)
    if found is not None:
        if asked is not None and found.name != asked.name:
            raise ConfigError(f"{path} has the suffix of {found.name} but the format is {format}; "
                              f"name it model{asked.suffix}")
        return found.name, path
    if path.suffix and not path.is_dir():
        names = " or ".join(f.suffix for f in export_formats())
        raise ConfigError(f"cannot tell the format of {path}; use a {names} name, or pass a directory")
    fmt = asked or ONNX
    return fmt.name, path / f"model{fmt.suffix}"


def build_metadata(model: nn.Module, in_shape: tuple[int, ...], class_names: Sequence[str] | None,
                   normalization: Any, extra: dict | None) -> dict[str, str]:
    from trimnet import __version__

    norm = normalization.to_dict() if hasattr(normalization, "to_dict") else normalization
    meta: dict[str, Any] = {"version": __version__, "input_shape": list(in_shape), "input_name": INPUT_NAME,
                            "arch": getattr(model, "arch", type(model).__name__)}
    if class_names is not None:
        meta["class_names"] = list(class_names)
    if norm is not None:
        meta["normalization"] = norm
    meta.update({k: v for k, v in (extra or {}).items() if v is not None})
    return {f"trimnet.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def export_onnx_file(model: nn.Module, path: str | Path, example_inputs: torch.Tensor, *, opset: int = DEFAULT_OPSET,
                     metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` as ONNX with a dynamic batch dimension; no parity check (``export`` does that)."""
    require("onnx", "onnx")
    require("onnxscript", "onnx")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = example_inputs if len(example_inputs) >= 2 else example_inputs.repeat(2, *[1] * (example_inputs.dim() - 1))
    # batch 1 would be specialized as a constant by torch.export; trace at 2 and leave it free
    batch = torch.export.Dim("batch", min=1)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > 1_500_000_000
    with eval_mode(model), _quiet_exporter():
        try:
            program = torch.onnx.export(model, (x[:2],), dynamo=True, opset_version=opset, verbose=False,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes=({0: batch},), external_data=large)
        except Exception as exc:  # the exporter raises many types; the user needs the operator it names
            raise ExportError(export_failure(model, exc, opset)) from None
    program.model.metadata_props.update(metadata or {})
    if large:  # weights beside the graph: several files, written in place
        program.save(str(path), external_data=True)
        return path
    from trimnet.files import atomic_path

    with atomic_path(path) as tmp:  # never a truncated model.onnx (full disk, kill)
        program.save(str(tmp))
    return path


def write_onnx(model: nn.Module, path: str | Path, example_inputs: torch.Tensor, *, opset: int = DEFAULT_OPSET,
               precision: str | Precision = Precision.FP32, metadata: dict[str, str] | None = None) -> Path:
    """``export_onnx_file`` as an ``ExportFormat`` writer (ONNX weights are stored as f32)."""
    return export_onnx_file(model, path, example_inputs, opset=opset, metadata=metadata)


ONNX = register_format(ExportFormat("onnx", ".onnx", write_onnx, "ONNX with a dynamic batch dimension",
                                    checked_on=("onnxruntime", "openvino")))


def export_openvino_file(model: nn.Module, path: str | Path, example_inputs: torch.Tensor, *,
                         opset: int = DEFAULT_OPSET, precision: str | Precision = Precision.FP32,
                         metadata: dict[str, str] | None = None) -> Path:
    """Write OpenVINO IR (``.xml`` + ``.bin``) converted from the ONNX export; no parity check."""
    ov = require("openvino", "openvino")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="trimnet-") as tmp:
        onnx_path = export_onnx_file(model, Path(tmp) / "model.onnx", example_inputs, opset=opset, metadata=metadata)
        try:
            ov_model = ov.convert_model(str(onnx_path))
        except Exception as exc:  # openvino's frontends raise their own types; keep the op they name
            raise ExportError(f"OpenVINO cannot convert the ONNX export of {type(model).__name__}: "
                              f"{_first_lines(str(exc), 3)}") from None
        for key, value in (metadata or {}).items():
            ov_model.set_rt_info(value, key.split("."))
        from trimnet.files import save_openvino_ir

        save_openvino_ir(ov, ov_model, path, compress_to_fp16=Precision.parse(precision) is Precision.FP16)
    return path


def check_file(model: nn.Module, path: str | Path, checks: Sequence[tuple[str, torch.Tensor]], *,
               precision: str = Precision.FP32.element) -> ParityReport:
    """Check an exported file against ``model`` on ``checks`` (label, inputs); raises ``ParityError``.

    The file runs on the first usable backend of its format's ``checked_on``: OpenVINO IR on
    openvino; ONNX on onnxruntime, the reference ONNX runtime (or on openvino where
    onnxruntime is not installed).
    """
    from trimnet.runtime.backend import get_backend

    path = Path(path)
    fmt = format_of(path)
    if fmt is None or not fmt.checked_on:
        raise ConfigError(f"no backend checks {path.name} files; export to one of: "
                          f"{', '.join(f.name for f in export_formats() if f.checked_on)}")
    runtime = next((n for n in fmt.checked_on if get_backend(n).why_not() is None), fmt.checked_on[0])
    backend = get_backend(runtime)
    for module, extra in backend.requires:
        require(module, extra)
    with backend.load(None, path, checks[0][1]) as runner:
        return check_parity(model, runner.run, checks, runtime=f"{runtime} ({path.name})", precision=precision)


def export_failure(model: nn.Module, exc: BaseException, opset: int) -> str:
    """A one-line reason an export failed, naming the operator when the exporter does."""
    text = "\n".join(str(e) for e in _chain(exc))
    name = type(model).__name__
    op = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)'", text) \
        or re.search(r"target=torch\.ops\.([\w.]+?)(?:\.default)?\]?\(", text) \
        or re.search(r"Unsupported FX nodes: \{'call_function': \['([^']+)'", text)
    if op:
        return (f"cannot export {name} to ONNX: operator {op.group(1)} has no ONNX translation at opset {opset}; "
                "replace it with supported operators or raise the opset (--opset)")
    summary = text.split("## Exception summary", 1)[-1]
    return f"cannot export {name} to ONNX: {_first_lines(summary, 2)}"


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _first_lines(text: str, n: int) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("⬆")]
    return " ".join(lines[:n])[:500]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter and its optimizer log every pass and warn about optional packages; keep that quiet."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example(model: nn.Module, example_inputs: torch.Tensor | None) -> torch.Tensor:
    if example_inputs is not None:
        return torch.as_tensor(example_inputs).float()
    if hasattr(model, "sample_inputs"):
        return model.sample_inputs(2, torch.Generator().manual_seed(0))
    in_shape = getattr(model, "in_shape", None)
    if not in_shape:
        raise ConfigError(f"pass example_inputs: {type(model).__name__} does not record its input shape")
    return torch.randn((2, *in_shape), generator=torch.Generator().manual_seed(0))
