"""The training loop: forward, loss, backward, step; validation, best-model selection,
early stopping, checkpoints every epoch (and every N steps), exact resume.

Determinism: each epoch's data order comes from its own generator seeded by
``(seed, epoch)``, and the global RNG (dropout) is saved in every checkpoint, so a run
resumed from any checkpoint ends with bit-identical weights on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from trimnet.artifact import atomic_write, save_artifact
from trimnet.config import RunConfig, TrainConfig, dump_yaml
from trimnet.data.dataset import Dataset
from trimnet.errors import TrainingError
from trimnet.tasks import Loss, Metric, Task
from trimnet.train import distributed
from trimnet.train.checkpoint import load_checkpoint, save_checkpoint
from trimnet.train.optim import lr_at, make_optimizer, set_lr
from trimnet.train.progress import epoch_bar, progress_enabled
from trimnet.train.state import LoopState

log = logging.getLogger("trimnet.train")

# A callback gets (event, info) with event in {"step", "epoch"}; used by tests and by
# callers that want to watch or stop a run (raise to stop).
Callback = Callable[[str, dict], None]


@dataclass
class TrainResult:
    model: nn.Module
    metrics: dict
    history: list[dict] = field(default_factory=list)
    out: Path | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"train.device is {name!r} but no CUDA device is available; use --train.device cpu")
    return torch.device(name)


def train(
    model: nn.Module,
    data: Dataset | Any,
    config: TrainConfig | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    run_config: RunConfig | None = None,
    teacher_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    task: str | Task | None = None,
    loss: Loss | None = None,
    metric: Metric | None = None,
    validate: bool = True,
) -> TrainResult:
    """Train ``model`` on ``data`` in place; with ``out``, write checkpoints, metrics and the artifact.

    ``data``: a ``Dataset``, a ``torch.utils.data.DataLoader`` or a (train, val, test) trio
    of them. ``task`` (default: the dataset's) gives the loss and the metric that picks the
    best epoch; ``loss(outputs, targets)`` and ``metric(outputs, targets)`` replace them.
    ``teacher_loss(logits, targets, x)`` replaces the loss (fine-tuning with distillation uses it).
    ``validate=False``: no validation pass, so no best-epoch selection or early stopping; the
    weights at the end of the schedule are kept.
    """
    from trimnet.data.loaders import as_dataset
    from trimnet.tasks import task_for

    cfg = config or (run_config.train if run_config else TrainConfig())
    cfg.validate()
    data = as_dataset(data, task=task if isinstance(task, str) else None)
    task = task_for(data, task, metric=metric, loss=loss)
    out = Path(out) if out is not None else None
    ctx, device = distributed.setup(resolve_device(cfg.device))
    try:
        run = _prepare(model, data, cfg, out, task, teacher_loss, ctx, device, callbacks)
        run.validate = validate
        _start(run, resume, run_config)
        show = progress_enabled(cfg.progress) and ctx.is_main
        started = time.perf_counter()
        while run.state.epoch < cfg.epochs and not run.state.stopped:
            _run_epoch(run, show)
        return _finish(run, run_config, time.perf_counter() - started)
    finally:
        ctx.close()


@dataclass
class _Run:
    """Everything one training run holds, built once by ``_prepare``."""

    model: nn.Module
    net: nn.Module  # the model as stepped: DDP-wrapped and/or compiled
    data: Dataset
    cfg: TrainConfig
    task: Task
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    ctx: distributed.DistContext
    device: torch.device
    source: "_Source"  # the training split: tensors in memory, or a dataset read from disk per batch
    steps_per_epoch: int
    out: Path | None  # where this rank writes (None on ranks other than 0)
    out_main: Path | None  # the run directory, as every rank reads it
    callbacks: Sequence[Callback]
    autocast: Callable[[], Any]
    state: LoopState = field(default_factory=LoopState)
    best_state: dict | None = None  # weights of the best validation epoch
    trained_samples: int = 0
    validate: bool = True  # False: no validation pass, the last epoch's weights are kept

    @property
    def ckpt_dir(self) -> Path | None:
        return self.out_main / "checkpoints" if self.out_main else None


def _prepare(model, data, cfg, out, task, teacher_loss, ctx, device, callbacks) -> _Run:
    source = _source(data, device, cfg)
    _check_fit(model, source, data, task)
    n = source.n
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    last = n - (steps_per_epoch - 1) * cfg.batch_size
    if steps_per_epoch > 1 and last < max(8, 2 * ctx.world_size):
        # a tiny last batch (one sample per rank breaks BatchNorm) is left to the next epoch's
        # order; the threshold does not depend on the world size up to 4 ranks, so those runs
        # take the same steps as a single process
        steps_per_epoch -= 1
    model.to(device)
    net = distributed.wrap(model, ctx, device)
    if cfg.compile:
        net = torch.compile(net)
    criterion = task.training_loss(cfg.label_smoothing)
    # bf16 autocast on CUDA; on CPU not even the context manager (it costs per step)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda"
                else contextlib.nullcontext)
    return _Run(model=model, net=net, data=data, cfg=cfg, task=task,
                loss_fn=teacher_loss or (lambda outputs, y, x: criterion(outputs, y)),
                optimizer=make_optimizer(model, cfg), ctx=ctx, device=device, source=source,
                steps_per_epoch=steps_per_epoch, out=out if ctx.is_main else None, out_main=out,
                callbacks=callbacks, autocast=autocast)


def _start(run: _Run, resume: bool, run_config: RunConfig | None) -> None:
    """Resume from the last checkpoint (or seed a fresh run) and write the resolved config."""
    if resume:
        if run.ckpt_dir is None:
            raise TrainingError("resume needs the run directory (out) that holds the checkpoints")
        saved = load_checkpoint(run.ckpt_dir)
        if saved is None:
            raise TrainingError(f"{run.ckpt_dir} holds no checkpoint to resume from; start the run without --resume")
        run.model.load_state_dict(saved["model"])
        run.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        run.state = LoopState.from_dict(saved["loop"])
        run.best_state = saved.get("best_model")
        if run.ctx.is_main:
            log.info("resuming at epoch %d step %d", run.state.epoch + 1, run.state.step)
    else:
        torch.manual_seed(run.cfg.seed)
    if run.out is not None:
        run.out.mkdir(parents=True, exist_ok=True)
        dump_yaml(run_config if run_config is not None else run.cfg, run.out / "config.yaml")


def _checkpoint(run: _Run) -> None:
    if run.ckpt_dir is None or not run.ctx.is_main:
        return
    save_checkpoint(run.ckpt_dir, {"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                                   "rng": torch.get_rng_state(), "loop": run.state.to_dict(),
                                   "best_model": run.best_state})


def _run_epoch(run: _Run, show: bool) -> dict:
    """One epoch from where the state says (mid-epoch after a resume), then validation and a checkpoint."""
    cfg, state, n = run.cfg, run.state, run.source.n
    epoch = state.epoch
    total_steps = run.steps_per_epoch * cfg.epochs
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
    run.model.train()
    # per-step results stay on the device and are folded in once per epoch (or checkpoint):
    # one small kernel per step instead of several
    steps = _Steps()
    t0 = time.perf_counter()
    with epoch_bar(run.steps_per_epoch - state.step, f"epoch {epoch + 1}/{cfg.epochs}", show) as advance:
        batches = run.source.batches(order, range(state.step, run.steps_per_epoch), cfg.batch_size, run.ctx.shard)
        for step, global_batch, xb, yb in batches:
            loss, outputs = _step(run, xb, yb, global_batch, lr_at(epoch * run.steps_per_epoch + step, total_steps,
                                                                   run.steps_per_epoch, cfg), epoch, step)
            steps.add(loss, run.task.predict(outputs) if run.task.per_sample else None, yb)
            state.step = step + 1
            advance(1)
            for cb in run.callbacks:
                cb("step", {"epoch": epoch, "step": step, "loss": loss})
            if cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0 and state.step < run.steps_per_epoch:
                _accumulate(run, steps)
                steps = _Steps()
                _checkpoint(run)
    _accumulate(run, steps)
    row = _end_epoch(run, time.perf_counter() - t0)
    if not math.isfinite(row["train_loss"]):
        raise TrainingError(f"the loss became {row['train_loss']} in epoch {epoch + 1}; "
                            "lower --train.lr or set --train.grad_clip 1.0")
    m = run.task.metric_name
    if run.ctx.is_main:
        log.info("epoch %d/%d  loss %.4f  %s %s  val_loss %s  val_%s %s  lr %.3g  %.1fs", epoch + 1, cfg.epochs,
                 row["train_loss"], m, _fmt(row[f"train_{m}"]), _fmt(row["val_loss"]), m, _fmt(row[f"val_{m}"]),
                 row["lr"], row["time_s"])
    if run.out is not None:
        _write_history(run.out, state.history)
    _checkpoint(run)
    for cb in run.callbacks:
        cb("epoch", row)
    return row


def _step(run: _Run, xb: torch.Tensor, yb: torch.Tensor, global_batch: int, lr: float, epoch: int, step: int):
    """Forward, loss, backward and update on this rank's share of one batch; the loss and outputs."""
    set_lr(run.optimizer, lr)
    with run.autocast():
        outputs = run.net(xb)
        loss = run.loss_fn(outputs.float(), yb, xb)
    if step % 20 == 0 and not torch.isfinite(loss):  # the epoch's sum catches the rest
        raise TrainingError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                            "lower --train.lr or set --train.grad_clip 1.0")
    run.optimizer.zero_grad(set_to_none=True)
    if run.ctx.enabled:
        # DDP averages gradients over ranks; weighting each rank's mean by its share
        # of the global batch makes that the global batch's mean, as on one process
        (loss * (len(yb) * run.ctx.world_size / global_batch)).backward()
    else:
        loss.backward()
    if run.cfg.grad_clip:
        nn.utils.clip_grad_norm_(run.model.parameters(), run.cfg.grad_clip)
    run.optimizer.step()
    return loss.detach(), outputs.detach()


