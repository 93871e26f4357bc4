"""Batched sampling with a KV cache (Hugging Face `generate`), returned as padded tensors that the
log-prob and update code consume directly.

Responses of one prompt are contiguous rows (`group_size` of them), the layout GRPO groups by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from pydantic import Field

from tetrad.core.config import Config, NonNegativeFloat, PositiveInt
from tetrad.core.errors import UserError


class SamplingParams(Config):
    """`temperature=0` is greedy decoding. `stop` strings end a response (the stop string is kept in
    the text and the tokens; what follows is discarded)."""

    temperature: NonNegativeFloat = 1.0
    top_p: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0  # 0 would keep no token
    max_new_tokens: PositiveInt = 16
    stop: list[str] = []


@dataclass
class Rollouts:
    """`prompt_ids`/`prompt_mask`: [B, P], left-padded. `response_ids`/`response_mask`: [B, T],
    right-padded; the mask covers the response up to and including its end-of-sequence token."""

    prompt_ids: torch.Tensor
    prompt_mask: torch.Tensor
    response_ids: torch.Tensor
    response_mask: torch.Tensor
    texts: list[str]
    group_size: int = 1

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, rows: torch.Tensor | list[int], group_size: int | None = None) -> "Rollouts":
        rows = torch.as_tensor(rows, dtype=torch.long)
        return Rollouts(self.prompt_ids[rows], self.prompt_mask[rows], self.response_ids[rows],
                        self.response_mask[rows], [self.texts[i] for i in rows.tolist()],
                        self.group_size if group_size is None else group_size)

    def to(self, device: torch.device | str) -> "Rollouts":
        return Rollouts(self.prompt_ids.to(device), self.prompt_mask.to(device), self.response_ids.to(device),
                        self.response_mask.to(device), self.texts, self.group_size)

    @staticmethod
    def concat(parts: list["Rollouts"], pad_id: int) -> "Rollouts":
        """Stack rollouts of the same group size into one batch, re-padding prompts on the left and
        responses on the right to the longest of each (padding moves no position: positions come
        from the masks)."""
        if not parts or len({p.group_size for p in parts}) != 1:
            raise UserError("concat needs at least one Rollouts, all of one group size")
        if len(parts) == 1:
            return parts[0]
        p_len = max(p.prompt_ids.shape[1] for p in parts)
        r_len = max(p.response_ids.shape[1] for p in parts)

        def pad(t: torch.Tensor, width: int, value: int, left: bool) -> torch.Tensor:
            fill = t.new_full((t.shape[0], width - t.shape[1]), value)
            return torch.cat([fill, t] if left else [t, fill], 1)

        return Rollouts(torch.cat([pad(p.prompt_ids, p_len, pad_id, True) for p in parts]),
                        torch.cat([pad(p.prompt_mask, p_len, 0, True) for p in parts]),
                        torch.cat([pad(p.response_ids, r_len, pad_id, False) for p in parts]),
                        torch.cat([pad(p.response_mask, r_len, 0, False) for p in parts]),
                        [t for p in parts for t in p.texts], parts[0].group_size)

    def first_of_each_group(self, m: int) -> "Rollouts":
        """The first `m` responses of every group (TTRL trains on the first M of N)."""
        if not 1 <= m <= self.group_size:
            raise UserError(f"cannot keep the first {m} of {self.group_size} responses per prompt")
        n_groups = len(self) // self.group_size
        rows = [g * self.group_size + j for g in range(n_groups) for j in range(m)]
        return self.select(rows, group_size=m)


def format_prompts(tokenizer, prompts: list[str], chat: bool) -> list[str]:
    """Apply the model's chat template (a single user turn) when asked and the model has one."""
    if chat and getattr(tokenizer, "chat_template", None):
        return [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                              tokenize=False) for p in prompts]
    return list(prompts)


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], n: int, params: SamplingParams, *, chat: bool = False,
           device: torch.device | str = "cpu", seed: int | None = None) -> Rollouts:
    """`n` responses for each prompt (rows `i*n .. i*n+n-1` belong to prompt `i`).

    Randomness comes from torch's global generator (which a recipe seeds and checkpoints), or, with
    `seed`, from a fork of it seeded with `seed`: the draws then depend on nothing but the seed, the
    model and these prompts, and the global stream is left where it was (how a recipe makes the
    samples of a batch the same whichever process draws them).
    """
    if seed is None:
        return _sample(model, tokenizer, prompts, n, params, chat, device)
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        return _sample(model, tokenizer, prompts, n, params, chat, device)


