"""GRPO as pure functions of tensors: group-normalised advantages, the clipped-ratio loss with
token-level averaging, and the k3 estimator of KL to a reference policy."""

from __future__ import annotations

import torch

from tetrad.core.errors import UserError


def group_advantages(rewards: torch.Tensor, group_size: int, normalise_std: bool = True,
                     eps: float = 1e-6) -> torch.Tensor:
    """A_i = (r_i - mean(group)) / (std(group) + eps) for contiguous groups of `group_size` rows.

    `std` is the population standard deviation (unbiased=False), so a group of identical rewards
    gets advantage 0 and a single-sample group is well defined.
    """
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise UserError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not torch.isfinite(rewards).all():
        raise UserError("rewards contain NaN or infinity")
    r = rewards.float().view(-1, group_size)
    centred = r - r.mean(1, keepdim=True)
    if normalise_std:
        centred = centred / (r.std(1, unbiased=False, keepdim=True) + eps)
    return centred.view(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 (>= 0, unbiased)."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def grpo_token_losses(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_eps: float = 0.2, ref_logp: torch.Tensor | None = None,
                      kl_coef: float = 0.0) -> torch.Tensor:
    """Per-token loss [B, T]: -min(rho * A, clip(rho, 1-eps, 1+eps) * A) (+ kl_coef * k3 KL),
    rho = exp(logp - old_logp), A broadcast from one advantage per response."""
    ratio = torch.exp(logp - old_logp)
    a = advantages.unsqueeze(-1)
    loss = -torch.minimum(ratio * a, ratio.clamp(1 - clip_eps, 1 + clip_eps) * a)
    if ref_logp is not None and kl_coef:
        loss = loss + kl_coef * k3_kl(logp, ref_logp)
    return loss


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              clip_eps: float = 0.2, ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
              n_tokens: float | None = None) -> torch.Tensor:
    """Token-level mean of `grpo_token_losses` over masked tokens. `n_tokens` overrides the
    denominator, so micro-batches (and processes) can share the whole batch's token count."""
    losses = grpo_token_losses(logp, old_logp, advantages, clip_eps, ref_logp, kl_coef) * mask
    denom = mask.sum() if n_tokens is None else n_tokens
    return losses.sum() / max(float(denom), 1.0)
