"""DNN (DLRM-style MLP over the concatenated feature embeddings): the floor."""

from __future__ import annotations

import torch
from torch import nn


class DNN(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        dims = [n_features * e] + [cfg.ffn_hidden] * cfg.layers
        self.mlp = nn.Sequential(*[m for a, b in zip(dims, dims[1:]) for m in (nn.Linear(a, b), nn.ReLU())])
        self.out_dim = dims[-1]

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        return self.mlp(emb.flatten(1))
