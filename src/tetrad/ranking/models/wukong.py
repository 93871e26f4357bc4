"""WuKong (arXiv 2403.02545): stacked interaction layers of a factorization-machine block
(FMB) and a linear compression block (LCB), with residual and LayerNorm, in the paper's
token layout.

FMB (optimised FM): X [n, e]; compressed X^T P (P: n x k) so the pairwise interactions
are X (X^T P) [n, k]; flattened, LayerNorm, an MLP to n_F·e, reshaped to n_F tokens.
LCB: a linear map over the token axis, n -> n_L tokens. Output of a layer: the n_F + n_L
tokens, plus the input (projected over the token axis when the count changes), LayerNorm.
Here n_F = n_L = tokens / 2 and k = the `compression` knob.

FuxiCTR's reference implementation (model_zoo/WuKong) lays a layer out differently: its FMB
ends in a vector of `fmb_dim` units, its LCB is a linear map of the flattened n·e input to
`compression_dim` units, and a linear transform takes their concatenation back to n·e
before the residual, so the token count never changes. Its `project_dim` is this module's
`compression` (k), and its `compression_dim` has no counterpart here (n_L plays that role).
"""

from __future__ import annotations

import torch
from torch import nn


class WuKongLayer(nn.Module):
    def __init__(self, n_in: int, e: int, n_fmb: int, n_lcb: int, k: int, hidden: int):
        super().__init__()
        self.n_fmb, self.e = n_fmb, e
        self.compress = nn.Linear(n_in, k, bias=False)
        self.fmb = nn.Sequential(nn.LayerNorm(n_in * k), nn.Linear(n_in * k, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_fmb * e))
        self.lcb = nn.Linear(n_in, n_lcb, bias=False)
        n_out = n_fmb + n_lcb
        self.residual = nn.Linear(n_in, n_out, bias=False) if n_in != n_out else None
        self.ln = nn.LayerNorm(e)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        inter = torch.bmm(x, self.compress(x.transpose(1, 2)))  # [B, n, k]
        fmb = self.fmb(inter.flatten(1)).view(b, self.n_fmb, self.e)
        lcb = self.lcb(x.transpose(1, 2)).transpose(1, 2)
        res = self.residual(x.transpose(1, 2)).transpose(1, 2) if self.residual is not None else x
        return self.ln(torch.cat([fmb, lcb], 1) + res)


class WuKong(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        n_fmb = max(1, cfg.tokens // 2)
        n_lcb = max(1, cfg.tokens - n_fmb)
        ns = [n_features] + [n_fmb + n_lcb] * cfg.layers
        self.layers = nn.Sequential(*[WuKongLayer(n, e, n_fmb, n_lcb, cfg.compression, cfg.ffn_hidden)
                                      for n in ns[:-1]])
        self.out_dim = ns[-1] * e

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        return self.layers(emb).flatten(1)
