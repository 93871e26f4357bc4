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


def continuation_logprobs(model, cache, last_logits: torch.Tensor, prompt_mask: torch.Tensor, rows: torch.Tensor,
                          ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs [C, W] of right-padded continuations `ids` (mask `mask`), continuation c
    following prompt `rows[c]` of a `prompt_cache`; 0 where masked. The cache is read, not
    extended, so it serves any number of calls, and gradients flow back into the prompts."""
    from transformers import DynamicCache

    rows_cache = DynamicCache([(layer.keys[rows], layer.values[rows]) for layer in cache.layers])
    rows_mask = prompt_mask[rows]
    positions = rows_mask.sum(1, keepdim=True) + torch.arange(ids.shape[1], device=ids.device)
    logits = model(input_ids=ids, attention_mask=torch.cat([rows_mask, mask], 1), position_ids=positions,
                   cache=rows_cache, use_cache=True).logits.float()
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
