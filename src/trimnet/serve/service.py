"""What HTTP and gRPC share: the served models, one dynamic batcher each, admission, statistics, draining.

A transport asks ``admit`` before it reads a request body, so a full queue costs a refusal
and nothing more (the body is never parsed); then ``infer`` runs a checked ``InferRequest``
through the model's batcher. ``drain`` is graceful shutdown: readiness turns false and new
requests are refused with 503 while what is queued runs, for up to the timeout; whatever is
still queued after it is refused with 503 too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Iterable

import numpy as np

from trimnet.errors import ConfigError, TrimnetError
from trimnet.serve.batcher import Batcher, BatcherClosed, QueueFull
from trimnet.serve.config import ServeConfig
from trimnet.serve.metrics import Metrics
from trimnet.serve.model import ServedModel, load_model
from trimnet.serve.protocol import (
    TASK_OUTPUTS, InferRequest, InputSpec, RequestError, Tensor, model_metadata, outputs, value_outputs,
)
from trimnet.serve.triton import ModelStats, Observers, model_config

log = logging.getLogger(__name__)
VERSION = "1"  # every served model has one version


class Service:
    def __init__(self, models: Iterable[ServedModel | Any], config: ServeConfig):
        self.config = config
        self.models: dict[str, ServedModel] = {}
        self.owned: list[ServedModel] = []  # loaded here, so closed here; the caller closes the ones it passed
        for m in models:
            if not isinstance(m, ServedModel):
                m = load_model(m)
                self.owned.append(m)
            if m.name in self.models:
                raise ConfigError(f"two models are named {m.name!r}; give them different names (--name)")
            check_task(m)
            self.models[m.name] = m
        if not self.models:
            raise ConfigError("serve needs at least one model (a run directory)")
        self.metrics = Metrics(self.models, config.max_batch)
        self.stats = {name: ModelStats(name) for name in self.models}
        self.batchers = {
            name: Batcher(m.infer, max_batch=config.max_batch, max_delay_s=config.max_delay_s,
                          max_queue=config.max_queue, name=name,
                          observer=Observers(self.metrics.observer(name), self.stats[name]))
            for name, m in self.models.items()}
        for name, b in self.batchers.items():
            self.metrics.watch_queue(name, lambda b=b: b.queued)
        self.specs = {name: InputSpec(tuple(m.in_shape), len(m.class_names), text=m.encode_text is not None,
                                      task=m.task, num_values=m.num_values)
                      for name, m in self.models.items()}
        self.draining = False
        self.active = 0  # requests between admit and their outputs

    @property
    def ready(self) -> bool:
        return not self.draining

    def model(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise RequestError(f"no model named {name[:100]!r}; this server has: {', '.join(self.models)}",
                               status=404)
        if version not in (None, "", VERSION):
            raise RequestError(f"model {name!r} has no version {version[:20]!r}; it has version {VERSION}",
                               status=404)
        return model

    def unavailable(self, message: str) -> RequestError:
        return RequestError(message, 503, {"Retry-After": str(self.config.retry_after_s)})

    async def hold_refusal(self, exc: RequestError) -> None:
        """Pause ``refusal_delay`` before answering a 503 for capacity (not one for shutting down)."""
        if exc.status == 503 and not self.draining and self.config.refusal_delay_s > 0:
            await asyncio.sleep(self.config.refusal_delay_s)

    def admit(self, name: str) -> None:
        """Refuse (503) before anything is read when shutting down or when the model's queue is full."""
        if self.draining:
            raise self.unavailable("the server is shutting down")
        batcher = self.batchers.get(name)
        if batcher is not None and batcher.queued >= self.config.max_queue:
            raise self.unavailable(f"the server is at capacity ({self.config.max_queue} samples queued for "
                                   f"{name}); retry after {self.config.retry_after_s} s")

    async def infer(self, model: ServedModel, req: InferRequest) -> list[Tensor]:
        """The outputs of one checked request, run through the model's batcher."""
        start = time.perf_counter()
        stats = self.stats[model.name]
        self.active += 1
        try:
            result = await self._run(model, req)  # probabilities, or a regression model's values
        except BaseException:
            stats.request(False, time.perf_counter() - start)
            raise
        finally:
            self.active -= 1
        stats.request(True, time.perf_counter() - start)
        if model.task == "regression":
            return value_outputs(req, result)
        return outputs(req, result, model.class_names)

    async def _run(self, model: ServedModel, req: InferRequest) -> np.ndarray:
        if req.batch > self.config.max_queue:
            raise RequestError(f"the request holds {req.batch} samples; this server queues at most "
                               f"{self.config.max_queue}; send at most that many per request", status=413)
        if req.texts is not None:
            try:
                x = np.asarray(model.encode_text(req.texts))
            except (TrimnetError, ValueError, TypeError) as exc:
                raise RequestError(f"input 'input': the text could not be encoded: {exc}") from None
            if len(x) != len(req.texts):
                raise RequestError(f"encode_text made {len(x)} rows of {len(req.texts)} texts")
        else:
            x = model.preprocess(req.x) if req.normalize and model.preprocess is not None else req.x
            if model.input_dtype != x.dtype:
                x = x.astype(model.input_dtype)
        try:
            return await self.batchers[model.name].submit(x)
        except QueueFull:
            exc = self.unavailable(f"the server is at capacity ({self.config.max_queue} samples queued for "
                                   f"{model.name}); retry after {self.config.retry_after_s} s")
            await self.hold_refusal(exc)  # as admit's refusals are held
            raise exc from None
        except BatcherClosed:
            raise self.unavailable("the server is shutting down") from None

    def metadata(self, model: ServedModel) -> dict:
        params = {"max_batch": self.config.max_batch, "normalize": self.config.normalize,
                  **({"top_k": self.config.top_k} if model.task == "classification" else {}),
                  "backend": model.info.get("backend"), "normalization": model.info.get("normalization")}
        return model_metadata(model.name, self.specs[model.name], model.class_names, model.platform, params)

    def model_config(self, model: ServedModel) -> dict:
        return model_config(model.name, model.platform, self.specs[model.name], max_batch=self.config.max_batch,
                            max_delay_s=self.config.max_delay_s)

    def statistics(self, name: str | None = None, version: str | None = None) -> dict:
        names = [self.model(name, version).name] if name else list(self.models)
        return {"model_stats": [self.stats[n].to_dict() for n in names]}

    def index(self) -> list[dict]:
        return [{"name": n, "version": VERSION, "state": "UNAVAILABLE" if self.draining else "READY"}
                for n in self.models]

    def start(self) -> None:
        self.draining = False
        for b in self.batchers.values():
            b.start()

    async def drain(self, timeout: float) -> None:
        """Refuse new work, run what is queued (now, not after max_delay) for up to ``timeout`` s, refuse the rest."""
        self.draining = True
        log.info("draining: finishing %d queued samples (up to %g s)",
                 sum(b.queued for b in self.batchers.values()), timeout)
        await asyncio.gather(*(b.close(timeout=timeout) for b in self.batchers.values()))
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.0  # let the last requests (answered or refused) write their responses
        while self.active and loop.time() < end:
            await asyncio.sleep(0.01)

    async def close_batchers(self, timeout: float) -> None:
        for b in self.batchers.values():
            await b.close(timeout=timeout)

    def close_models(self) -> None:
        for m in self.owned:
            m.close()


def check_task(model: ServedModel) -> None:
    """A ``ConfigError`` for a served model whose outputs the protocol here cannot describe."""
    if model.task not in TASK_OUTPUTS:
        raise ConfigError(f"model {model.name!r} is a {model.task} model; trimnet serve answers "
                          f"{' and '.join(TASK_OUTPUTS)} models only")
    if model.task == "regression" and (not isinstance(model.num_values, int) or model.num_values < 1):
        raise ConfigError(f"regression model {model.name!r} must give at least one value per sample "
                          f"(num_values), not {model.num_values!r}")
