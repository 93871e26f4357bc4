"""MTmixAtt's building blocks: multi-mix attention, shared dense MoE, scenario-aware sparse
MoE, and the block that stacks them with PostNormR. Each part is switchable for ablations.

Experts are 2-layer GELU MLPs, a separate set per token (the natural reading given that
MTmixAtt grows out of RankMixer's per-token FFN; it also keeps FLOPs per parameter equal to
RankMixer's). Each MoE runs all its experts, routed and shared, fused in `TokenExperts`
(two matmuls per token); shared experts are experts whose gate is fixed at 1. Sparse
routing is computed densely and masked: the outputs equal a sparse dispatch, which only
pays off at sizes beyond this box.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from tetrad.core.errors import UserError


class MultiMixAttention(nn.Module):
    """Token mixing with learned per-head n_g x n_g matrices (not softmax QK attention).

    Tokens [B, T, d] split along d into H heads; head h mixes across tokens with its own
    matrix M_h: out[t] = sum_s M_h[t, s] x[s]. The block adds the residual.
    `init`: "orthogonal" (the paper's choice), "zero", or "transpose": RankMixer's fixed,
    parameter-free mixing (head h of every token gathered into token h; needs d % T == 0),
    which is the paper's "fixed transpose" ablation.
    """

    def __init__(self, n_tokens: int, d: int, heads: int, init: str = "orthogonal"):
        super().__init__()
        self.init, self.heads = init, heads
        if init == "transpose":
            if d % n_tokens:
                raise UserError(f"transpose mixing needs width divisible by tokens ({d} % {n_tokens} != 0)")
            return
        if d % heads:
            raise UserError(f"width {d} must be divisible by mixing heads {heads}")
        m = torch.empty(heads, n_tokens, n_tokens)
        if init == "orthogonal":
            for h in range(heads):
                nn.init.orthogonal_(m[h])
        elif init == "zero":
            m.zero_()
        else:
            raise UserError(f"unknown mixing init '{init}' (orthogonal, zero, transpose)")
        self.mix = nn.Parameter(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        if self.init == "transpose":
            return transpose_mix(x)
        xh = x.view(b, t, self.heads, d // self.heads)
        return torch.einsum("hts,bshc->bthc", self.mix, xh).reshape(b, t, d)


def transpose_mix(x: torch.Tensor) -> torch.Tensor:
    """RankMixer's parameter-free token mixing: T heads per token, head h of all tokens -> token h."""
    b, t, d = x.shape
    return x.view(b, t, t, d // t).transpose(1, 2).reshape(b, t, d)


class TokenExperts(nn.Module):
    """E independent 2-layer GELU MLPs d -> hidden -> d per token (each of the T tokens has its
    own set, as RankMixer's per-token FFN), returning their gate-weighted sum [B, T, d].

    All experts of a token run fused, as two matmuls per token batched over the T tokens:
    [B, d] x [d, E·h] for every expert's hidden layer at once, then the gates scale each
    expert's slice of the hidden activations and [B, E·h] x [E·h, d] sums the experts'
    outputs in the same matmul: sum_e g_e (W2_e h_e + b2_e) = (g ⊙ h) W2 + g b2. Per-expert
    matmuls of width h (75 at the 15m preset) and a materialised [B, T, E, d] would run at a
    fraction of the machine's matmul rate. Weights are stored in the fused layout:
    w1 [T, d, E·h], w2 [T, E·h, d], expert e owning columns / rows e·h ... (e+1)·h - 1.
    """

    def __init__(self, t: int, n: int, d: int, hidden: int):
        super().__init__()
        self.n, self.hidden = n, hidden
        self.w1 = nn.Parameter(torch.randn(t, d, n * hidden) / math.sqrt(d))
        self.b1 = nn.Parameter(torch.zeros(t, n * hidden))
        self.w2 = nn.Parameter(torch.randn(t, n * hidden, d) / math.sqrt(hidden) * 0.5)
        self.b2 = nn.Parameter(torch.zeros(t, n, d))

    def forward(self, x: torch.Tensor, gates: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, T, d]; gates [B, T, E] (None: every expert with weight 1)."""
        b, t, _ = x.shape
        xt = x.transpose(0, 1)  # [T, B, d]: tokens are the batch of the matmuls
        h = nn.functional.gelu(torch.baddbmm(self.b1.unsqueeze(1), xt, self.w1))  # [T, B, E·h]
        if gates is None:
            bias = self.b2.sum(1).unsqueeze(1)
        else:
            gt = gates.transpose(0, 1)  # [T, B, E]
            h = (h.view(t, b, self.n, self.hidden) * gt.unsqueeze(-1)).view(t, b, -1)
            bias = torch.bmm(gt, self.b2)
        return torch.baddbmm(bias, h, self.w2).transpose(0, 1)


class TokenRouter(nn.Module):
    """Per-token linear router: [B, T, d] -> [B, T, E] logits."""

    def __init__(self, t: int, d: int, n: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(t, d, n) / math.sqrt(d))
        self.b = nn.Parameter(torch.zeros(t, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("btd,tde->bte", x, self.w) + self.b


def with_shared(gates: torch.Tensor, n_shared: int) -> torch.Tensor:
    """Routed experts' gates [B, T, E] followed by gate 1 for each always-on shared expert."""
    return torch.cat([gates, gates.new_ones(*gates.shape[:-1], n_shared)], -1)


class DenseMoE(nn.Module):
    """Shared dense MoE (DeepSeekMoE-style): fine-grained routed experts, all active, weighted by
    sigmoid gates, plus shared experts that are always on with weight 1.

    `gate="relu"` is the RankMixer-style ablation: ReLU gates with an L1 penalty
    (`aux_loss`), dense in training; at inference experts with gate 0 add nothing, so the
    output equals sparse dispatch.
    """

    def __init__(self, t: int, d: int, hidden: int, n_experts: int, n_shared: int, gate: str = "sigmoid"):
        super().__init__()
        if gate not in ("sigmoid", "relu"):
            raise UserError(f"unknown dense MoE gate '{gate}' (sigmoid, relu)")
        self.gate_kind, self.n_shared = gate, n_shared
        self.experts = TokenExperts(t, n_experts + n_shared, d, hidden)  # routed first, then shared
        self.gate = TokenRouter(t, d, n_experts)
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gate(x)
        g = torch.sigmoid(logits) if self.gate_kind == "sigmoid" else torch.relu(logits)
        if self.gate_kind == "relu":
            self.aux_loss = g.mean() * g.shape[-1]  # L1 of the gates, per token
        return self.experts(x, with_shared(g, self.n_shared))


class ScenarioSparseMoE(nn.Module):
    """Scenario-aware sparse MoE: one expert per scenario plus shared experts.

    The router's logits get +gamma on the current scenario's own expert, which is always
    active; the top-k of the other scenarios' experts are added; active experts are weighted
    by sigmoid gates; shared experts are always on. Defaults: 2 shared + own + 1 selected.
    """

    def __init__(self, t: int, d: int, hidden: int, n_scenarios: int, n_shared: int = 2, top_k: int = 1,
                 gamma: float = 1.0):
        super().__init__()
        self.n_scenarios = n_scenarios
        self.top_k = min(top_k, n_scenarios - 1)
        self.gamma, self.n_shared = gamma, n_shared
        self.experts = TokenExperts(t, n_scenarios + n_shared, d, hidden)  # one per scenario, then shared
        self.router = TokenRouter(t, d, n_scenarios)

    def forward(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        own = nn.functional.one_hot(scenario, self.n_scenarios).to(x.dtype).unsqueeze(1)  # [B,1,S]
        logits = self.router(x) + self.gamma * own
        active = own.expand_as(logits).bool()
        if self.top_k:
            others = logits.masked_fill(active, float("-inf"))
            top = others.topk(self.top_k, dim=-1).indices
            active = active | nn.functional.one_hot(top, self.n_scenarios).sum(-2).bool()
        g = torch.sigmoid(logits) * active.to(x.dtype)
        return self.experts(x, with_shared(g, self.n_shared))


class MTmixAttBlock(nn.Module):
    """Token Mix -> Add & Norm -> Shared Dense MoE -> Scenario Sparse MoE -> Add & Norm.

    The two MoEs run in sequence (dense output feeds the scenario MoE) inside one residual
    branch, the literal reading of the paper's diagram. `norm`:
      "postnorm_r" (PostNormR): h = LN(x + Mix(x)); y = LN(h + MoE(h)) + x, i.e. post-norm
                   plus the layer's input added to its output;
      "postnorm":  the same without the "+ x";
      "prenorm":   h = x + Mix(LN(x)); y = h + MoE(LN(h)).
    `mixing="none"`, `dense_gate="none"` and `sparse=False` drop a part for ablations.
    """

    def __init__(self, n_tokens: int, d: int, heads: int, hidden: int, n_experts: int, n_shared: int,
                 n_scenarios: int, *, mixing: str = "orthogonal", dense_gate: str = "sigmoid",
                 sparse: bool = True, scenario_shared: int = 2, scenario_top_k: int = 1, gamma: float = 1.0,
                 norm: str = "postnorm_r"):
        super().__init__()
        if norm not in ("postnorm_r", "postnorm", "prenorm"):
            raise UserError(f"unknown norm '{norm}' (postnorm_r, postnorm, prenorm)")
        self.norm = norm
        self.mix = MultiMixAttention(n_tokens, d, heads, mixing) if mixing != "none" else None
        self.dense = DenseMoE(n_tokens, d, hidden, n_experts, n_shared, dense_gate) if dense_gate != "none" else None
        self.sparse = ScenarioSparseMoE(n_tokens, d, hidden, n_scenarios, scenario_shared, scenario_top_k, gamma) \
            if sparse else None
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def moe(self, h: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        y = self.dense(h) if self.dense is not None else h
        return self.sparse(y, scenario) if self.sparse is not None else y

    def forward(self, x: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        mix = self.mix if self.mix is not None else (lambda t: torch.zeros_like(t))
        if self.norm == "prenorm":
            h = x + mix(self.ln1(x))
            return h + self.moe(self.ln2(h), scenario)
        h = self.ln1(x + mix(x))
        y = self.ln2(h + self.moe(h, scenario))
        return y + x if self.norm == "postnorm_r" else y

    def aux_loss(self) -> torch.Tensor:
        return self.dense.aux_loss if self.dense is not None and self.dense.gate_kind == "relu" else torch.zeros(())
