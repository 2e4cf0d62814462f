"""One small interface for every runtime: load a model, run a batch, describe what ran.

A backend is a registry entry (``BACKENDS``) that turns a PyTorch module, or its ONNX
export, into a ``Runner``. ``load_runner`` is the one way in: it checks the backend can
run here, exports to ONNX when the backend needs it, and checks the runner's outputs
against eager PyTorch before handing it out.

The entry also carries what the rest of trimnet asks of a backend, so that a new backend
is one ``register_backend`` call (in its own file, listed in ``_BACKEND_MODULES``): the
files it runs and the ``ExportFormat`` that writes them (``trimnet export``), the layer
roles it fuses on its own (``hardware`` estimates), its ``CalibrationPlan`` (what
``hardware calibrate`` measures), the packages whose versions a calibration records, and
the precisions it runs.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import inspect
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trimnet.errors import ConfigError, require
from trimnet.precision import Precision
from trimnet.registry import Registry
from trimnet.runtime.errors import BackendUnavailableError

# the modules that register backends, imported on first use so that `import trimnet` stays cheap
_BACKEND_MODULES = ("torch_eager", "torch_compile", "ort", "ov")


class Runner(abc.ABC):
    """A model loaded on one runtime. ``run`` maps float32 ``(B, *in_shape)`` to ``(B, classes)``.

    Benchmarks time ``call(prepare(x))`` instead: the input converted once to what the
    runtime takes (a torch tensor on its device, a contiguous array), outputs left in the
    runtime's own types, so the figure is the runtime's and not that of numpy conversions.
    """

    backend: str = ""
    precision: str = Precision.FP32.element  # the precision that actually runs, in the runtime's spelling ("f32")
    parity: dict | None = None  # set by load_runner after its check

    @abc.abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """One batch of any size B through the model; numpy in, numpy out."""

    def prepare(self, x: np.ndarray) -> Any:
        """``x`` in the form ``call`` takes; done once per batch, outside what is timed."""
        return np.ascontiguousarray(x, dtype=np.float32)

    def call(self, prepared: Any) -> Any:
        """One prepared batch through the runtime, outputs not converted (complete on return)."""
        return self.run(prepared)

    @abc.abstractmethod
    def describe(self) -> dict:
        """What ran: backend, device, threads, precision, versions, options."""

    def close(self) -> None:
        """Release sessions and compiled programs (they hold memory and threads)."""

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# (model, exported, example_inputs, **options) -> Runner; ``exported`` is the file an
# ONNX-reading backend loads (model.onnx, or model.xml for openvino), None for the others
Loader = Callable[..., Runner]
# (model, path, example_inputs, *, opset, precision, metadata) -> the path written
Writer = Callable[..., Path]


@dataclass(frozen=True)
class ExportFormat:
    """A file format trimnet exports to (``trimnet export --format NAME``) and backends run."""

    name: str  # "onnx", "openvino"
    suffix: str  # ".onnx", ".xml": how a path names the format
    write: Writer
    summary: str = ""
    precisions: tuple[Precision, ...] = (Precision.FP32,)  # what its weights may be stored as
    companions: tuple[str, ...] = ()  # suffixes of the files written beside it (".bin")
    checked_on: tuple[str, ...] = ()  # backends that run the parity check of an export, the first usable wins


@dataclass(frozen=True)
class CalibrationPlan:
    """What ``trimnet hardware calibrate`` measures for a backend.

    ``measure``: "kernels" times PyTorch's own kernels (an eager runtime), "graph" times
    one-operator ONNX graphs through the backend's runner, "overhead" times only the call
    overhead and borrows the kernels of ``borrows`` (torch.compile). ``dtypes`` pairs each
    calibrated dtype with the runner options that make the backend run it.
    """

    measure: str = "kernels"
    dtypes: tuple[tuple[Precision, dict], ...] = ((Precision.FP32, {}),)
    device: str = "cpu"  # the calibration device ("cpu" or "cuda") it belongs to
    by_default: bool = True  # False: only when named (``--backends``)
    borrows: str | None = None  # "overhead": the series whose kernels it runs ("torch/fp32")


@dataclass(frozen=True)
class Backend:
    name: str
    summary: str
    load: Loader
    requires: tuple[tuple[str, str], ...] = ()  # (module, pip extra) pairs
    unavailable: Callable[[], str | None] = lambda: None  # why it cannot run here, or None
    reads: tuple[str, ...] = ()  # exported file suffixes it runs (".onnx", ".xml"); empty: runs the module
    export: str | None = None  # the ExportFormat a deployment to it is written in; None: it runs the module
    fuses: frozenset[str] = frozenset()  # layer roles it folds into their neighbours (``hardware.roofline``)
    calibration: CalibrationPlan | None = None  # None: ``hardware calibrate`` does not measure it
    versions: tuple[str, ...] = ()  # packages whose versions a calibration's machine record holds
    precisions: tuple[Precision, ...] = (Precision.FP32,)  # precisions it runs (lowered by ``quantize``)

    @property
    def runs_file(self) -> bool:
        """Runs an exported file (made from the module when none is given) rather than the module."""
        return bool(self.reads)

    @property
    def uses_onnx(self) -> bool:
        """Runs ONNX files: one ONNX export serves every such backend."""
        return ".onnx" in self.reads

    @property
    def options(self) -> list[str]:
        """The options ``load_runner`` passes on to this backend (its loader's keyword-only arguments)."""
        params = inspect.signature(self.load).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def missing_dependency(self) -> str | None:
        for module, extra in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install 'trimnet[{extra}]')"
        return None

    def why_not(self) -> str | None:
        """None when this backend can run here, else the reason it cannot."""
        return self.missing_dependency() or self.unavailable()


