"""RankMixer (arXiv 2507.15551) and its ReLU sparse-MoE variant.

Tokenization: the feature embeddings are concatenated, cut into T equal chunks (zero
padded) and each chunk is projected to width D by its own linear map. Block:
S = LN(TokenMixing(X) + X); Y = LN(PerTokenFFN(S) + S), where token mixing is the
parameter-free transpose (H = T heads) and the per-token FFN is a separate 2-layer GELU
MLP per token. Output: mean over tokens.

`moe_experts > 0` replaces each per-token FFN by a per-token MoE of that many experts
(hidden ffn_hidden / experts each, so parameters stay put) with one ReLU router per token
and an L1 penalty on its gates (`aux_loss`): the paper's ReLU routing. It is dense in
training, and since an expert whose gate is 0 adds nothing, sparse dispatch at inference gives
the same output. The paper's DTSI (dense-training / sparse-inference) variant, with a second
router used only at inference and the L1 penalty on that router alone, is not implemented: the
paper does not say how the inference router gets the task gradient while the training router
routes, every reading of it changes what the baseline learns, and with one router the model
served is exactly the model trained, so there is no train / serve gap for DTSI to close here.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tetrad.core.errors import UserError
from tetrad.ranking.blocks import TokenExperts, transpose_mix


class PerTokenFFN(nn.Module):
    """The per-token FFN (one expert per token) or its ReLU-gated MoE, run by the same fused
    `TokenExperts` as MTmixAtt's MoEs so the two are timed on equal terms."""

    def __init__(self, t: int, d: int, hidden: int, experts: int = 0):
        super().__init__()
        self.experts = experts
        e = max(experts, 1)
        self.ffn = TokenExperts(t, e, d, max(1, hidden // e))
        if experts:
            self.gate = nn.Parameter(torch.randn(t, d, experts) / math.sqrt(d))
            self.gate_bias = nn.Parameter(torch.full((t, experts), 0.1))
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.experts:
            return self.ffn(x)
        g = torch.relu(torch.einsum("btd,tde->bte", x, self.gate) + self.gate_bias)
        self.aux_loss = g.sum(-1).mean()
        return self.ffn(x, g)


class RankMixer(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg, moe_experts: int = 0):
        super().__init__()
        t, d = cfg.tokens, cfg.width
        if d % t:
            raise UserError(f"RankMixer needs width divisible by tokens ({d} % {t} != 0)")
        self.t = t
        self.chunk = math.ceil(n_features * e / t)
        self.proj = nn.Parameter(torch.randn(t, self.chunk, d) / math.sqrt(self.chunk))
        self.proj_bias = nn.Parameter(torch.zeros(t, d))
        self.ffns = nn.ModuleList([PerTokenFFN(t, d, cfg.ffn_hidden, moe_experts) for _ in range(cfg.layers)])
        self.ln1 = nn.ModuleList([nn.LayerNorm(d) for _ in range(cfg.layers)])
        self.ln2 = nn.ModuleList([nn.LayerNorm(d) for _ in range(cfg.layers)])
        self.out_dim = d

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        flat = emb.flatten(1)
        flat = nn.functional.pad(flat, (0, self.t * self.chunk - flat.shape[1]))
        x = torch.einsum("btc,tcd->btd", flat.view(-1, self.t, self.chunk), self.proj) + self.proj_bias
        for ffn, ln1, ln2 in zip(self.ffns, self.ln1, self.ln2):
            s = ln1(transpose_mix(x) + x)
            x = ln2(ffn(s) + s)
        return x.mean(1)

    def aux_loss(self) -> torch.Tensor:
        return sum((f.aux_loss for f in self.ffns), torch.zeros(()))
