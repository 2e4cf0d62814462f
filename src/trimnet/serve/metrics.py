"""Prometheus metrics of one app, in a registry of its own (never the process-wide default).

Requests by route and status, request latency, queue time, batch sizes, model time and
queue depth. Route labels are route templates (``/v2/models/{name}/infer``), and model
labels only name served models, so no request can grow the number of series.
"""

from __future__ import annotations

from typing import Iterable

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def batch_buckets(max_batch: int) -> tuple[float, ...]:
    edges, b = [], 1
    while b < max_batch:
        edges.append(float(b))
        b *= 2
    return (*edges, float(max_batch))


class Metrics:
    def __init__(self, models: Iterable[str], max_batch: int):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("trimnet_requests", "HTTP requests by route, method and status code",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("trimnet_request_seconds", "HTTP request latency, first byte in to response sent",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.inflight = Gauge("trimnet_requests_in_flight", "HTTP requests being handled", registry=r)
        self.queue_time = Histogram("trimnet_queue_seconds", "time samples wait in the batch queue",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("trimnet_batch_size", "samples per model call (dynamic batching at work)",
                                    ["model"], buckets=batch_buckets(max_batch), registry=r)
        self.inference = Histogram("trimnet_inference_seconds", "model time per batch",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.samples = Counter("trimnet_inferred_samples", "samples run through the model", ["model"], registry=r)
        self.queue_depth = Gauge("trimnet_queue_samples", "samples waiting in the batch queue", ["model"], registry=r)
        self._observers = {name: ModelObserver(self, name) for name in models}
        self._children: dict[tuple, tuple] = {}

    def watch_queue(self, model: str, depth) -> None:
        """Report ``depth()`` (samples queued for ``model``) at each scrape."""
        self.queue_depth.labels(model).set_function(depth)

    def observer(self, model: str) -> "ModelObserver":
        return self._observers[model]

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:  # labels() costs more than an observation; bind each series once
            child = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ModelObserver:
    """What the batcher of one model reports, bound to that model's series."""

    def __init__(self, metrics: Metrics, model: str):
        self._batch = metrics.batch_size.labels(model)
        self._inference = metrics.inference.labels(model)
        self._samples = metrics.samples.labels(model)
        self._queue = metrics.queue_time.labels(model)

    def batch(self, size: int, seconds: float, requests: int = 1) -> None:
        self._batch.observe(size)
        self._inference.observe(seconds)
        self._samples.inc(size)

    def queued(self, seconds: float) -> None:
        self._queue.observe(seconds)