BACKENDS: Registry[Backend] = Registry("backend", ConfigError)
FORMATS: Registry[ExportFormat] = Registry("export format", ConfigError)


def register_backend(backend: Backend) -> Backend:
    BACKENDS.register(backend.name)(backend)
    return backend


def register_format(fmt: ExportFormat) -> ExportFormat:
    FORMATS.register(fmt.name)(fmt)
    return fmt


def _load_backends() -> None:
    importlib.import_module("trimnet.runtime.export")  # registers the onnx format every graph runtime reads
    for name in _BACKEND_MODULES:
        importlib.import_module(f"trimnet.runtime.{name}")


def all_backends() -> list[Backend]:
    """Every registered backend, usable here or not, in the order they were registered."""
    _load_backends()
    return [BACKENDS.get(name) for name in BACKENDS.registered()]


def export_formats() -> list[ExportFormat]:
    """Every registered export format, in the order they were registered."""
    _load_backends()
    return [FORMATS.get(name) for name in FORMATS.registered()]


def get_format(name: str) -> ExportFormat:
    """An export format by name; a backend's name gives the format a deployment to it is written in."""
    _load_backends()
    if name in FORMATS:
        return FORMATS.get(name)
    names = ", ".join(FORMATS.registered())
    if name in BACKENDS:
        backend = BACKENDS.get(name)
        if backend.export is not None:
            return FORMATS.get(backend.export)
        raise ConfigError(f"backend {name!r} runs the PyTorch module itself: there is no file to export for it "
                          f"(export formats: {names})")
    raise ConfigError(f"unknown export format {name!r}; choose one of: {names}")


def format_of(path: str | Path) -> ExportFormat | None:
    """The export format a file's suffix names, or None."""
    suffix = Path(path).suffix
    return next((f for f in export_formats() if f.suffix == suffix), None)


def backend_status() -> dict[str, str | None]:
    """Every known backend -> None when usable here, else why not."""
    _load_backends()
    return {name: BACKENDS.get(name).why_not() for name in BACKENDS.names()}


def list_backends() -> list[str]:
    """The backends that can run on this machine with what is installed."""
    return [name for name, why in backend_status().items() if why is None]


def get_backend(name: str) -> Backend:
    _load_backends()
    if name not in BACKENDS:
        status = backend_status()
        usable = ", ".join(n for n, why in status.items() if why is None) or "(none)"
        others = "; ".join(f"{n}: {why}" for n, why in status.items() if why is not None)
        hint = f" (not usable here: {others})" if others else ""
        raise ConfigError(f"unknown backend {name!r}; installed: {usable}{hint}")
    return BACKENDS.get(name)


def load_runner(backend: str, model: nn.Module | None, example_inputs: torch.Tensor, *, check: bool = True,
                inputs: torch.Tensor | None = None, exported: str | Path | None = None, **options: Any) -> Runner:
    """Load ``model`` on ``backend`` and check its outputs against eager PyTorch.

    ``example_inputs`` is one batch of the model's inputs; ``inputs`` adds real samples to the
    parity check; ``exported`` (a ``model.onnx``, or ``model.xml`` for openvino) reuses an
    export of ``model`` instead of making one. ``options`` go to the backend (``threads``,
    ``precision``, ``hint``, ...; see ``Backend.options``). A runner that disagrees with
    PyTorch raises ``ParityError``.
    """
    spec = get_backend(backend)
    for module, extra in spec.requires:
        require(module, extra)
    why = spec.unavailable()
    if why is not None:
        usable = ", ".join(list_backends())
        raise BackendUnavailableError(f"backend {backend!r} cannot run here: {why}; usable: {usable}")
    _check_options(spec, options)
    if model is None and not (spec.runs_file and exported is not None):
        raise ConfigError(f"backend {backend!r} needs the PyTorch model" if not spec.runs_file
                          else f"backend {backend!r} needs a model or an exported file (exported=...)")
    if exported is not None and Path(exported).suffix not in spec.reads:
        raise ConfigError(f"backend {backend!r} cannot read {Path(exported).name}; it reads "
                          f"{', '.join(spec.reads) or 'PyTorch modules only'}")
    example_inputs = torch.as_tensor(example_inputs).float()
    if spec.runs_file and exported is None:
        from trimnet.runtime.export import DEFAULT_OPSET

        fmt = format_of(f"model{spec.reads[0]}")  # the first file kind it reads: ONNX for the graph runtimes
        if fmt is None:
            raise ConfigError(f"backend {backend!r} reads {spec.reads[0]} files but no export format writes them; "
                              "pass exported=...")
        with tempfile.TemporaryDirectory(prefix="trimnet-") as tmp:
            path = fmt.write(model, Path(tmp) / f"model{fmt.suffix}", example_inputs, opset=DEFAULT_OPSET,
                             precision=Precision.FP32.element, metadata=None)
            runner = spec.load(model, path, example_inputs, **options)
    else:
        runner = spec.load(model, Path(exported) if exported is not None else None, example_inputs, **options)
    if check and model is not None:
        from trimnet.runtime.parity import check_parity, real_inputs

        cases = [(f"example batch {len(example_inputs)}", example_inputs), *real_inputs(inputs)]
        try:
            runner.parity = check_parity(model, runner.run, cases, runtime=backend,
                                         precision=runner.precision).to_dict()
        except BaseException:
            runner.close()
            raise
    return runner


def _check_options(spec: Backend, options: dict) -> None:
    known = spec.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"backend {spec.name!r} has no option {', '.join(unknown)}; "
                          f"its options: {', '.join(known) or '(none)'}")
