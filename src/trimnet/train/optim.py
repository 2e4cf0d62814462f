"""Optimizers and learning-rate schedules.

Schedules are pure functions of the step, so the schedule's whole state is the step
count already kept in the checkpoint: nothing else to save or restore.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trimnet.config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters: the usual practice, and it keeps
    # BN scales meaningful for the bn_scale pruning criterion.
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if not cfg.weight_decay:  # one group: one fused update per step instead of two
        groups = [{"params": decay + no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_at(step: int, total_steps: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "none":
        return cfg.lr
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** ((step // steps_per_epoch) // max(cfg.step_size, 1))
    span = max(total_steps - warmup, 1)
    t = min((step - warmup) / span, 1.0)
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * t))
    # one-cycle: linear up to the peak over the first 30 %, cosine down to lr/1e4 after
    if t < 0.3:
        return cfg.lr * (0.04 + 0.96 * t / 0.3)
    u = (t - 0.3) / 0.7
    return cfg.lr * (1e-4 + (1 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * u)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
