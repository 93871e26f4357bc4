"""Semantic IDs as token sequences, and the prefix trie of the catalogue's IDs.

Vocabulary: 0 = PAD (also the decoder's start token, as in T5), 1 = EOS (end of ID), then
one block of tokens per code layer (layer l's code c is `offset[l] + c`), then the block of
collision tokens. Tokens are layer-specific, as in TIGER, so the same code value means
different things at different depths.

An item's ID is its codes in layer order, skipping positions a fix removed (-1), then its
collision token (`collision="token"`: its index among items sharing the same codes), then
EOS when `eos=True`. By default (`eos=None`) EOS is added only when some ID would otherwise
be a strict prefix of another, the one case where the decoder cannot tell where an ID ends.
With a collision token that never happens (every ID ends in a collision token, and a shorter
ID's last token is a code token at that position in a longer one, since tokens are
layer-specific), nor when a fix removes an inner layer only (the adaptive fix's (c1, c3) and
(c1, c2, c3) differ at the second token); it does when trailing positions are removed without
a collision token. An unneeded EOS is one more decoding step whose probability mass every
variable-length ID pays, which lowered the adaptive fix's recall (issue 19).
With `collision="none"` items that share codes share an ID; the retriever then ranks them
in item order under that ID.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tetrad.core.errors import UserError
from tetrad.semantic_ids.quantizers import collision_suffix

PAD, EOS, FIRST_CODE = 0, 1, 2


@dataclass
class SemanticIds:
    tokens: np.ndarray  # items x max_len, PAD after the end
    lengths: np.ndarray  # items
    vocab_size: int
    codebook_size: int
    collision: str
    eos: bool

    @property
    def max_len(self) -> int:
        return self.tokens.shape[1]

    def item_groups(self) -> tuple[np.ndarray, list[np.ndarray]]:
        """Distinct ID rows and, for each, the items carrying it (in item order)."""
        uniq, inverse = np.unique(self.tokens, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.r_[0, np.cumsum(np.bincount(inverse, minlength=len(uniq)))]
        return uniq, [order[bounds[i]:bounds[i + 1]] for i in range(len(uniq))]


def has_prefix_pairs(rows: list[tuple[int, ...]]) -> bool:
    """Whether some row (a token tuple) is a strict prefix of another."""
    full = set(rows)
    return any(row[:i] in full for row in rows for i in range(1, len(row)))


def build_sids(codes, codebook_size: int, collision: str = "token", eos: bool | None = None) -> SemanticIds:
    """IDs of `codes` (items x layers, -1 = removed); `eos=None` adds EOS only where IDs need it."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) == 0:
        raise UserError(f"codes must be a non-empty items x layers array (got shape {codes.shape})")
    if collision not in ("token", "none"):
        raise UserError(f"collision must be 'token' or 'none' (got '{collision}')")
    if codes.max() >= codebook_size or codes.min() < -1:
        raise UserError(f"codes must lie in [0, {codebook_size}) or be -1 for a removed position")
    n, layers = codes.shape
    parts = [np.where(codes[:, l] >= 0, FIRST_CODE + l * codebook_size + codes[:, l], -1) for l in range(layers)]
    vocab = FIRST_CODE + layers * codebook_size
    if collision == "token":
        suffix = collision_suffix(codes)
        parts.append(vocab + suffix)
        vocab += int(suffix.max()) + 1
    raw = np.stack(parts, 1)
    # equal-length IDs cannot be prefixes of one another
    needed = bool((codes < 0).any()) and has_prefix_pairs([tuple(row[row >= 0].tolist()) for row in raw])
    eos = needed if eos is None else eos
    if needed and not eos:
        raise UserError("some semantic IDs are prefixes of others: they need the end-of-ID token (eos=true)")
    if eos:
        raw = np.concatenate([raw, np.full((n, 1), EOS)], 1)
    keep = raw >= 0
    lengths = keep.sum(1)
    tokens = np.full((n, int(lengths.max())), PAD, dtype=np.int64)
    for row in range(n):  # left-pack the kept tokens
        tokens[row, : lengths[row]] = raw[row, keep[row]]
    return SemanticIds(tokens, lengths, vocab, codebook_size, collision, eos)


@dataclass
class Trie:
    """Prefix trie of ID token rows in CSR form; node 0 is the root.

    `child_ptr[v]:child_ptr[v+1]` index the children of node v in `child_token` / `child_node`.
    A node without children is the end of an ID; `leaf_group[v]` is the ID row it ends (-1 else).
    """

    child_ptr: torch.Tensor
    child_token: torch.Tensor
    child_node: torch.Tensor
    leaf_group: torch.Tensor
    depth: int

    @staticmethod
    def build(rows: np.ndarray) -> "Trie":
        """Trie over distinct ID rows (PAD-padded); no row may be a strict prefix of another."""
        rows = np.asarray(rows, dtype=np.int64)
        n, depth = rows.shape
        parent_of, token_of, group_of = [], [], []  # per non-root node
        node_ids = np.zeros(n, dtype=np.int64)  # current node of each row
        alive = np.ones(n, dtype=bool)
        next_id = 1
        for d in range(depth):
            col = rows[:, d]
            alive &= col != PAD
            if not alive.any():
                break
            idx = np.flatnonzero(alive)
            keys, inverse = np.unique(np.stack([node_ids[idx], col[idx]], 1), axis=0, return_inverse=True)
            inverse = inverse.ravel()
            new_nodes = next_id + np.arange(len(keys))
            parent_of.extend(keys[:, 0].tolist())
            token_of.extend(keys[:, 1].tolist())
            group_of.extend([-1] * len(keys))
            next_id += len(keys)
            node_ids[idx] = new_nodes[inverse]
        group = np.full(next_id, -1, dtype=np.int64)
        group[node_ids] = np.arange(n)
        parent = np.asarray(parent_of, dtype=np.int64)
        token = np.asarray(token_of, dtype=np.int64)
        children = np.arange(1, next_id)
        order = np.lexsort((token, parent))
        counts = np.bincount(parent, minlength=next_id)
        if (counts[node_ids] > 0).any():
            raise UserError("some semantic IDs are prefixes of others: use eos=true")
        ptr = np.r_[0, np.cumsum(counts)]
        return Trie(torch.from_numpy(ptr), torch.from_numpy(token[order]), torch.from_numpy(children[order]),
                    torch.from_numpy(group), depth)

    def allowed(self, node: int) -> list[int]:
        return self.child_token[self.child_ptr[node]:self.child_ptr[node + 1]].tolist()

    def walk(self, prefix) -> int:
        """Node reached by following `prefix` from the root, or -1 if it leaves the trie."""
        node = 0
        for tok in prefix:
            a, b = int(self.child_ptr[node]), int(self.child_ptr[node + 1])
            hit = (self.child_token[a:b] == int(tok)).nonzero()
            if len(hit) == 0:
                return -1
            node = int(self.child_node[a + int(hit[0])])
        return node
