"""Distributed data-parallel training under ``torchrun``: PyTorch's own engine, not ours.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; with more than one process the
group is initialized (gloo on CPU, NCCL on CUDA) and the model wrapped in DDP. Every rank
draws the same epoch-seeded permutation and takes its interleaved share of each global
batch, so a run with the same global batch size sees the same samples per step as a
single process does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    owns_group: bool = False  # we initialized the process group, so we tear it down

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, batch_indices: torch.Tensor) -> torch.Tensor:
        return batch_indices[self.rank::self.world_size] if self.enabled else batch_indices

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """Sum ``values`` over ranks (identity on one process)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def env_world() -> tuple[int, int, int]:
    return (int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0)),
            int(os.environ.get("WORLD_SIZE", 1)))


def is_main_process() -> bool:
    return env_world()[0] == 0


def restarted() -> bool:
    """True in a worker that torchrun started again after a failure."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (if any) and pick this rank's device."""
    rank, local_rank, world = env_world()
    if world <= 1:
        return DistContext(), device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, store=_store(rank, world), rank=rank, world_size=world,
                                timeout=timedelta(seconds=int(os.environ.get("TRIMNET_DIST_TIMEOUT", 600))))
        owns = True
    return DistContext(rank=rank, local_rank=local_rank, world_size=world, owns_group=owns), device


def _store(rank: int, world: int) -> dist.Store:
    """The rendezvous store, with keys scoped to this attempt.

    After torchrun restarts a failed group, the new workers may meet in the same store as
    the old ones; without a per-attempt prefix, gloo reads the dead workers' addresses and
    waits for them forever (seen with torch 2.13).
    """
    host, port = os.environ.get("MASTER_ADDR", "127.0.0.1"), int(os.environ.get("MASTER_PORT", 29500))
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(host, port, world, is_master=(rank == 0 and not agent_store),
                          timeout=timedelta(seconds=300), multi_tenant=not agent_store)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"trimnet/attempt_{attempt}", store)


def wrap(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """The module to train through: DDP across ranks, the model itself on one process."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)
