"""CTR / CTCVR heads shared by every model, and the multi-task loss.

Two towers (CTR and CVR) read the backbone's representation: one vector per sample
([B, D]) or one per task ([B, 2, D], from MMoE / PLE). The main scenario (id 0) uses the
towers as they are; every other scenario adds a low-rank adapter (A_s B_s, rank r, B_s
initialised to zero) to each tower's first layer. ESMM: pCTCVR = pCTR x pCVR, so the CVR
tower is trained through the click -> conversion funnel on all impressions.
"""

from __future__ import annotations

import torch
from torch import nn


class Tower(nn.Module):
    def __init__(self, d_in: int, hidden: list[int], n_scenarios: int, rank: int):
        super().__init__()
        dims = [d_in, *hidden]
        self.first = nn.Linear(d_in, dims[1])
        self.rest = nn.Sequential(*[m for a, b in zip(dims[1:-1], dims[2:]) for m in (nn.ReLU(), nn.Linear(a, b))],
                                  nn.ReLU(), nn.Linear(dims[-1], 1))
        self.rank = rank if n_scenarios > 1 else 0
        if self.rank:
            self.adapter_a = nn.Parameter(torch.randn(n_scenarios, d_in, self.rank) / d_in ** 0.5)
            self.adapter_b = nn.Parameter(torch.zeros(n_scenarios, self.rank, dims[1]))

    def forward(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        h = self.first(x)
        if self.rank:
            # every scenario's adapter, then the sample's own picked by a one-hot mask: cheaper to
            # differentiate than gathering a [B, d_in, r] slice per sample
            own = nn.functional.one_hot(scenario, self.adapter_a.shape[0]).to(x.dtype)
            own[:, 0] = 0  # the main scenario has no adapter
            low = torch.einsum("bi,sir->bsr", x, self.adapter_a) * own.unsqueeze(-1)
            h = h + torch.einsum("bsr,sro->bo", low, self.adapter_b)
        return self.rest(h).squeeze(-1)


class MultiTaskHeads(nn.Module):
    def __init__(self, d_in: int, hidden: list[int], n_scenarios: int, adapter_rank: int):
        super().__init__()
        self.ctr = Tower(d_in, hidden, n_scenarios, adapter_rank)
        self.cvr = Tower(d_in, hidden, n_scenarios, adapter_rank)

    def forward(self, rep: torch.Tensor, scenario: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logit pCTR, logit pCVR)."""
        r_ctr, r_cvr = (rep[:, 0], rep[:, 1]) if rep.dim() == 3 else (rep, rep)
        return self.ctr(r_ctr, scenario), self.cvr(r_cvr, scenario)


def probabilities(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pCTR, pCTCVR = pCTR x pCVR)."""
    p_ctr = torch.sigmoid(ctr_logit)
    return p_ctr, p_ctr * torch.sigmoid(cvr_logit)


def multitask_loss(ctr_logit: torch.Tensor, cvr_logit: torch.Tensor, click: torch.Tensor,
                   conversion: torch.Tensor) -> torch.Tensor:
    """Mean BCE of CTR and CTCVR over the batch (all scenarios pooled).

    Scenarios count in proportion to their traffic: the plain mean over impressions, which
    is also what keeps the DDP gradient average equal to the global-batch loss. log pCTCVR
    is computed in log space (log σ(a) + log σ(b)) so it stays finite.
    """
    ctr = nn.functional.binary_cross_entropy_with_logits(ctr_logit, click)
    log_p = nn.functional.logsigmoid(ctr_logit) + nn.functional.logsigmoid(cvr_logit)
    log_not_p = torch.log((-torch.expm1(log_p)).clamp(min=1e-7))  # log(1 - p)
    ctcvr = -(conversion * log_p + (1 - conversion) * log_not_p).mean()
    return (ctr + ctcvr) / 2
