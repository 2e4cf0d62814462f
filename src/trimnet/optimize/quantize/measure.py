"""The three things measured for every candidate: parity with fp32, test accuracy, and speed against fp32.

Speed is measured interleaved (fp32, candidate, fp32, candidate, ...) on the same backend
with the same threads (``trimnet.bench.compare``), so the ratio survives a noisy machine.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from trimnet.optimize.quantize.config import QuantizeConfig
from trimnet.optimize.quantize.method import Candidate
from trimnet.optimize.quantize.result import Latency
from trimnet.runtime.parity import TOLERANCES, ParityReport, Tolerance, check_parity, random_inputs

# INT8 parity is checked on real samples only: inputs outside the calibrated ranges are clipped
# by design. Static INT8 logits typically differ by 5-15 % of their range on the digits CNN;
# dynamic INT8 (activations quantized per batch) by 2-4 %.
INT8_TOLERANCES = {"int8": Tolerance(atol=0.05, rtol=0.25), "int8-dynamic": Tolerance(atol=0.05, rtol=0.1)}
PARITY_NAMES = {"bf16": "bf16", "fp16": "f16", "int8": "int8", "int8-dynamic": "int8-dynamic"}


def tolerance(precision: str) -> Tolerance:
    return INT8_TOLERANCES[precision] if precision in INT8_TOLERANCES else TOLERANCES[PARITY_NAMES[precision]]


def parity(fp32: nn.Module, run: Callable[[np.ndarray], np.ndarray], precision: str, real: torch.Tensor,
           runtime: str) -> ParityReport:
    """The candidate's outputs against fp32 PyTorch, at ``precision``'s tolerance (never raises)."""
    cases = [(f"test batch {len(real)}", real)]
    if precision not in INT8_TOLERANCES:
        cases = random_inputs(real.shape[1:]) + cases
    return check_parity(fp32, run, cases, runtime=runtime, precision=PARITY_NAMES[precision],
                        tolerance=tolerance(precision), strict=False)


def accuracy(run: Callable[[np.ndarray], np.ndarray], x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    preds = [np.asarray(run(np.ascontiguousarray(x[i:i + batch].numpy(), dtype=np.float32))).argmax(1)
             for i in range(0, len(x), batch)]
    return float((np.concatenate(preds) == y.numpy()).mean()) if preds else float("nan")


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
