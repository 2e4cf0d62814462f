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

from trimnet.artifact import atomic_write, save_artifact, write_json
from trimnet.config import RunConfig, TrainConfig, dump_yaml
from trimnet.data.dataset import Dataset
from trimnet.errors import TrainingError
from trimnet.train import distributed
from trimnet.train.checkpoint import load_checkpoint, save_checkpoint
from trimnet.train.optim import lr_at, make_optimizer, set_lr
from trimnet.train.progress import epoch_bar, progress_enabled

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
    data: Dataset,
    config: TrainConfig | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    run_config: RunConfig | None = None,
    teacher_loss: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` in place; with ``out``, write checkpoints, metrics and the artifact.

    ``teacher_loss(logits, targets, x)`` replaces the cross-entropy (fine-tuning with
    distillation uses it).
    """
    cfg = config or (run_config.train if run_config else TrainConfig())
    cfg.validate()
    out = Path(out) if out is not None else None
    ctx, device = distributed.setup(resolve_device(cfg.device))
    try:
        return _train(model, data, cfg, out, resume, callbacks, run_config, teacher_loss, ctx, device)
    finally:
        ctx.close()


def _train(model, data, cfg, out, resume, callbacks, run_config, teacher_loss, ctx, device) -> TrainResult:
    _check_fit(model, data)
    if not ctx.is_main:
        out_main, out = out, None  # only rank 0 writes; the others still read checkpoints from it
    else:
        out_main = out

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    n = len(y_train)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    last = n - (steps_per_epoch - 1) * cfg.batch_size
    if steps_per_epoch > 1 and last < max(8, 2 * ctx.world_size):
        # a tiny last batch (one sample per rank breaks BatchNorm) is left to the next epoch's
        # order; the threshold does not depend on the world size up to 4 ranks, so those runs
        # take the same steps as a single process
        steps_per_epoch -= 1
    total_steps = steps_per_epoch * cfg.epochs

    model.to(device)
    net = distributed.wrap(model, ctx, device)
    if cfg.compile:
        net = torch.compile(net)
    optimizer = make_optimizer(model, cfg)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    loss_fn = teacher_loss or (lambda logits, y, x: criterion(logits, y))
    # bf16 autocast on CUDA; on CPU not even the context manager (it costs per step)
    autocast = ((lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda"
                else contextlib.nullcontext)

    state = _fresh_state(cfg)
    ckpt_dir = out_main / "checkpoints" if out_main else None
    if resume:
        if ckpt_dir is None:
            raise TrainingError("resume needs the run directory (out) that holds the checkpoints")
        saved = load_checkpoint(ckpt_dir)
        if saved is None:
            raise TrainingError(f"{ckpt_dir} holds no checkpoint to resume from; start the run without --resume")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        state = saved["loop"]
        state["best_state"] = saved.get("best_model")
        if ctx.is_main:
            log.info("resuming at epoch %d step %d", state["epoch"] + 1, state["step"])
    else:
        torch.manual_seed(cfg.seed)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if run_config is not None:
            dump_yaml(run_config, out / "config.yaml")
        else:
            dump_yaml(cfg, out / "config.yaml")

    def checkpoint() -> None:
        if ckpt_dir is None or not ctx.is_main:
            return
        loop_state = {k: v for k, v in state.items() if k != "best_state"}
        save_checkpoint(ckpt_dir, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                   "rng": torch.get_rng_state(), "loop": loop_state,
                                   "best_model": state["best_state"]})

    show = progress_enabled(cfg.progress) and ctx.is_main
    started = time.perf_counter()
    trained_samples = 0
    while state["epoch"] < cfg.epochs and not state["stopped"]:
        epoch = state["epoch"]
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
        model.train()
        # per-step results stay on the device and are reduced once per epoch (or checkpoint):
        # one small kernel per step instead of several
        losses: list[torch.Tensor] = []
        hits: list[torch.Tensor] = []
        seen_idx: list[torch.Tensor] = []
        t0 = time.perf_counter()
        with epoch_bar(steps_per_epoch - state["step"], f"epoch {epoch + 1}/{cfg.epochs}", show) as advance:
            for step in range(state["step"], steps_per_epoch):
                batch = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
                idx = ctx.shard(batch)
                xb, yb = x_train[idx], y_train[idx]
                set_lr(optimizer, lr_at(epoch * steps_per_epoch + step, total_steps, steps_per_epoch, cfg))
                with autocast():
                    logits = net(xb)
                    loss = loss_fn(logits.float(), yb, xb)
                if step % 20 == 0 and not torch.isfinite(loss):  # the epoch's sum catches the rest
                    raise TrainingError(
                        f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                        "lower --train.lr or set --train.grad_clip 1.0")
                optimizer.zero_grad(set_to_none=True)
                if ctx.enabled:
                    # DDP averages gradients over ranks; weighting each rank's mean by its share
                    # of the global batch makes that the global batch's mean, as on one process
                    (loss * (len(yb) * ctx.world_size / len(batch))).backward()
                else:
                    loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                losses.append(loss.detach())
                hits.append(logits.detach().argmax(1))
                seen_idx.append(idx)
                state["step"] = step + 1
                advance(1)
                for cb in callbacks:
                    cb("step", {"epoch": epoch, "step": step, "loss": loss})
                if cfg.checkpoint_every and state["step"] % cfg.checkpoint_every == 0 and state["step"] < steps_per_epoch:
                    trained_samples += _accumulate(state, losses, hits, seen_idx, y_train, ctx)
                    losses, hits, seen_idx = [], [], []
                    checkpoint()
        trained_samples += _accumulate(state, losses, hits, seen_idx, y_train, ctx)
        row = _end_epoch(model, data, cfg, state, device, time.perf_counter() - t0,
                         optimizer.param_groups[0]["lr"])
        if not math.isfinite(row["train_loss"]):
            raise TrainingError(f"the loss became {row['train_loss']} in epoch {epoch + 1}; "
                                "lower --train.lr or set --train.grad_clip 1.0")
        if ctx.is_main:
            log.info("epoch %d/%d  loss %.4f  acc %.4f  val_loss %s  val_acc %s  lr %.3g  %.1fs", epoch + 1,
                     cfg.epochs, row["train_loss"], row["train_accuracy"], _fmt(row["val_loss"]),
                     _fmt(row["val_accuracy"]), row["lr"], row["time_s"])
        if out is not None:
            _write_history(out, state["history"])
        checkpoint()
        for cb in callbacks:
            cb("epoch", row)

    elapsed = time.perf_counter() - started
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    from trimnet.train.evaluate import accuracy_and_loss

    test_accuracy, test_loss = accuracy_and_loss(model, data.x_test, data.y_test, cfg.eval_batch_size, device)
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "best_epoch": state["best_epoch"] + 1 if state["best_epoch"] >= 0 else len(state["history"]),
        "best_val_accuracy": state["best_val"] if state["best_val"] >= 0 else None,
        "epochs_run": len(state["history"]),
        "early_stopped": state["stopped"],
        "train_time_s": elapsed,
        "train_samples_per_s": trained_samples / elapsed if elapsed > 0 else None,
        "device": str(device),
        "world_size": ctx.world_size,
    }
    model.cpu().eval()
    if out is not None:
        save_artifact(model, out, in_shape=data.in_shape, class_names=data.class_names,
                      normalization=data.normalization, metrics=metrics,
                      extra={"data": _data_meta(data, run_config), "kind": data.kind})
    ctx.barrier()  # the artifact is complete before any rank returns
    return TrainResult(model=model, metrics=metrics, history=list(state["history"]), out=out_main)


def _fresh_state(cfg: TrainConfig) -> dict[str, Any]:
    return {"epoch": 0, "step": 0, "loss_sum": 0.0, "correct": 0, "seen": 0, "history": [],
            "best_val": -1.0, "best_epoch": -1, "since_best": 0, "stopped": False, "best_state": None}


def _accumulate(state: dict, losses: list, hits: list, indices: list, y: torch.Tensor,
                ctx: distributed.DistContext) -> int:
    """Fold the steps since the last call into the running loss and accuracy (summed over
    ranks); returns the number of samples, all ranks together."""
    loss_sum = correct = seen = 0.0
    if losses:
        preds = torch.cat(hits)
        sizes = torch.tensor([len(h) for h in hits], dtype=torch.float32, device=preds.device)
        loss_sum = float((torch.stack(losses).float() * sizes).sum())
        correct = float((preds == y[torch.cat(indices)]).sum())
        seen = float(len(preds))
    loss_sum, correct, seen = ctx.sum([loss_sum, correct, seen], y.device)
    state["loss_sum"] += loss_sum
    state["correct"] += int(correct)
    state["seen"] += int(seen)
    return int(seen)


def _end_epoch(model: nn.Module, data: Dataset, cfg: TrainConfig, state: dict, device: torch.device,
               seconds: float, lr: float) -> dict:
    from trimnet.train.evaluate import accuracy_and_loss

    seen = max(state["seen"], 1)
    row = {"epoch": state["epoch"] + 1, "train_loss": state["loss_sum"] / seen,
           "train_accuracy": state["correct"] / seen, "val_loss": None, "val_accuracy": None,
           "lr": lr, "time_s": seconds}
    if len(data.y_val):
        accuracy, loss = accuracy_and_loss(model, data.x_val, data.y_val, cfg.eval_batch_size, device)
        row["val_loss"], row["val_accuracy"] = loss, accuracy
        if accuracy > state["best_val"]:
            state["best_val"], state["best_epoch"], state["since_best"] = accuracy, state["epoch"], 0
            state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        else:
            state["since_best"] += 1
            if cfg.early_stopping and state["since_best"] >= cfg.early_stopping:
                state["stopped"] = True
    state["history"].append(row)
    state.update(epoch=state["epoch"] + 1, step=0, loss_sum=0.0, correct=0, seen=0)
    return row


def _check_fit(model: nn.Module, data: Dataset) -> None:
    from trimnet.errors import ModelError

    with torch.no_grad():
        was = model.training
        model.eval()
        try:
            out = model(data.x_train[:2].to(next(model.parameters()).device))
        except RuntimeError as exc:
            raise ModelError(f"the model does not accept inputs of shape {tuple(data.x_train.shape[1:])} "
                             f"from {data.name}: {str(exc).splitlines()[0]}") from None
        finally:
            model.train(was)
    if out.dim() != 2 or out.shape[1] != data.num_classes:
        raise ModelError(f"the model gives outputs of shape {tuple(out.shape[1:])} but {data.name} has "
                         f"{data.num_classes} classes; build it with num_classes={data.num_classes}")


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
