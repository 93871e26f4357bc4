"""The feature front end every model shares, and AutoToken.

`FeatureEmbedding` turns heterogeneous raw features into one per-feature embedding matrix
[B, n_f, e]: categorical ids are hashed into min(cardinality, hash_buckets) rows of their
feature's table; numerics are squashed with sign(x)·log1p(|x|) (robust to the skew of
counts and prices) and scaled by a per-feature vector; multi-hot lists are mean-pooled.
All tables live in one `nn.Embedding` with per-feature offsets, so lookups are one gather.

`AutoToken` (MTmixAtt) groups the n_f feature embeddings into n_g tokens of width d.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from tetrad.core.errors import UserError
from tetrad.ranking.data import FeatureSet


class FeatureEmbedding(nn.Module):
    def __init__(self, features: FeatureSet, dim: int, hash_buckets: int):
        super().__init__()
        self.dim = dim
        cat_sizes = [max(1, min(f.cardinality, hash_buckets)) for f in features.categorical]
        mh_sizes = [max(1, min(f.cardinality, hash_buckets)) for f in features.multihot]
        sizes = cat_sizes + mh_sizes
        offsets = [0, *itertools.accumulate(sizes)][:-1]
        self.register_buffer("cat_sizes", torch.tensor(cat_sizes, dtype=torch.long), persistent=False)
        self.register_buffer("cat_offsets", torch.tensor(offsets[: len(cat_sizes)], dtype=torch.long),
                             persistent=False)
        self.mh_sizes = mh_sizes
        self.mh_offsets = offsets[len(cat_sizes):]
        self.table = nn.Embedding(max(1, sum(sizes)), dim)
        nn.init.normal_(self.table.weight, std=0.05)
        self.num_scale = nn.Parameter(torch.randn(len(features.numeric), dim) * 0.1)
        self.num_bias = nn.Parameter(torch.zeros(len(features.numeric), dim))
        self.n_features = features.n_features

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor, multihot: list[torch.Tensor]) -> torch.Tensor:
        parts = []
        if categorical.shape[1]:
            parts.append(self.table(categorical % self.cat_sizes + self.cat_offsets))
        if numeric.shape[1]:
            x = torch.sign(numeric) * torch.log1p(numeric.abs())
            parts.append(x.unsqueeze(-1) * self.num_scale + self.num_bias)
        for ids, size, offset in zip(multihot, self.mh_sizes, self.mh_offsets):
            mask = (ids > 0).unsqueeze(-1).to(self.table.weight.dtype)
            emb = self.table((ids - 1).clamp(min=0) % size + offset) * mask
            parts.append((emb.sum(1) / mask.sum(1).clamp(min=1.0)).unsqueeze(1))
        return torch.cat(parts, 1)


class PerFeatureMLP(nn.Module):
    """A separate 2-layer MLP per feature, batched as one einsum: [B, n, e_in] -> [B, n, e_out]."""

    def __init__(self, n: int, e_in: int, e_out: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or e_out
        self.w1 = nn.Parameter(torch.randn(n, e_in, hidden) / math.sqrt(e_in))
        self.b1 = nn.Parameter(torch.zeros(n, hidden))
        self.w2 = nn.Parameter(torch.randn(n, hidden, e_out) / math.sqrt(hidden))
        self.b2 = nn.Parameter(torch.zeros(n, e_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.gelu(torch.einsum("bni,nih->bnh", x, self.w1) + self.b1)
        return torch.einsum("bnh,nho->bno", h, self.w2) + self.b2


def covering_groups(n_features: int, n_tokens: int, k: int, gen: torch.Generator | None = None) -> list[list[int]]:
    """A random partition of the features into n_tokens groups: a permutation dealt round-robin,
    so sizes differ by at most one. Groups left empty (fewer features than tokens) take one
    feature each. Every feature is in a group when n_tokens x k >= n_features (the default
    k = ceil(n_features / n_tokens)); a smaller k cuts each group to its first k."""
    perm = torch.randperm(n_features, generator=gen, device="cpu").tolist()  # also when building on meta
    groups = [perm[g::n_tokens] or [perm[g % n_features]] for g in range(n_tokens)]
    return [g[:k] for g in groups]


class AutoToken(nn.Module):
    """Learned feature grouping: n_f feature embeddings -> n_g tokens of width d.

    Each feature passes its own MLP to width e. A learnable selection matrix W (n_g x n_f)
    scores features per group; group g takes the top-k features of row g (the choice of
    indices carries no gradient), softmax-normalises their scores, weights the selected
    features with them, and projects the k·e concatenation to d with its own projection.

    Initialisation of W (the paper does not give it): small noise plus 1 on a random
    partition of the features into the n_g groups (`covering_groups`), so that at the start
    every feature is in some token's top-k. With W pure noise about a third of the features
    fell in no top-k, and since only selected scores get a gradient (through the softmax)
    they could not come back: with k = 1 (MovieLens: 11 features, 12 tokens) the softmax of
    one score is constant, nothing is learned, and a seed whose draw left out `item_id`
    stalled at 0.67 CTR AUC against 0.82 for the others.

    `grouping="manual"` fixes the members of each group from `groups` (lists of feature
    indices; shorter groups are padded and masked); `"random"` fixes a seeded random
    partition (`covering_groups`). In both, the softmax weights over the fixed members are
    still learned, so the ablation isolates the choice of members.
    """

    def __init__(self, n_features: int, e: int, n_tokens: int, k: int, d: int, grouping: str = "auto",
                 groups: list[list[int]] | None = None, seed: int = 0):
        super().__init__()
        if k < 1 or k > n_features:
            raise UserError(f"AutoToken needs 1 <= top-k features per token <= {n_features} (got {k})")
        if grouping == "auto" and k < 2:  # the softmax of one score is constant: nothing would be learned
            raise UserError("AutoToken's learned grouping needs top-k >= 2 features per token (topk_features)")
        self.k, self.grouping = k, grouping
        self.mlp = PerFeatureMLP(n_features, e, e)
        select = torch.randn(n_tokens, n_features) * 0.1
        self.proj = nn.Parameter(torch.randn(n_tokens, k * e, d) / math.sqrt(k * e))
        self.proj_bias = nn.Parameter(torch.zeros(n_tokens, d))
        if grouping == "auto":
            for g, members in enumerate(covering_groups(n_features, n_tokens, k)):
                select[g, members] += 1.0
            self.select = nn.Parameter(select)
            return
        self.select = nn.Parameter(select)
        if grouping == "manual":
            if not groups or len(groups) != n_tokens:
                raise UserError(f"manual grouping needs exactly {n_tokens} groups (one per token)")
            if any(len(g) == 0 or len(g) > k for g in groups):
                raise UserError(f"manual grouping: every group needs 1 to {k} features (topk_features)")
            idx = torch.tensor([g + [g[-1]] * (k - len(g)) for g in groups])
            mask = torch.tensor([[i < len(g) for i in range(k)] for g in groups])
        elif grouping == "random":
            fixed = covering_groups(n_features, n_tokens, k, torch.Generator().manual_seed(seed))
            idx = torch.tensor([g + [g[-1]] * (k - len(g)) for g in fixed])
            mask = torch.tensor([[i < len(g) for i in range(k)] for g in fixed])
        else:
            raise UserError(f"unknown grouping '{grouping}' (auto, manual, random)")
        self.register_buffer("fixed_index", idx)
        self.register_buffer("fixed_mask", mask)

    def members(self) -> tuple[torch.Tensor, torch.Tensor]:
        """[n_g, k] selected feature indices and their softmax weights."""
        if self.grouping == "auto":
            index = self.select.detach().topk(self.k, dim=1).indices
            scores = self.select.gather(1, index)
        else:
            index = self.fixed_index
            scores = self.select.gather(1, index).masked_fill(~self.fixed_mask, float("-inf"))
        return index, scores.softmax(1)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        h = self.mlp(emb)  # [B, n_f, e]
        index, weight = self.members()
        # selection as a matmul with the weighted one-hot of the chosen indices: cheaper to
        # differentiate than a gather, and exports to ONNX as a plain MatMul
        select = nn.functional.one_hot(index, h.shape[1]).to(h.dtype) * weight.unsqueeze(-1)  # [n_g, k, n_f]
        flat = torch.einsum("gkf,bfe->bgke", select, h).flatten(2)
        return torch.einsum("bgi,gid->bgd", flat, self.proj) + self.proj_bias
