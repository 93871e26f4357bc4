"""A toy recipe built only from `tetrad.core`: the reference for resume and DDP tests.

Regression with a small MLP; each step draws a global batch of indices from torch's
global RNG (so a resumed run only matches if RNG state is restored), splits it evenly
over processes, and steps AdamW with a cosine schedule. Run as a script under torchrun.
"""

from __future__ import annotations

import sys

import torch

from tetrad.core.config import RunConfig, load_config
from tetrad.core.distributed import cleanup, init_distributed, shard
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything


class ToyConfig(RunConfig):
    steps: int = 20
    batch_size: int = 16
    lr: float = 0.01
    checkpoint_every: int = 5


class Crash(RuntimeError):
    pass


def train(cfg: ToyConfig, crash_after: int = 0) -> dict:
    """`crash_after` > 0: raise after this many steps, as an interrupted run would (not a setting:
    the run resumed afterwards has the same config)."""
    info = init_distributed("cpu")
    seed_everything(cfg.seed)
    data_gen = torch.Generator().manual_seed(1234)
    x = torch.randn(256, 8, generator=data_gen)
    y = (x[:, :4].sum(1, keepdim=True) - x[:, 4:].prod(1, keepdim=True)).tanh()
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    if info.world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.steps)
    run = RunDir("toy", cfg)
    start = run.restore(cfg.resume, model=model, optimizer=opt, scheduler=sched)["step"]
    for step in range(start + 1, cfg.steps + 1):
        idx = torch.randint(0, len(x), (cfg.batch_size,))[shard(cfg.batch_size)]
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            full = torch.nn.functional.mse_loss(model(x), y).item()
        run.log(step, {"full_loss": full, "lr": sched.get_last_lr()[0]})
        if step % cfg.checkpoint_every == 0:
            run.checkpointer.save(step, model=model, optimizer=opt, scheduler=sched)
        if step == crash_after:
            raise Crash(f"simulated interruption after step {step}")
    params = torch.cat([p.detach().flatten() for p in model.parameters()])
    summary = {"full_loss": full, "params": params.tolist()}
    run.write_summary(summary)
    run.close()
    cleanup()
    return summary


if __name__ == "__main__":
    train(load_config(ToyConfig, None, sys.argv[1:]))
