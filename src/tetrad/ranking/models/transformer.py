"""A plain Transformer encoder over feature tokens (softmax self-attention, post-norm)."""

from __future__ import annotations

import torch
from torch import nn


class FeatureTokens(nn.Module):
    """Each feature embedding projected to width d, plus a learned per-feature position vector."""

    def __init__(self, n_features: int, e: int, d: int):
        super().__init__()
        self.proj = nn.Linear(e, d)
        self.position = nn.Parameter(torch.randn(n_features, d) * 0.02)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.proj(emb) + self.position


class Transformer(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        self.tokens = FeatureTokens(n_features, e, cfg.width)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, cfg.ffn_hidden or 2 * cfg.width, dropout=0.0,
                                           activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.out_dim = n_features * cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.tokens(emb)).flatten(1)
