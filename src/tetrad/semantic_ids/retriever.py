"""TIGER-style generative retriever over semantic-ID tokens, its constrained decoder, and SASRec.

`TigerRetriever` is a Hugging Face T5 encoder-decoder (TIGER's choice) sized by config: the
encoder reads the SID tokens of a user's last `max_history` items, the decoder writes the
next item's SID. `constrained_beam_search` decodes a whole batch at once, keeping `beam`
hypotheses per user and extending each only by the tokens its trie node allows (CSR
lookup, no Python loop over hypotheses), so every result is an existing item; IDs of
different lengths are handled by letting finished hypotheses carry their score unchanged.

`SASRec` (Kang & McAuley, 2018) is the item-id baseline: causal self-attention over the
item sequence, scored against the item embedding table; trained here with full softmax
cross-entropy over the catalogue (a common, stronger variant than the paper's sampled BCE),
at every position of windows that score each interaction once (`training_windows`). Left
padding is masked out as attention keys. The item table is initialised with standard
deviation d^-1/2: it is also the output layer, and with unit-variance rows the first logits
have standard deviation sqrt(d), a saturated softmax the model did not recover from
(training loss near ln(items) on MovieLens-100k, below popularity; issue 19).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tetrad.semantic_ids.sids import PAD, SemanticIds, Trie


def make_t5(vocab_size: int, d_model: int = 128, layers: int = 4, heads: int = 6, d_kv: int = 64,
            d_ff: int = 1024, dropout: float = 0.1):
    """TIGER's encoder-decoder (4 layers, 6 heads x 64, MLP 1024 by default) on SID tokens."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=d_kv, d_ff=d_ff, num_layers=layers,
                      num_decoder_layers=layers, num_heads=heads, dropout_rate=dropout,
                      feed_forward_proj="relu", pad_token_id=PAD, eos_token_id=1,
                      decoder_start_token_id=PAD, tie_word_embeddings=True)
    return T5ForConditionalGeneration(config)


