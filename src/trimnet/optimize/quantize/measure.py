"""The three things measured for every candidate: parity with fp32, test accuracy, and speed against fp32.

Speed is measured interleaved (fp32, candidate, fp32, candidate, ...) on the same backend
with the same threads (``trimnet.bench.compare``), so the ratio survives a noisy machine.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trimnet.optimize.quantize.config import QuantizeConfig
from trimnet.precision import Precision
from trimnet.optimize.quantize.method import Candidate
from trimnet.optimize.quantize.result import Latency
from trimnet.runtime.parity import Tolerance, check_parity, random_inputs

# Lower precisions are held against fp32 PyTorch on real test samples. bf16/fp16 use the
# runtime's max-abs tolerances (trimnet.runtime.parity) and random inputs too. INT8 errors
# are not uniform (a few logits move by a quantization step of their layer), so a max-abs
# bound is brittle there; INT8 must keep the signal-to-quantization-noise ratio
# SQNR = 10 log10(sum ref^2 / sum (ref - out)^2) above a floor, as torchao's tests do.
# Measured on the digits CNN: NNCF static 30 dB, onnxruntime static 21 dB, dynamic 43 dB;
# a broken graph (wrong layout, lost scale) lands near 0 dB.
MIN_SQNR_DB = {"int8": 15.0, "int8-dynamic": 20.0}
# the parity tolerance each method's outputs are held to (int8 is held to its SQNR floor instead)
PARITY_NAMES = {"bf16": Precision.BF16.element, "fp16": Precision.FP16.element, "int8": Precision.FP32.element,
                "int8-dynamic": Precision.FP32.element}


def sqnr_db(reference: np.ndarray, output: np.ndarray) -> float:
    ref = reference.astype(np.float64)
    noise = float(((ref - output.astype(np.float64)) ** 2).sum())
    signal = float((ref ** 2).sum())
    return float("inf") if noise == 0 else 10.0 * np.log10(max(signal, 1e-300) / noise)


def parity(fp32: nn.Module, run: Callable[[np.ndarray], np.ndarray], precision: str, real: torch.Tensor,
           runtime: str) -> tuple[dict, bool, str]:
    """(report, passed, one-line summary) of the candidate's outputs against fp32 PyTorch; never raises."""
    cases = [(f"test batch {len(real)}", real)]
    if precision not in MIN_SQNR_DB:
        cases = random_inputs(real.shape[1:], model=fp32) + cases
    report = check_parity(fp32, run, cases, runtime=runtime, precision=PARITY_NAMES[precision],
                          tolerance=None if precision not in MIN_SQNR_DB else Tolerance(0.0, 0.0), strict=False)
    with torch.inference_mode():
        ref = fp32.eval()(real).float().numpy()
    sqnr = sqnr_db(ref, np.asarray(run(np.ascontiguousarray(real.numpy(), dtype=np.float32))))
    out = {**report.to_dict(), "sqnr_db": sqnr}
    if precision in MIN_SQNR_DB:
        floor = MIN_SQNR_DB[precision]
        out.update(passed=sqnr >= floor, min_sqnr_db=floor, criterion=f"SQNR >= {floor:g} dB on real samples")
        out.pop("tolerance", None)
        out["cases"] = [{k: v for k, v in case.items() if k not in ("limit", "passed")} for case in out["cases"]]
        top1 = report.cases[-1].top1_agreement
        summary = (f"{runtime}: SQNR {sqnr:.1f} dB against fp32 PyTorch on {cases[-1][0]} (floor {floor:g} dB), "
                   f"max |diff| {report.max_abs:.3g}" + (f", top-1 agreement {top1:.1%}" if top1 is not None else ""))
        return out, sqnr >= floor, summary
    out["criterion"] = "max |diff| <= atol + rtol x max|output| (trimnet.runtime.parity)"
    return out, report.passed, report.summary() if report.cases else runtime


def accuracy(run: Callable[[np.ndarray], np.ndarray], x: torch.Tensor, y: torch.Tensor, batch: int = 256,
             task: Any = None) -> float:
    """The task's metric (accuracy for classification) of the lowered model on ``(x, y)``."""
    from trimnet.train.evaluate import runner_score

    return runner_score(run, x, y, task, batch)


def latency(candidate: Candidate, fp32_model: nn.Module, example: torch.Tensor, cfg: QuantizeConfig) -> list[Latency]:
    """fp32 against the candidate on the candidate's backend, interleaved, at every batch size."""
    from trimnet.bench import BenchConfig, compare
    from trimnet.bench.harness import BackendSpec

    bench = BenchConfig(threads=cfg.threads, min_iters=5, min_time_s=cfg.bench_time_s,
                        max_time_s=max(3.0 * cfg.bench_time_s, cfg.bench_time_s + 2.0),
                        warmup_max_s=min(2.0, cfg.bench_time_s), seed=cfg.seed)
    a = candidate.baseline_file or candidate.baseline_module or fp32_model
    b = candidate.file or candidate.module
    res = compare(a, b, example, backend_a=BackendSpec(candidate.backend, dict(candidate.baseline_options)),
                  backend_b=BackendSpec(candidate.backend, dict(candidate.options)),
                  batch_sizes=list(cfg.batch_sizes), config=bench)
    return [Latency(batch=r.batch, fp32_ms=r.a_latency_ms["p50"], lowp_ms=r.b_latency_ms["p50"], ratio=r.ratio)
            for r in res.results]
