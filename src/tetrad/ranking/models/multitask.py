"""The multi-task references: MMoE and PLE, on the flattened feature embeddings.

Both give one representation per task ([B, 2, D]: CTR, CVR) to the shared heads.
MMoE: `experts` shared expert MLPs, a softmax gate per task.
PLE (CGC levels, `layers` of them): per level, `experts` task-specific experts per task
and `shared_experts` shared ones; each task's gate mixes its own and the shared experts,
and (below the top level) a shared gate mixes all of them into the next level's shared input.
"""

from __future__ import annotations

import torch
from torch import nn


def expert(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out), nn.ReLU())


def mix(gate: nn.Linear, x: torch.Tensor, outputs: list[torch.Tensor]) -> torch.Tensor:
    w = gate(x).softmax(-1)
    return torch.einsum("be,bed->bd", w, torch.stack(outputs, 1))


class MMoE(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        d_in = n_features * e
        self.experts = nn.ModuleList([expert(d_in, cfg.ffn_hidden, cfg.width) for _ in range(cfg.experts)])
        self.gates = nn.ModuleList([nn.Linear(d_in, cfg.experts) for _ in range(2)])
        self.out_dim = cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        x = emb.flatten(1)
        outs = [m(x) for m in self.experts]
        return torch.stack([mix(g, x, outs) for g in self.gates], 1)


class CGCLevel(nn.Module):
    def __init__(self, d_in: int, hidden: int, d_out: int, n_task: int, n_shared: int, last: bool):
        super().__init__()
        self.task = nn.ModuleList([nn.ModuleList([expert(d_in, hidden, d_out) for _ in range(n_task)])
                                   for _ in range(2)])
        self.shared = nn.ModuleList([expert(d_in, hidden, d_out) for _ in range(n_shared)])
        self.gates = nn.ModuleList([nn.Linear(d_in, n_task + n_shared) for _ in range(2)])
        self.shared_gate = None if last else nn.Linear(d_in, 2 * n_task + n_shared)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """inputs: [task-0 input, task-1 input, shared input] -> the same for the next level."""
        shared = [m(inputs[2]) for m in self.shared]
        task = [[m(inputs[t]) for m in self.task[t]] for t in range(2)]
        out = [mix(self.gates[t], inputs[t], task[t] + shared) for t in range(2)]
        if self.shared_gate is not None:
            out.append(mix(self.shared_gate, inputs[2], task[0] + task[1] + shared))
        return out


class PLE(nn.Module):
    def __init__(self, n_features: int, e: int, n_scenarios: int, cfg):
        super().__init__()
        d_in = n_features * e
        dims = [d_in] + [cfg.width] * cfg.layers
        self.levels = nn.ModuleList([CGCLevel(a, cfg.ffn_hidden, b, cfg.experts, cfg.shared_experts or 1,
                                              last=i == cfg.layers - 1)
                                     for i, (a, b) in enumerate(zip(dims, dims[1:]))])
        self.out_dim = cfg.width

    def forward(self, emb: torch.Tensor, scenario: torch.Tensor) -> torch.Tensor:
        x = emb.flatten(1)
        h = [x, x, x]
        for level in self.levels:
            h = level(h)
        return torch.stack(h[:2], 1)