def history_tokens(sids: SemanticIds, histories: list[list[int]], max_history: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder input: the SID tokens of each history's last `max_history` items, right-padded."""
    rows = []
    for items in histories:
        items = items[-max_history:]
        toks = [sids.tokens[i, : sids.lengths[i]] for i in items]
        rows.append(np.concatenate(toks) if toks else np.zeros(0, dtype=np.int64))
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.from_numpy(r)
    return ids, (ids != PAD).long()


def target_labels(sids: SemanticIds, targets: list[int]) -> torch.Tensor:
    """Decoder labels: the target items' SIDs, -100 after their end (ignored by the loss)."""
    labels = torch.from_numpy(sids.tokens[np.asarray(targets)]).clone()
    labels[labels == PAD] = -100
    return labels


class _BeamDecoder:
    """One decoder step of a Hugging Face T5 for `beam` hypotheses per user, with the model's own weights.

    Every hypothesis of a user attends to the same encoder states, so the cross-attention keys
    and values are computed once per user and each user's hypotheses attend to them as extra
    query rows (B x H x beam x S scores). `generate` instead materialises them for B x beam
    rows and copies that whole cache at every step when it reorders the beams, which is most
    of its time on a CPU. Only the small self-attention cache (one key/value per generated
    token) follows the beams. Attention over its <= depth keys is elementwise: batched matrix
    products of 1 x d_kv by d_kv x depth matrices cost several times more on a CPU.
    """

    def __init__(self, model, enc: torch.Tensor, attention_mask: torch.Tensor, depth: int):
        self.dec = model.get_decoder()
        self.model = model
        self.heads, self.d_kv = h, dk = model.config.num_heads, model.config.d_kv
        b, s, _ = enc.shape
        self.cross_kv = []
        for block in self.dec.block:
            att = block.layer[1].EncDecAttention
            self.cross_kv.append((att.k(enc).view(b, s, h, dk).permute(0, 2, 3, 1).contiguous(),  # B H dk S
                                  att.v(enc).view(b, s, h, dk).transpose(1, 2).contiguous()))  # B H S dk
        # padded history tokens get zero weight, as the additive mask does in the model
        self.cross_bias = torch.zeros(b, 1, 1, s, dtype=enc.dtype, device=enc.device).masked_fill(
            attention_mask[:, None, None, :] == 0, torch.finfo(enc.dtype).min)
        # causal relative-position bias of the decoder's self-attention (layer 0's, shared by all
        # layers as in T5): [t, j] is H biases of query position t against key position j
        self.self_bias = self.dec.block[0].layer[0].SelfAttention.compute_bias(
            depth, depth, device=enc.device)[0].permute(1, 2, 0)
        self.self_kv: list[tuple[torch.Tensor, torch.Tensor]] = []  # per layer: hypotheses x steps x H x dk
        self.scale = model.model_dim ** -0.5 if model.config.scale_decoder_outputs else 1.0

    def step(self, tokens: torch.Tensor, t: int) -> torch.Tensor:
        """Log-probabilities over the vocabulary (B x width x V) after feeding token `t` of each hypothesis."""
        b, w = tokens.shape
        n, h, dk = b * w, self.heads, self.d_kv
        x = self.dec.embed_tokens(tokens.view(n))
        bias = self.self_bias[t, : t + 1]  # keys x H
        for i, block in enumerate(self.dec.block):
            sa = block.layer[0]
            y = sa.layer_norm(x)
            q = sa.SelfAttention.q(y).view(n, 1, h, dk)
            k = sa.SelfAttention.k(y).view(n, 1, h, dk)
            v = sa.SelfAttention.v(y).view(n, 1, h, dk)
            if t > 0:
                k = torch.cat([self.self_kv[i][0], k], 1)
                v = torch.cat([self.self_kv[i][1], v], 1)
                self.self_kv[i] = (k, v)
            else:
                self.self_kv.append((k, v))
            weights = ((k * q).sum(-1) + bias).softmax(1)  # n x keys x H
            att = (weights[..., None] * v).sum(1)
            x = x + sa.SelfAttention.o(att.view(n, h * dk))
            ca = block.layer[1]
            q = ca.EncDecAttention.q(ca.layer_norm(x)).view(b, w, h, dk).transpose(1, 2)  # B H w dk
            keys, values = self.cross_kv[i]
            att = ((q @ keys + self.cross_bias).softmax(-1) @ values).transpose(1, 2).reshape(n, h * dk)
            x = x + ca.EncDecAttention.o(att)
            x = block.layer[2](x)
        x = self.dec.final_layer_norm(x) * self.scale
        return F.log_softmax(self.model.lm_head(x).float(), -1).view(b, w, -1)

    def reorder(self, parent: torch.Tensor) -> None:
        """Hypothesis j of the next step continues row `parent[j]` (flat index) of this step."""
        self.self_kv = [(k[parent], v[parent]) for k, v in self.self_kv]


@torch.inference_mode()
def constrained_beam_search(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, trie: Trie,
                            beam: int, renormalise: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`beam` ID rows per user under the trie: (leaf groups B x beam, -1 where fewer exist; scores).

    A hypothesis' score is the sum of its tokens' log-probabilities: by default a softmax over
    the whole vocabulary, as Hugging Face's beam search with `prefix_allowed_tokens_fn` scores
    them; with `renormalise=True` a softmax over the tokens the trie allows at that node (as
    GRID does), so the scores of all IDs form a distribution (sum to one). Without it, mass the
    model puts on disallowed tokens penalises a prefix, more so for IDs with more steps.
    The first step runs once per user (all beams are the root then); see `_BeamDecoder` for
    how the cross-attention is shared by a user's hypotheses.
    """
    device = input_ids.device
    b = len(input_ids)
    enc = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    decoder = _BeamDecoder(model, enc, attention_mask, trie.depth)
    ptr, ctok, cnode = (t.to(device) for t in (trie.child_ptr, trie.child_token, trie.child_node))
    width = 1  # live hypotheses per user: 1 (the root) at the first step, then `beam`
    scores = torch.zeros(b, 1, device=device)
    nodes = torch.zeros(b, 1, dtype=torch.long, device=device)
    last = torch.full((b, 1), PAD, dtype=torch.long, device=device)
    for t in range(trie.depth):
        logp = decoder.step(last, t).view(b * width, -1)
        flat_nodes = nodes.view(-1)
        n_child = ptr[flat_nodes + 1] - ptr[flat_nodes]
        finished = n_child == 0  # a complete ID: carried on with PAD at no cost
        n_cand = torch.where(finished, torch.ones_like(n_child), n_child)
        src = torch.repeat_interleave(torch.arange(b * width, device=device), n_cand)
        offset = torch.arange(len(src), device=device) - torch.repeat_interleave(torch.cumsum(n_cand, 0) - n_cand,
                                                                                 n_cand)
        done = finished[src]
        edge = torch.where(done, torch.zeros_like(src), ptr[flat_nodes[src]] + offset)
        tok = torch.where(done, torch.full_like(src, PAD), ctok[edge])
        child = torch.where(done, flat_nodes[src], cnode[edge])
        step_logp = logp[src, tok]
        if renormalise:  # log-softmax over each hypothesis' allowed tokens (its candidates)
            top = torch.full((b * width,), float("-inf"), device=device).scatter_reduce(0, src, step_logp, "amax")
            mass = torch.zeros(b * width, device=device).index_add(0, src, (step_logp - top[src]).exp())
            step_logp = step_logp - (top + mass.log())[src]
        cand = scores.view(-1)[src] + torch.where(done, torch.zeros_like(step_logp), step_logp)
        # top `beam` candidates per user: sort by score, then stably by user
        order = torch.argsort(cand, descending=True, stable=True)
        order = order[torch.argsort(src[order] // width, stable=True)]
        user = src[order] // width
        counts = torch.bincount(user, minlength=b)
        rank = torch.arange(len(order), device=device) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts,
                                                                                 counts)
        keep = rank < beam
        slot_user, slot, picked = user[keep], rank[keep], order[keep]
        # empty slots (fewer candidates than beams) stay at -inf on their user's first row
        parent = (torch.arange(b, device=device) * width).repeat_interleave(beam).view(b, beam)
        parent[slot_user, slot] = src[picked]
        new_scores = torch.full((b, beam), float("-inf"), device=device)
        new_scores[slot_user, slot] = cand[picked]
        new_nodes = flat_nodes[parent]
        new_nodes[slot_user, slot] = child[picked]
        new_last = torch.full((b, beam), PAD, dtype=torch.long, device=device)
        new_last[slot_user, slot] = tok[picked]
        decoder.reorder(parent.view(-1))
        width, scores, nodes, last = beam, new_scores, new_nodes, new_last
    groups = trie.leaf_group.to(device)[nodes]
    groups = torch.where(torch.isfinite(scores), groups, torch.full_like(groups, -1))
    return groups, scores


def rank_items(groups: torch.Tensor, group_items: list[np.ndarray], k: int) -> np.ndarray:
    """Users x k item indices: each generated ID expands to its items (item order), -1 pads."""
    out = np.full((len(groups), k), -1, dtype=np.int64)
    for row, gs in enumerate(groups.tolist()):
        ranked = [i for g in gs if g >= 0 for i in group_items[g]][:k]
        out[row, : len(ranked)] = ranked
    return out


class SASRec(nn.Module):
    """Self-attentive sequential recommendation over item indices (0 is padding; items are 1..n)."""

    def __init__(self, n_items: int, d_model: int = 64, layers: int = 2, heads: int = 2,
                 max_len: int = 50, dropout: float = 0.2):
        super().__init__()
        self.items = nn.Embedding(n_items + 1, d_model, padding_idx=0)
        nn.init.normal_(self.items.weight, std=d_model ** -0.5)  # tied output: logits start near unit scale
        with torch.no_grad():
            self.items.weight[0].zero_()
        self.positions = nn.Embedding(max_len, d_model)
        block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len
        self.heads = heads

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden state at each position of left-padded item sequences (B x T x d)."""
        b, t = seq.shape
        h = self.items(seq) * self.items.embedding_dim ** 0.5 + self.positions(torch.arange(t, device=seq.device))
        # no query sees a later position or a padding key; a padding query sees itself, so no
        # softmax row is empty (those rows are never scored)
        blocked = torch.triu(torch.ones(t, t, dtype=torch.bool, device=seq.device), 1) | (seq == 0)[:, None, :]
        blocked &= ~torch.eye(t, dtype=torch.bool, device=seq.device)
        h = self.encoder(self.dropout(h), mask=blocked.repeat_interleave(self.heads, 0))
        return self.norm(h)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.items.weight[1:].T  # scores of items 1..n (index 0 = item 1)

    def loss(self, seq: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Next-item cross-entropy at every non-padded position (target 0 = ignore)."""
        logits = self.logits(self(seq))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), (target - 1).reshape(-1), ignore_index=-1)

    @torch.no_grad()
    def top_k(self, seq: torch.Tensor, k: int) -> torch.Tensor:
        """k best next items (1-based indices) after each sequence's last position."""
        return self.logits(self(seq)[:, -1]).topk(k, dim=-1).indices + 1


def training_windows(seqs: list[list[int]], width: int) -> tuple[list[list[int]], list[list[int]]]:
    """(inputs, targets) windows of `width` next-item steps that score every interaction after a
    sequence's first exactly once, each with at least width // 2 earlier items in view (or all
    there are): windows end every `stride` = width - width // 2 steps back from the sequence's end,
    and each scores only its last `stride` targets (the one reaching the start scores all it has
    left). Target 0 is not scored."""
    stride = width - width // 2
    inputs, targets = [], []
    for s in seqs:
        end = len(s)
        while end > 1:
            lo = max(0, end - 1 - width)
            first = lo + 1 if lo == 0 else end - stride  # index in `s` of the first target this window scores
            inputs.append(s[lo:end - 1])
            targets.append([x if j >= first else 0 for j, x in enumerate(s[lo + 1:end], lo + 1)])
            if lo == 0:
                break
            end -= stride
    return inputs, targets


def left_pad(seqs: list[list[int]], width: int) -> torch.Tensor:
    """Item sequences (already 1-based) truncated to their last `width` items and left-padded with 0."""
    out = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = s[-width:]
        if s:
            out[i, width - len(s):] = torch.tensor(s)
    return out