@dataclass
class _Steps:
    """The steps since the last fold: their losses, kept predictions and targets."""

    losses: list = field(default_factory=list)
    predictions: list = field(default_factory=list)
    targets: list = field(default_factory=list)

    def add(self, loss: torch.Tensor, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        self.losses.append(loss)
        self.predictions.append(predictions)
        self.targets.append(targets)


def _accumulate(run: _Run, steps: _Steps) -> None:
    """Fold the steps since the last call into the running loss and metric (summed over ranks)."""
    loss_sum = score_sum = seen = 0.0
    if steps.losses:
        sizes = torch.tensor([len(t) for t in steps.targets], dtype=torch.float32, device=run.device)
        loss_sum = float((torch.stack(steps.losses).float() * sizes).sum())
        seen = float(sizes.sum())
        if run.task.per_sample:
            targets = torch.cat(steps.targets)
            score_sum = run.task.score(torch.cat(steps.predictions), targets) * seen
    loss_sum, score_sum, seen = run.ctx.sum([loss_sum, score_sum, seen], run.device)
    run.state.loss_sum += loss_sum
    run.state.score_sum += score_sum
    run.state.seen += int(seen)
    run.trained_samples += int(seen)


def _end_epoch(run: _Run, seconds: float) -> dict:
    """The epoch's row; validation picks the best epoch (higher metric) and drives early stopping."""
    state, cfg, m, data = run.state, run.cfg, run.task.metric_name, run.data
    seen = max(state.seen, 1)
    row = {"epoch": state.epoch + 1, "train_loss": state.loss_sum / seen,
           f"train_{m}": state.score_sum / seen if run.task.per_sample else None,
           "val_loss": None, f"val_{m}": None, "lr": run.optimizer.param_groups[0]["lr"], "time_s": seconds}
    if run.validate and _split_size(data, "val"):
        score, loss = _score(run, "val")
        row["val_loss"], row[f"val_{m}"] = loss, score
        if state.best_val is None or score > state.best_val:
            state.best_val, state.best_epoch, state.since_best = score, state.epoch, 0
            run.best_state = {k: v.detach().cpu().clone() for k, v in run.model.state_dict().items()}
        else:
            state.since_best += 1
            if cfg.early_stopping and state.since_best >= cfg.early_stopping:
                state.stopped = True
    state.history.append(row)
    state.epoch, state.step, state.loss_sum, state.score_sum, state.seen = state.epoch + 1, 0, 0.0, 0.0, 0
    return row


def _finish(run: _Run, run_config: RunConfig | None, elapsed: float) -> TrainResult:
    """Keep the best epoch's weights, score the test split, and write the artifact."""
    state, data, model, m = run.state, run.data, run.model, run.task.metric_name
    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    test_score, test_loss = _score(run, "test")
    metrics = {
        f"test_{m}": test_score,
        "test_loss": test_loss,
        "best_epoch": state.best_epoch + 1 if state.best_epoch >= 0 else len(state.history),
        f"best_val_{m}": state.best_val,
        "epochs_run": len(state.history),
        "early_stopped": state.stopped,
        "train_time_s": elapsed,
        "train_samples_per_s": run.trained_samples / elapsed if elapsed > 0 else None,
        "device": str(run.device),
        "world_size": run.ctx.world_size,
        "task": run.task.name,
        "metric": m,
    }
    model.cpu().eval()
    if run.out is not None:
        extra = {"kind": data.kind, "task": run.task.describe(data)}
        if not data.info.get("in_memory"):
            extra["data"] = _data_meta(data, run_config)
        save_artifact(model, run.out, in_shape=data.in_shape, class_names=data.class_names,
                      normalization=data.normalization, metrics=metrics, extra=extra)
    run.ctx.barrier()  # the artifact is complete before any rank returns
    return TrainResult(model=model, metrics=metrics, history=list(state.history), out=run.out_main)


def _check_fit(model: nn.Module, source: "_Source", data: Any, task: Task) -> None:
    from trimnet.errors import ModelError

    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            out = model(source.example(2).to(next(model.parameters()).device))
        except RuntimeError as exc:
            raise ModelError(f"the model does not accept inputs of shape {tuple(data.in_shape)} "
                             f"from {data.name}: {str(exc).splitlines()[0]}") from None
        finally:
            model.train(was)
    task.check_outputs(out, data)
    _check_vocabulary(model, data)


def _check_vocabulary(model: nn.Module, data: Any) -> None:
    """Token ids past the model's embedding would be clamped to its last row: say so before training."""
    from trimnet.errors import ModelError

    vocab = (getattr(data, "info", None) or {}).get("vocab")
    if getattr(data, "kind", None) != "text" or not vocab:
        return
    embedding = next((m for m in model.modules() if isinstance(m, nn.Embedding)), None)
    if embedding is not None and embedding.num_embeddings < int(vocab):
        raise ModelError(f"the run's tokenizer has {vocab} tokens but the model's embedding holds "
                         f"{embedding.num_embeddings}; ids past it would all read as its last row: set "
                         f"--model.options.vocab_size {vocab} (or lower --data.vocab_size)")


class _Source:
    """The training split as the loop reads it: ``n`` samples, batches by index, two examples."""

    n: int

    def example(self, k: int) -> torch.Tensor:
        raise NotImplementedError

    def batches(self, order: torch.Tensor, steps: range, batch_size: int, shard: Callable):
        """(step, global batch size, inputs, targets) for each step, this rank's share, on the device."""
        raise NotImplementedError


class _InMemory(_Source):
    def __init__(self, x: torch.Tensor, y: torch.Tensor, device: torch.device):
        self.x, self.y, self.device, self.n = x.to(device), y.to(device), device, len(y)

    def example(self, k: int) -> torch.Tensor:
        return self.x[:k]

    def batches(self, order, steps, batch_size, shard):
        order = order.to(self.device)
        for step in steps:
            batch = order[step * batch_size:(step + 1) * batch_size]
            idx = shard(batch)
            yield step, len(batch), self.x[idx], self.y[idx]


class _Streamed(_Source):
    """A dataset on disk (``data.stream``): DataLoader workers decode each batch of the epoch's order.

    The order and the batches are the in-memory loop's, so a streamed run takes the same steps and
    resumes mid-epoch the same way; memory grows with the batch, not with the dataset."""

    def __init__(self, dataset: Any, device: torch.device, workers: int):
        self.dataset, self.device, self.workers, self.n = dataset, device, workers, len(dataset)

    def example(self, k: int) -> torch.Tensor:
        return torch.stack([self.dataset[i][0] for i in range(min(k, self.n))])

    def batches(self, order, steps, batch_size, shard):
        from torch.utils.data import DataLoader

        plan = [(step, order[step * batch_size:(step + 1) * batch_size]) for step in steps]
        shares = [shard(batch).tolist() for _, batch in plan]
        loader = DataLoader(self.dataset, batch_sampler=shares, num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        for (step, batch), (xb, yb) in zip(plan, loader):
            yield step, len(batch), xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)


def _source(data: Any, device: torch.device, cfg: TrainConfig) -> _Source:
    if isinstance(data, _streaming()):
        return _Streamed(data.splits["train"], device, data.workers)
    return _InMemory(data.x_train, data.y_train, device)


def _split_size(data: Any, split: str) -> int:
    return len(data.splits[split]) if isinstance(data, _streaming()) else len(data.split(split)[1])


def _score(run: _Run, split: str) -> tuple[float, float]:
    """The task's metric and loss on a split: its tensors, or a streamed split read batch by batch."""
    from trimnet.train.evaluate import score_and_loss_batches, split_batches

    return score_and_loss_batches(run.model, split_batches(run.data, split, run.cfg.eval_batch_size), run.task,
                                  run.device)


def _streaming() -> type:
    from trimnet.data.stream import StreamingDataset

    return StreamingDataset


def _data_meta(data: Dataset, run_config: RunConfig | None) -> dict:
    meta = {"source": data.name, **{k: v for k, v in data.info.items() if k != "origin"}}
    if run_config is not None:
        meta.update(copy.deepcopy(run_config.data.__dict__))
    return meta


def _write_history(out: Path, history: list[dict]) -> None:
    atomic_write(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write(out / "metrics.csv", buf.getvalue())


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
