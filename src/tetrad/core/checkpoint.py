"""Atomic checkpoints holding everything a resumed run needs to continue bit for bit.

A checkpoint is one `torch.save` file: model, optimizer and scheduler state dicts, the
RNG state of every process, the step, and any method state (a dict of tensors and plain
values, so files load with `weights_only=True`). Files are written atomically by rank 0;
`keep` bounds how many stay on disk. Loading the latest falls back to the one before it, with a
warning, when the latest is unreadable: a disk error or a foreign file costs the steps since it,
not the run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable

import torch

from tetrad.core.distributed import all_gather_objects, barrier, get_rank, is_main, unwrap
from tetrad.core.errors import UserError, warn
from tetrad.core.io import atomic_write
from tetrad.core.seeding import rng_state, set_rng_state

_NAME = re.compile(r"^step_(\d+)\.pt$")


class Checkpointer:
    """`extra` adds entries to every checkpoint (the run directory records how many metrics lines
    the run had logged, so a resumed run forgets exactly those logged after it)."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2,
                 extra: Callable[[], dict[str, Any]] | None = None):
        self.directory = Path(directory)
        self.keep = keep
        self.extra = extra

    def path_for(self, step: int) -> Path:
        return self.directory / f"step_{step:09d}.pt"

    def steps(self) -> list[int]:
        if not self.directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.match(p.name)))

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path_for(steps[-1]) if steps else None

    def save(self, step: int, *, model: torch.nn.Module | None = None, optimizer: Any = None,
             scheduler: Any = None, state: dict[str, Any] | None = None) -> Path | None:
        """Write the checkpoint for `step` (rank 0); every rank must call it (RNG states are gathered)."""
        rng_by_rank = all_gather_objects(rng_state())
        path = None
        if is_main():
            payload = {
                "step": step,
                "model": unwrap(model).state_dict() if model is not None else None,
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng_by_rank,
                "state": state or {},
                **(self.extra() if self.extra is not None else {}),
            }
            path = atomic_write(self.path_for(step), lambda f: torch.save(payload, f))
            for old in self.steps()[: -self.keep] if self.keep > 0 else []:
                self.path_for(old).unlink(missing_ok=True)
        barrier()
        return path

    def load(self, path: str | os.PathLike | None = None, *, model: torch.nn.Module | None = None,
             optimizer: Any = None, scheduler: Any = None, restore_rng: bool = True) -> dict[str, Any]:
        """Load `path` (default: the latest intact one) into the given objects; return the
        checkpoint without its state dicts: `{"step", "state"}` and what `extra` added."""
        payload = load_checkpoint_file(path) if path is not None else self._latest_intact()
        if model is not None:
            unwrap(model).load_state_dict(payload["model"])
        if optimizer is not None:
            optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(payload["scheduler"])
        if restore_rng:
            rngs = payload["rng"]
            rank = get_rank()
            set_rng_state(rngs[rank] if rank < len(rngs) else rngs[0])
        return {k: v for k, v in payload.items() if k not in ("model", "optimizer", "scheduler", "rng")}

    def _latest_intact(self) -> dict[str, Any]:
        steps = self.steps()
        if not steps:
            raise UserError(f"no checkpoint to resume from in {self.directory}")
        for step in steps[:0:-1]:  # newest first; the oldest has none to fall back to
            try:
                return load_checkpoint_file(self.path_for(step))
            except UserError as e:
                warn(f"{e}; loading the checkpoint before it")
        return load_checkpoint_file(self.path_for(steps[0]))

    def discard_after(self, step: int) -> None:
        """Delete checkpoints later than `step` (rank 0): a run resumed from `step` rewrites them,
        and until then they would crowd the intact ones out of `keep`."""
        if is_main():
            for later in self.steps():
                if later > step:
                    self.path_for(later).unlink(missing_ok=True)


def load_checkpoint_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file; a missing or unreadable one is a `UserError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for truncated or foreign files
        raise UserError(f"checkpoint {path} is corrupt or not a tetrad checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or "step" not in payload:
        raise UserError(f"checkpoint {path} is not a tetrad checkpoint")
    return payload
