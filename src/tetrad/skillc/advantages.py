"""Advantage estimators of SkillC and its baselines, as pure functions of tensors.

Every function takes one row per rollout (episode): `rewards` [N] (float), `skill_flags` [N]
(bool, z=1: the skill was injected into the prompts), `task_ids` [N] (int: rollouts of the same
game instance share an id; they need not be contiguous). Each turn of an episode is then a
sample carrying its episode's advantage (verl-agent's multi-turn convention).

GRPO (the first baseline), per task x with rollouts i in G(x):

    A_i = (r_i - mean_{G(x)} r) / (std_{G(x)} r + eps)

SkillC's dual-stream advantage (CSCA). The paper's equations were not readable; this is the
natural reading of its description (shared/notes/skillc.md), with our choices marked:

    stream 1 (global ranking):   A1_i = (r_i - mean_{G(x)} r) / (std_{G(x)} r + eps)
    stream 2 (within condition): A2_i = (r_i - mean_{G(x,z_i)} r) / (std_{G(x,z_i)} r + eps) + c_i
    skill gap of the task:       delta_x = mean_{G(x,1)} r - mean_{G(x,0)} r
                                 (0 when the task has rollouts of one condition only)
    one-sided correction:        g_x = lambda * max(delta_x, 0) / (std_{G(x)} r + eps)
                                 c_i = g_x * s_i * (+1 if z_i = 0 else -1)
    mixed:                       A_i = (1 - w) * A1_i + w * A2_i

`s_i = 1[r_i > mean_{G(x)} r]` marks a *success* as an outcome above the task's mean (our
choice: it needs no success threshold, so it works for ALFWorld's 10 x won and the shop's
graded score alike). The gap is divided by the task's reward std (our choice) so that lambda
is in advantage units whatever the reward scale. The correction boosts skill-free successes,
discounts skill-injected ones, and is zero when the gap is not positive, so once the skill-free
policy is as good as the skill-injected one nothing biases it. lambda is the correction
strength (the curriculum's attribution strength), w the mix weight (the paper's w = 0.4; which
stream w weights is not stated: we weight the contrastive stream).

`fixed_gate_advantages` is the paper's "mixed normalisation with a fixed gate" ablation: one
stream (the global one) plus the correction at a fixed gate strength, whatever the gap.

`d2skill_advantages`: D2Skill's intrinsic bonus for skill-injected rollouts,
`b_i = coef * z_i * (s_i - mean_{G(x,0)} s)` with `s_i` the episode's success (won),
added to the reward before GRPO's normalisation (it rewards skill-injected success, the opposite
direction to SkillC).
"""

from __future__ import annotations

import torch

from tetrad.core.errors import UserError

EPS = 1e-6


def _check(rewards: torch.Tensor, *others: torch.Tensor) -> None:
    if rewards.ndim != 1 or any(o.shape != rewards.shape for o in others):
        raise UserError("rewards, skill flags and task ids need one entry per rollout")
    if not torch.isfinite(rewards).all():
        raise UserError("rewards contain NaN or infinity")


