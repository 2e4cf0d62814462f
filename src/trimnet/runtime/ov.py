"""OpenVINO on CPU: reads ONNX or IR, with an explicit precision hint and a latency or throughput hint.

OpenVINO's CPU plugin lowers f32 models to bf16 by default where the CPU has bf16
instructions, so ``precision`` defaults to an explicit ``f32`` and the runner reports the
precision the compiled model actually runs (``default`` leaves the choice to OpenVINO).
With ``hint="throughput"`` OpenVINO runs several streams; a batch is split across that
many infer requests run in parallel, which is how a throughput configuration is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.precision import Precision
from trimnet.runtime.backend import Backend, CalibrationPlan, ExportFormat, Runner, register_backend, register_format
from trimnet.runtime.export import export_openvino_file

# the inference precisions OpenVINO's CPU plugin takes, in its spelling (fp32 / f32 both accepted)
RUNS = (Precision.FP32, Precision.BF16, Precision.FP16)
PRECISIONS = (*(p.element for p in RUNS), "default")
HINTS = ("latency", "throughput")


class OpenVINORunner(Runner):
    def __init__(self, path: Path, *, device: str, threads: int | None, precision: str, hint: str):
        import openvino as ov

        if precision != "default":
            try:
                precision = Precision.parse(precision).element
            except ValueError:
                pass  # refused just below, with the choices
        if precision not in PRECISIONS:
            raise ConfigError(f"unknown openvino precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        if hint not in HINTS:
            raise ConfigError(f"unknown openvino hint {hint!r}; choose one of: {', '.join(HINTS)}")
        core = ov.Core()
        config: dict = {"PERFORMANCE_HINT": hint.upper()}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision != "default":
            config["INFERENCE_PRECISION_HINT"] = precision
        self._compiled = core.compile_model(core.read_model(str(path)), device, config)
        self.backend = "openvino"
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self._request = self._compiled.create_infer_request()
        jobs = int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        # plain requests, started and waited on here: an AsyncInferQueue runs a Python callback on OpenVINO's
        # threads, and dropping the queue could then hang for good (its destructor waiting on a thread that
        # waits for the interpreter lock; seen in the test suite with openvino 2026.4.1)
        self._queue = ([self._compiled.create_infer_request() for _ in range(jobs)]
                       if hint == "throughput" and jobs > 1 else None)
        self._info = {
            "device": device.lower(), "device_name": core.get_property(device, "FULL_DEVICE_NAME"),
            "precision_requested": precision, "hint": hint,
            "threads": int(self._compiled.get_property("INFERENCE_NUM_THREADS")),
            "streams": int(self._compiled.get_property("NUM_STREAMS")), "infer_requests": jobs if self._queue else 1,
            "versions": {"openvino": ov.get_version()},
        }

    def run(self, x: np.ndarray) -> np.ndarray:
        out = self.call(self.prepare(x))
        if isinstance(out, list):
            return np.concatenate(out)
        return self._request.get_output_tensor(0).data.copy()  # the request reuses its buffer

    def call(self, x: np.ndarray):
        """Latency: one infer request. Throughput: the batch split over the parallel requests."""
        if self._queue is None or len(x) == 1:
            return self._request.infer(x, share_inputs=True)
        parts = np.array_split(x, min(len(x), len(self._queue)))
        requests = self._queue[:len(parts)]
        for request, part in zip(requests, parts):
            request.start_async(part, share_inputs=True)
        for request in requests:
            request.wait()
        return [request.get_output_tensor(0).data.copy() for request in requests]

    def describe(self) -> dict:
        return {"backend": self.backend, "precision": self.precision, **self._info}

    def close(self) -> None:
        self._queue = None
        self._request = None
        self._compiled = None


def _load(model: nn.Module | None, exported: Path, example_inputs: torch.Tensor, *, threads: int | None = None,
          precision: str = Precision.FP32.element, hint: str = "latency", device: str = "CPU") -> OpenVINORunner:
    return OpenVINORunner(exported, device=device, threads=threads, precision=precision, hint=hint)


register_format(ExportFormat("openvino", ".xml", export_openvino_file, "OpenVINO IR (model.xml + model.bin)",
                             precisions=(Precision.FP32, Precision.FP16),  # f16: weights stored as f16 in the IR
                             companions=(".bin",), checked_on=("openvino",)))
register_backend(Backend(
    "openvino", "OpenVINO on CPU (reads ONNX or IR)", _load, requires=(("openvino", "openvino"),),
    reads=(".onnx", ".xml"), export="openvino", fuses=frozenset({"norm", "activation", "simple_activation", "add", "free"}),
    calibration=CalibrationPlan("graph", ((Precision.FP32, {"precision": Precision.FP32.element}),
                                          (Precision.BF16, {"precision": Precision.BF16.element}))),
    versions=("openvino",), precisions=(*RUNS, Precision.INT8)))
