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