def _group_stats(values: torch.Tensor, groups: torch.Tensor, weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row: mean and population std of `values` over the rows of its group (restricted to
    rows with `weight` 1), and the group's count of such rows."""
    weight = torch.ones_like(values) if weight is None else weight.to(values.dtype)
    _, inverse = torch.unique(groups, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    count = torch.zeros(n_groups, dtype=values.dtype).index_add_(0, inverse, weight)
    total = torch.zeros(n_groups, dtype=values.dtype).index_add_(0, inverse, weight * values)
    mean = total / count.clamp(min=1)
    sq = torch.zeros(n_groups, dtype=values.dtype).index_add_(0, inverse, weight * (values - mean[inverse]) ** 2)
    std = (sq / count.clamp(min=1)).sqrt()
    return mean[inverse], std[inverse], count[inverse]


def grpo_advantages(rewards: torch.Tensor, task_ids: torch.Tensor, normalise_std: bool = True) -> torch.Tensor:
    """GRPO: each rollout's reward normalised over the rollouts of its task."""
    _check(rewards, task_ids)
    r = rewards.double()
    mean, std, _ = _group_stats(r, task_ids)
    centred = r - mean
    return (centred / (std + EPS) if normalise_std else centred).float()


def skill_gaps(rewards: torch.Tensor, skill_flags: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
    """Per rollout, its task's estimated skill gap delta_x = mean reward with skills - without
    (0 when the task has rollouts of one condition only)."""
    _check(rewards, skill_flags, task_ids)
    r, z = rewards.double(), skill_flags.bool()
    on_mean, _, on_n = _group_stats(r, task_ids, z)
    off_mean, _, off_n = _group_stats(r, task_ids, ~z)
    return torch.where((on_n > 0) & (off_n > 0), on_mean - off_mean, torch.zeros_like(r)).float()


def _correction(rewards: torch.Tensor, skill_flags: torch.Tensor, task_ids: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
    """c_i = scale_i * s_i * (+1 skill-free, -1 skill-injected), s_i = r_i above its task's mean."""
    r = rewards.double()
    mean, _, _ = _group_stats(r, task_ids)
    success = (r > mean + EPS).double()
    sign = 1.0 - 2.0 * skill_flags.bool().double()
    return scale * success * sign


def dual_stream_advantages(rewards: torch.Tensor, skill_flags: torch.Tensor, task_ids: torch.Tensor,
                           strength: float | torch.Tensor = 1.0, mix: float = 0.4) -> torch.Tensor:
    """SkillC's dual-stream advantage (equations in the module docstring). `strength` (lambda)
    may be a scalar or one value per rollout (the curriculum's strength of its skill type)."""
    _check(rewards, skill_flags, task_ids)
    if not 0.0 <= mix <= 1.0:
        raise UserError(f"mix weight must be in [0, 1] (got {mix})")
    strength = torch.as_tensor(strength, dtype=torch.float64).expand(rewards.shape)
    if (strength < 0).any():
        raise UserError("correction strength must be at least 0")
    r, z = rewards.double(), skill_flags.bool()
    mean, std, _ = _group_stats(r, task_ids)
    stream1 = (r - mean) / (std + EPS)
    cond_groups = task_ids.long() * 2 + z.long()
    c_mean, c_std, _ = _group_stats(r, cond_groups)
    gap = skill_gaps(rewards, skill_flags, task_ids).double()
    scale = strength * gap.clamp(min=0) / (std + EPS)
    stream2 = (r - c_mean) / (c_std + EPS) + _correction(rewards, skill_flags, task_ids, scale)
    return ((1 - mix) * stream1 + mix * stream2).float()


def fixed_gate_advantages(rewards: torch.Tensor, skill_flags: torch.Tensor, task_ids: torch.Tensor,
                          gate: float = 0.5) -> torch.Tensor:
    """The "mixed normalisation with a fixed gate" ablation: A_i = A1_i + gate * s_i * (+1 / -1),
    a correction of fixed size whether or not the skill still helps."""
    _check(rewards, skill_flags, task_ids)
    stream1 = grpo_advantages(rewards, task_ids).double()
    gate_t = torch.full_like(stream1, float(gate))
    return (stream1 + _correction(rewards, skill_flags, task_ids, gate_t)).float()


def d2skill_advantages(rewards: torch.Tensor, skill_flags: torch.Tensor, task_ids: torch.Tensor,
                       successes: torch.Tensor, coef: float = 1.0) -> torch.Tensor:
    """D2Skill: GRPO on r_i + coef * z_i * (s_i - mean of s over the task's skill-free rollouts),
    `successes` s_i in {0, 1}; no bonus for a task without skill-free rollouts."""
    _check(rewards, skill_flags, task_ids, successes)
    r, z, s = rewards.double(), skill_flags.bool(), successes.double()
    off_mean, _, off_n = _group_stats(s, task_ids, ~z)
    bonus = torch.where(z & (off_n > 0), coef * (s - off_mean), torch.zeros_like(r))
    return grpo_advantages((r + bonus).float(), task_ids)