def _sample(model, tokenizer, prompts: list[str], n: int, params: SamplingParams, chat: bool,
            device: torch.device | str) -> Rollouts:
    if not prompts:
        raise UserError("no prompts to sample from")
    if n < 1:
        raise UserError(f"need at least one sample per prompt (got {n})")
    texts = format_prompts(tokenizer, prompts, chat)
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not chat)
    prompt_ids = enc["input_ids"].repeat_interleave(n, 0).to(device)
    prompt_mask = enc["attention_mask"].repeat_interleave(n, 0).to(device)
    greedy = params.temperature <= 0
    kwargs = dict(do_sample=not greedy, max_new_tokens=params.max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                  eos_token_id=tokenizer.eos_token_id, top_k=0)
    if not greedy:
        kwargs.update(temperature=params.temperature, top_p=params.top_p)
    if params.stop:
        kwargs.update(stopping_criteria=[_StopStrings(tokenizer, params.stop, prompt_ids.shape[1])])
    was_training = model.training
    model.eval()
    out = model.generate(input_ids=prompt_ids, attention_mask=prompt_mask, **kwargs)
    model.train(was_training)
    response_ids = out[:, prompt_ids.shape[1]:]
    response_mask, texts = _mask_and_texts(tokenizer, response_ids, params.stop)
    response_ids = torch.where(response_mask.bool(), response_ids, tokenizer.pad_token_id)
    return Rollouts(prompt_ids, prompt_mask, response_ids, response_mask, texts, group_size=n)


def finished(rollouts: Rollouts, tokenizer, params: SamplingParams) -> list[bool]:
    """Per row: did the response end by itself (end-of-sequence token or a stop string) rather
    than being cut at `max_new_tokens`?"""
    lengths = rollouts.response_mask.sum(1)
    out = []
    for i, text in enumerate(rollouts.texts):
        n = int(lengths[i])
        ended = n > 0 and int(rollouts.response_ids[i, n - 1]) == tokenizer.eos_token_id
        out.append(ended or n < params.max_new_tokens or any(stop in text for stop in params.stop))
    return out


class _StopStrings:
    """Stops a row once its decoded response contains a stop string (HF's own `stop_strings` needs
    a tokenizer with a byte-level vocabulary; this works for any tokenizer)."""

    def __init__(self, tokenizer, stop: list[str], prompt_len: int):
        self.tokenizer, self.stop, self.prompt_len = tokenizer, stop, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len:], skip_special_tokens=True)
        return torch.tensor([any(s in t for s in self.stop) for t in texts], device=input_ids.device)


def _mask_and_texts(tokenizer, response_ids: torch.Tensor, stop: list[str]) -> tuple[torch.Tensor, list[str]]:
    """Mask each row up to its first EOS (inclusive) or through the token that completes a stop string."""
    eos = tokenizer.eos_token_id
    mask = torch.zeros_like(response_ids)
    texts = []
    for i, row in enumerate(response_ids.tolist()):
        end = row.index(eos) + 1 if eos in row else len(row)
        text = tokenizer.decode(row[:end], skip_special_tokens=True)
        cut = _stop_cut(text, stop)
        if cut is not None:  # keep only the tokens needed to spell the text through the stop string
            text = text[:cut]
            for j in range(1, end + 1):
                if len(tokenizer.decode(row[:j], skip_special_tokens=True)) >= cut:
                    end = j
                    break
        mask[i, :end] = 1
        texts.append(text)
    return mask, texts


def _stop_cut(text: str, stop: list[str]) -> int | None:
    hits = [text.find(s) + len(s) for s in stop if s and s in text]
    return min(hits) if hits else None
