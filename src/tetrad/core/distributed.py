"""`torch.distributed` set-up from the environment `torchrun` sets; a no-op for one process.

Backend: NCCL when CUDA is available, gloo otherwise. Rank 0 alone logs and writes
checkpoints (`is_main`); the helpers below are safe to call whether or not a process
group exists, so recipes carry no `if distributed:` branches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from tetrad.core.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device a config's `device` names: "auto" is this process's GPU (by `local_rank`)
    when CUDA is available, else the CPU; "cuda" without an index is this process's GPU too. A
    name torch does not know, or a GPU this machine does not have, is a `UserError`."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"device: unknown torch device '{name}'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device={name}, but torch sees no CUDA device here (use device=cpu or auto)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"device={name}, but this machine has {torch.cuda.device_count()} CUDA device(s)")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    elif device.type != "cpu":
        raise UserError(f"device={name}: only cpu, cuda[:N] and auto are supported")
    return device


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group `torchrun` describes (WORLD_SIZE > 1), else run alone.

    `device="auto"` picks this process's GPU (by LOCAL_RANK) when CUDA is available.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of `t` over processes (returns `t` itself when alone)."""
    if not is_distributed():
        return t
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / get_world_size()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every process's picklable `obj`, in rank order (`[obj]` when alone)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shard(n: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The contiguous slice of `n` items this process owns; `n` must split evenly.

    Equal shards keep DDP's gradient average equal to the single-process mean over the
    global batch.
    """
    rank = get_rank() if rank is None else rank
    world_size = get_world_size() if world_size is None else world_size
    if n % world_size:
        raise ValueError(f"batch of {n} does not split evenly over {world_size} processes")
    per = n // world_size
    return slice(rank * per, (rank + 1) * per)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()
