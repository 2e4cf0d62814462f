"""What Triton's clients ask beyond the core protocol: the model configuration and per-model statistics.

``model_config`` is the ``/v2/models/M/config`` document in Triton's ``ModelConfig`` JSON
(``max_batch_size`` > 0, so dims leave the batch out: what ``perf_analyzer`` reads to shape
its requests). ``ModelStats`` keeps the counts of ``/v2/models/M/stats`` in Triton's
``ModelStatistics`` form: counts are requests, times are nanoseconds, ``batch_stats`` one
entry per batch size the model ran.
"""

from __future__ import annotations

import collections
import time

from trimnet.serve.protocol import INPUT_NAME, InputSpec, output_shapes

TRITON_TYPES = {"FP32": "TYPE_FP32", "INT64": "TYPE_INT64", "BYTES": "TYPE_STRING"}


def model_config(name: str, platform: str, spec: InputSpec, *, max_batch: int, max_delay_s: float) -> dict:
    dims = {n: shape[1:] for n, shape in output_shapes(spec).items()}  # without the batch, as max_batch_size > 0
    text = spec.text
    config = {
        "name": name,
        "platform": platform,
        "backend": "trimnet",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch,
        "input": [{"name": INPUT_NAME, "data_type": "TYPE_STRING" if text else "TYPE_FP32", "format": "FORMAT_NONE",
                   "dims": [1] if text else list(spec.in_shape)}],
        "output": [{"name": n, "data_type": TRITON_TYPES[dt], "dims": dims[n],
                    **({"label_filename": ""} if n == "probabilities" else {})} for n, (dt, _) in spec.outputs.items()],
        "instance_group": [{"name": f"{name}_0", "kind": "KIND_CPU", "count": 1}],
    }
    if max_batch > 1:
        config["dynamic_batching"] = {"preferred_batch_size": [max_batch],
                                      "max_queue_delay_microseconds": int(round(max_delay_s * 1e6))}
    return config


def _duration() -> dict:
    return {"count": 0, "ns": 0}


class ModelStats:
    """Counts for one model since the server started; the batcher and the transports report to it."""

    def __init__(self, name: str):
        self.name = name
        self.last_inference_ms = 0
        self.inference_count = 0  # samples run
        self.execution_count = 0  # model calls
        self.success = _duration()
        self.fail = _duration()
        self.queue = _duration()
        self.compute_infer = _duration()
        self.batches: collections.defaultdict[int, dict] = collections.defaultdict(_duration)

    # the batcher's observer interface
    def batch(self, size: int, seconds: float, requests: int) -> None:
        ns = int(seconds * 1e9)
        self.execution_count += 1
        self.inference_count += size
        self.last_inference_ms = int(time.time() * 1000)
        self.compute_infer["count"] += requests
        self.compute_infer["ns"] += ns * requests
        entry = self.batches[size]
        entry["count"] += 1
        entry["ns"] += ns

    def queued(self, seconds: float) -> None:
        self.queue["count"] += 1
        self.queue["ns"] += int(seconds * 1e9)

    def request(self, ok: bool, seconds: float) -> None:
        entry = self.success if ok else self.fail
        entry["count"] += 1
        entry["ns"] += int(seconds * 1e9)

    def to_dict(self) -> dict:
        zero = _duration()
        return {
            "name": self.name, "version": "1", "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count, "execution_count": self.execution_count,
            "inference_stats": {"success": dict(self.success), "fail": dict(self.fail), "queue": dict(self.queue),
                                # no separate input/output steps: their counts match compute_infer's, at 0 ns
                                "compute_input": {"count": self.compute_infer["count"], "ns": 0},
                                "compute_infer": dict(self.compute_infer),
                                "compute_output": {"count": self.compute_infer["count"], "ns": 0}, "cache_hit": dict(zero), "cache_miss": dict(zero)},
            "batch_stats": [{"batch_size": size, "compute_input": {"count": d["count"], "ns": 0},
                             "compute_infer": dict(d), "compute_output": {"count": d["count"], "ns": 0}}
                            for size, d in sorted(self.batches.items())],
        }


class Observers:
    """Hands each batcher report to several observers (the Prometheus metrics and the statistics)."""

    def __init__(self, *observers):
        self.observers = observers

    def batch(self, size: int, seconds: float, requests: int) -> None:
        for o in self.observers:
            o.batch(size, seconds, requests)

    def queued(self, seconds: float) -> None:
        for o in self.observers:
            o.queued(seconds)
