"""MLP-Mixer over feature tokens: token-mixing MLP across features, channel MLP per token
(pre-norm, residual). The token MLP's hidden width is 2 x the number of features."""

from __future__ import annotations

import torch
from torch import nn

from tetrad.ranking.models.transformer import FeatureTokens


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))


class MixerLayer(nn.Module):
    def __init__(self, n: int, d: int, hidden: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.token_mlp = mlp(n, 2 * n, n)
        self.channel_mlp = mlp(d, hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.ln1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.ln2(x))


class MLPMixer(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        self.tokens = FeatureTokens(n_features, e, cfg.width)
        hidden = cfg.ffn_hidden or 2 * cfg.width
        self.layers = nn.Sequential(*[MixerLayer(n_features, cfg.width, hidden) for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(cfg.width)
        self.out_dim = n_features * cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.tokens(emb))).flatten(1)
