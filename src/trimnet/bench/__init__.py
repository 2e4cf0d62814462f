"""Latency and throughput measurement: per backend and batch size, and A/B comparisons.

``benchmark(model_or_path, x, backends=[...], batch_sizes=[...])`` returns a ``BenchResult``
(``.to_dict()`` is the JSON of docs/bench.md, ``.table()`` the readable table);
``compare(a, b, ...)`` measures two models or backends interleaved.
"""

from trimnet.bench.compare import compare
from trimnet.bench.config import BenchConfig
from trimnet.bench.harness import DEFAULT_BACKENDS, BackendSpec, benchmark
from trimnet.bench.report import SCHEMA_VERSION, BenchResult, CompareResult, Measurement, PairResult

__all__ = ["BackendSpec", "BenchConfig", "BenchResult", "CompareResult", "DEFAULT_BACKENDS", "Measurement",
           "PairResult", "SCHEMA_VERSION", "benchmark", "compare"]
