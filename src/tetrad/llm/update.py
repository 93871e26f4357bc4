"""The policy-update loop: GRPO steps with AdamW (one per mini-batch of prompts), gradient clipping
and accumulation, a warm-up + cosine learning-rate schedule, an optional frozen reference for the
KL term, and DDP.

Advantage hooks run between "advantages computed" and "policy updated": each is a callable
`hook(advantages, rollouts, context) -> advantages` (TTRL-Guard and SkillC plug in there).
Under torchrun every process passes the same global batch; each trains on its shard and DDP
averages, so 2 processes take the same step as 1 (the loss is normalised by the global count
of response tokens, not the local one).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from tetrad.core.config import Config, NonNegativeFloat, PositiveFloat, PositiveInt, Share
from tetrad.core.distributed import all_reduce_mean, get_world_size, is_distributed, shard, unwrap
from tetrad.core.errors import UserError
from tetrad.llm.grpo import group_advantages, grpo_loss, k3_kl
from tetrad.llm.logprobs import token_logprobs
from tetrad.llm.sampling import Rollouts

AdvantageHook = Callable[[torch.Tensor, Rollouts, dict[str, Any]], torch.Tensor]


class UpdateConfig(Config):
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.0
    warmup_ratio: Share = 0.03  # share of total_steps spent warming up linearly from 0
    min_lr_ratio: Share = 0.0  # cosine decays to lr * min_lr_ratio at total_steps
    total_steps: PositiveInt = 100  # optimizer steps the schedule spans: batches x mini-batches per batch
    clip_eps: PositiveFloat = 0.2
    kl_coef: NonNegativeFloat = 0.0  # > 0 keeps a frozen copy of the starting policy as the reference
    max_grad_norm: PositiveFloat = 1.0
    micro_batch: PositiveInt = 64  # rows per forward/backward; the batch is accumulated over them
    # one optimizer step per slice of the batch's prompts (whole groups; at most one per prompt), as
    # the TTRL reference does (8 steps per 8-prompt batch); 1: one step per batch
    mini_batches: PositiveInt = 1
    epochs: PositiveInt = 1  # optimisation passes over each mini-batch (1: on-policy, the ratio is 1)
    normalise_std: bool = True


def warmup_cosine(total_steps: int, warmup_ratio: float, min_lr_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over ceil(warmup_ratio * total) steps, then cosine to min_lr_ratio."""
    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class PolicyUpdater:
    """`temperature` is the one the rollouts were sampled at: the log-probs of the loss (and of the
    KL reference) divide the logits by it, so the policy trained is the one that sampled, and a
    fresh update's ratio is 1 (not a setting of its own, which could silently disagree)."""

    def __init__(self, model: torch.nn.Module, cfg: UpdateConfig, hooks: Sequence[AdvantageHook] = (),
                 temperature: float = 1.0):
        if temperature <= 0:
            raise UserError(f"the update needs the sampling temperature (> 0; greedy decoding has no "
                            f"log-probs to train), got {temperature}")
        self.cfg, self.temperature = cfg, temperature
        self.ref = copy.deepcopy(model).eval().requires_grad_(False) if cfg.kl_coef > 0 else None
        self.model = torch.nn.parallel.DistributedDataParallel(model) if is_distributed() else model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(cfg.total_steps, cfg.warmup_ratio, cfg.min_lr_ratio))
        self.hooks: list[AdvantageHook] = list(hooks)

    @property
    def policy(self) -> torch.nn.Module:
        """The bare model (for sampling and saving), outside any DDP wrapper."""
        return unwrap(self.model)

    def advantages(self, rollouts: Rollouts, rewards: torch.Tensor, context: dict[str, Any] | None = None
                   ) -> torch.Tensor:
        """Group-normalised advantages, then every hook in order."""
        adv = group_advantages(rewards, rollouts.group_size, self.cfg.normalise_std)
        for hook in self.hooks:
            adv = hook(adv, rollouts, context or {})
        return adv

    def step(self, rollouts: Rollouts, rewards: torch.Tensor, context: dict[str, Any] | None = None
             ) -> dict[str, float]:
        """One GRPO step on a global batch: advantages, hooks, update. Returns logged statistics."""
        adv = self.advantages(rollouts, rewards, context)
        stats = self.update(rollouts, adv)
        stats["adv_abs_mean"] = float(adv.abs().mean())
        return stats

    def update(self, rollouts: Rollouts, advantages: torch.Tensor) -> dict[str, float]:
        """Split the batch by prompt into `mini_batches` slices and take one optimizer step (`epochs`
        of them) per slice. Returns the slices' mean loss, kl, clip fraction and gradient norm, and
        the learning rate of the first."""
        if advantages.shape != (len(rollouts),) or not torch.isfinite(advantages).all():
            raise UserError(f"need one finite advantage per response ({len(rollouts)}), got {tuple(advantages.shape)}")
        prompts = torch.arange(len(rollouts)).view(-1, rollouts.group_size)  # a prompt's rows are contiguous
        slices = [p.flatten() for p in prompts.tensor_split(min(self.cfg.mini_batches, len(prompts)))]
        # Every slice after the first is trained by a policy that has moved: all old log-probs come
        # from the policy that sampled, before the first step.
        needs_old = self.cfg.epochs > 1 or len(slices) > 1
        parts = [self._shard(rollouts.select(s), advantages[s], needs_old) for s in slices]
        stats = [self._optimise(p) for p in parts]
        out = {k: sum(st[k] for st in stats) / len(stats) for k in ("loss", "kl", "clip_frac", "grad_norm")}
        return {**out, "lr": stats[0]["lr"], "response_tokens": float(rollouts.response_mask.sum())}

    def _shard(self, rollouts: Rollouts, advantages: torch.Tensor, needs_old: bool) -> "_Shard":
        """This process's rows of one mini-batch, in micro-batches, with their old and reference log-probs."""
        world = get_world_size()
        rows = torch.arange(len(rollouts))[shard(len(rollouts))]
        local = rollouts.select(rows)
        # Every process divides by the global token count / world size; DDP's mean then gives the
        # token-level mean over the whole mini-batch.
        n_tokens = float(rollouts.response_mask.sum()) / world
        chunks = [torch.arange(len(local))[i:i + self.cfg.micro_batch]
                  for i in range(0, len(local), self.cfg.micro_batch)]
        with torch.no_grad():
            old = [self._logp(self.model, local.select(c)) for c in chunks] if needs_old else None
            ref = [self._logp(self.ref, local.select(c)) for c in chunks] if self.ref is not None else None
        return _Shard(local, advantages[rows], n_tokens, chunks, old, ref)

    def _optimise(self, part: "_Shard") -> dict[str, float]:
        local, adv, chunks, old, ref = part.local, part.advantages, part.chunks, part.old, part.ref
        total_loss = kl_sum = clipped = 0.0
        grad_norm = torch.tensor(0.0)
        for _ in range(self.cfg.epochs):
            self.optimizer.zero_grad(set_to_none=True)
            total_loss = kl_sum = clipped = 0.0
            for i, c in enumerate(chunks):
                mb = local.select(c)
                sync = i == len(chunks) - 1 or not is_distributed()
                with (torch.enable_grad() if sync else self.model.no_sync()):
                    logp = self._logp(self.model, mb)
                    old_logp = old[i] if old is not None else logp.detach()
                    ref_logp = ref[i] if ref is not None else None
                    loss = grpo_loss(logp, old_logp, adv[c], mb.response_mask, self.cfg.clip_eps, ref_logp,
                                     self.cfg.kl_coef, n_tokens=part.n_tokens)
                    loss.backward()
                total_loss += float(loss.detach())
                with torch.no_grad():
                    m = mb.response_mask.bool()
                    ratio = torch.exp(logp.detach() - old_logp)[m]
                    clipped += float(((ratio - 1).abs() > self.cfg.clip_eps).sum())
                    if ref_logp is not None:
                        kl_sum += float(k3_kl(logp.detach(), ref_logp)[m].sum())
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        denom = max(part.n_tokens, 1.0)
        return {"loss": _global_mean(total_loss), "kl": _global_mean(kl_sum / denom),
                "clip_frac": _global_mean(clipped / denom), "grad_norm": float(grad_norm), "lr": lr}

    def _logp(self, model, mb: Rollouts) -> torch.Tensor:
        return token_logprobs(model, mb.prompt_ids, mb.prompt_mask, mb.response_ids, mb.response_mask,
                              self.temperature)

    def state_dict_parts(self) -> dict[str, Any]:
        """What `Checkpointer.save` takes: model, optimizer, scheduler."""
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}


@dataclass
class _Shard:
    local: Rollouts
    advantages: torch.Tensor
    n_tokens: float  # the whole mini-batch's response tokens / world size
    chunks: list[torch.Tensor]
    old: list[torch.Tensor] | None
    ref: list[torch.Tensor] | None


def _global_mean(x: float) -> float:
    """Sum of the per-process parts (each already divided by the global count / world size), / world."""
    return float(all_reduce_mean(torch.tensor(x, dtype=torch.float64)))
