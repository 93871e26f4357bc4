"""Per-token log-probabilities of given responses under a causal LM."""

from __future__ import annotations

import torch


def token_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, response_ids: torch.Tensor,
                   response_mask: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log p(response token t | prompt, earlier response tokens), shape [B, T]; 0 where masked.

    Prompts are left-padded and responses right-padded, so position ids come from the attention
    mask (padding does not shift positions). `temperature` divides the logits, matching a sampler
    that drew at that temperature.
    """
    input_ids = torch.cat([prompt_ids, response_ids], 1)
    attention = torch.cat([prompt_mask, response_mask], 1)
    positions = (attention.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=False).logits
    p = prompt_ids.shape[1]
    logits = logits[:, p - 1:-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    return logp * response_mask


def prompt_cache(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor):
    """Run left-padded prompts once: their KV cache and each prompt's last-position logits [B, V],
    which `continuation_logprobs` extends by many short continuations per prompt."""
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    # only the last position's logits are needed: the LM head over the whole prompt would cost
    # more than the prompt's layers for a small model with a large vocabulary
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=positions, use_cache=True,
                logits_to_keep=1)
    return out.cache, out.logits[:, -1].float()


def token_inputs(model, ids: torch.Tensor, features: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """The model's input for `ids`: the ids themselves, or, with per-token feature codes (a model
    given `tetrad.llm.models.add_token_features`), token embedding + feature embedding."""
    if features is None or getattr(model, "token_features", None) is None:
        return {"input_ids": ids}
    return {"inputs_embeds": model.get_input_embeddings()(ids) + model.token_features(features)}


def continuation_logprobs(model, cache, last_logits: torch.Tensor, prompt_mask: torch.Tensor, rows: torch.Tensor,
                          ids: torch.Tensor, mask: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token log-probs [C, W] of right-padded continuations `ids` (mask `mask`, feature codes
    `features` of the same shape, if any), continuation c following prompt `rows[c]` of a
    `prompt_cache`; 0 where masked. The cache is read, not extended, so it serves any number of
    calls, and gradients flow back into the prompts."""
    from transformers import DynamicCache

    rows_cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
    rows_mask = prompt_mask[rows]
    positions = rows_mask.sum(1, keepdim=True) + torch.arange(ids.shape[1], device=ids.device)
    logits = model(**token_inputs(model, ids, features), attention_mask=torch.cat([rows_mask, mask], 1),
                   position_ids=positions, cache=rows_cache, use_cache=True).logits.float()
    # token t of a continuation is predicted by its prompt's last position (t = 0) or by t - 1
    logits = torch.cat([last_logits[rows].unsqueeze(1), logits[:, :-1]], 1)
    return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1) * mask


def pad_sequences(sequences: list[list[int]], pad: int, left: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists as one id tensor and its mask, right-padded (responses) or left-padded (prompts)."""
    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        span = slice(width - len(s), width) if left else slice(0, len(s))
        ids[i, span] = torch.tensor(s, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


def packed_continuation_logprobs(model, prompts: list[list[int]], continuations: list[list[list[int]]],
                                 pad: int, features: list[list[list[int]]] | None = None):
    """Per-token log-probs [C, W] (and mask) of every continuation of every prompt, continuation
    lists flattened prompt by prompt, from one forward pass per batch with no KV copies.

    Each row of the batch is a prompt followed by all of its continuations; a block mask lets a
    continuation see its prompt and itself only, and its position ids restart where the prompt
    ends, so each scores exactly as if it followed the prompt alone (what `continuation_logprobs`
    computes from a shared cache, tested). Memory grows with prompt + continuations rather than
    continuations x prompt, which is what makes the action loss affordable on long prompts. Only
    the positions that predict a continuation token go through the LM head, so it assumes the
    logits are `get_output_embeddings()` of the decoder's last hidden state (true of Llama-family
    models, the tiny policy and SmolLM2 included).

    `features`, shaped
    like `continuations`, are the continuation tokens' feature codes (`token_inputs`).
    """
    device = model.device
    rows = [p + [t for c in conts for t in c] for p, conts in zip(prompts, continuations)]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    codes = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    block = torch.full((len(rows), width), -1, dtype=torch.long)  # 0: prompt, c + 1: continuation c, -1: padding
    sources, targets, lengths = [], [], []  # flat (row, position) predicting each continuation token
    for r, (prompt, conts) in enumerate(zip(prompts, continuations)):
        p = len(prompt)
        ids[r, :len(rows[r])] = torch.tensor(rows[r], dtype=torch.long)
        positions[r, :p] = torch.arange(p)
        block[r, :p] = 0
        start = p
        for c, cont in enumerate(conts):
            span = slice(start, start + len(cont))
            positions[r, span] = torch.arange(p, p + len(cont))
            block[r, span] = c + 1
            if features is not None:
                codes[r, span] = torch.tensor(features[r][c], dtype=torch.long)
            sources.append([r * width + (p - 1 if j == 0 else start + j - 1) for j in range(len(cont))])
            targets.append(cont)
            lengths.append(len(cont))
            start += len(cont)
    ids, positions, block = ids.to(device), positions.to(device), block.to(device)
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    same_block = block[:, :, None] == block[:, None, :]
    sees_prompt = (block[:, None, :] == 0) & (block[:, :, None] >= 0)
    allowed = (same_block | sees_prompt) & causal  # padding sees padding, so no row is empty
    mask = torch.zeros(allowed.shape, dtype=model.dtype, device=device).masked_fill_(~allowed, torch.finfo(model.dtype).min)
    inputs = token_inputs(model, ids, codes.to(device) if features is not None else None)
    hidden = model.get_decoder()(**inputs, attention_mask=mask[:, None], position_ids=positions,
                                 use_cache=False).last_hidden_state
    head = model.get_output_embeddings()
    cont_width = max(lengths)
    src = torch.tensor([s + [0] * (cont_width - len(s)) for s in sources], device=device)
    tgt = torch.tensor([t + [pad] * (cont_width - len(t)) for t in targets], device=device)
    cont_mask = (torch.arange(cont_width)[None, :] < torch.tensor(lengths)[:, None]).to(device)
    logits = head(hidden.reshape(-1, hidden.shape[-1])[src]).float()
    logp = torch.log_softmax(logits, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1) * cont_mask
    return logp, cont_mask.long()
