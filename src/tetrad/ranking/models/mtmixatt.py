"""MTmixAtt: AutoToken -> N x MTmixAttBlock -> flatten, into the shared heads."""

from __future__ import annotations

import math

import torch
from torch import nn

from tetrad.ranking.blocks import MTmixAttBlock
from tetrad.ranking.tokenizers import AutoToken


class MTmixAtt(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg, groups: list[list[int]] | None = None):
        super().__init__()
        # at least 2: with one feature per token the softmax over it is constant and the grouping cannot learn
        k = cfg.topk_features or max(2, math.ceil(n_features / cfg.tokens))
        self.tokenizer = AutoToken(n_features, e, cfg.tokens, min(k, n_features), cfg.width, cfg.grouping,
                                   groups, seed=cfg.grouping_seed)
        self.blocks = nn.ModuleList([
            MTmixAttBlock(cfg.tokens, cfg.width, cfg.heads, cfg.ffn_hidden, cfg.experts, cfg.shared_experts,
                          n_scenarios, mixing=cfg.mixing, dense_gate=cfg.dense_gate, sparse=cfg.sparse_moe,
                          scenario_shared=cfg.scenario_shared_experts, scenario_top_k=cfg.scenario_top_k,
                          gamma=cfg.gamma, norm=cfg.norm)
            for _ in range(cfg.layers)])
        self.out_dim = cfg.tokens * cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(emb)
        for block in self.blocks:
            x = block(x, scenario)
        return x.flatten(1)

    def aux_loss(self) -> torch.Tensor:
        return sum((b.aux_loss() for b in self.blocks), torch.zeros(()))
