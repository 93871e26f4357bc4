"""HiFormer (arXiv 2311.05884): heterogeneous self-attention over feature tokens.

Per layer: feature-specific Q/K/V projections (token i has its own W_Q^i, W_K^i, W_V^i);
softmax attention per head; a composite projection over the concatenation of all
tokens' attention outputs (T·d -> T·d), low-rank factorised (T·d -> r -> T·d) as the
paper's approximation; residual + LayerNorm; then a shared FFN with residual + LayerNorm.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tetrad.ranking.models.transformer import FeatureTokens


class HeteroAttentionLayer(nn.Module):
    def __init__(self, t: int, d: int, heads: int, hidden: int, rank: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Parameter(torch.randn(t, d, 3 * d) / math.sqrt(d))
        self.down = nn.Linear(t * d, rank)
        self.up = nn.Linear(rank, t * d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = torch.einsum("btd,tde->bte", x, self.qkv).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        att = torch.einsum("bthc,bshc->bhts", q, k).div(math.sqrt(d // self.heads)).softmax(-1)
        o = torch.einsum("bhts,bshc->bthc", att, v).reshape(b, t * d)
        x = self.ln1(x + self.up(self.down(o)).view(b, t, d))
        return self.ln2(x + self.ffn(x))


class HiFormer(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        self.tokens = FeatureTokens(n_features, e, cfg.width)
        hidden = cfg.ffn_hidden or 2 * cfg.width
        self.layers = nn.Sequential(*[HeteroAttentionLayer(n_features, cfg.width, cfg.heads, hidden, cfg.lowrank)
                                      for _ in range(cfg.layers)])
        self.out_dim = n_features * cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        return self.layers(self.tokens(emb)).flatten(1)
