"""LLM rollout policies on `tetrad.llm`: free generation, or scoring the admissible actions.

`LLMPolicy(model, tokenizer, params)` answers each prompt with one sampled response (chat
template applied when the model has one). Generation stops at `</action>`, the end of the action
the prompt asks for. The token ids and masks of every call are kept in `calls` (one
`tetrad.llm.sampling.Rollouts` per batch), which is what a policy update needs; `keep_rollouts=False`
drops them for evaluation.

`ActionScoringPolicy(model, tokenizer, temperature)` never writes free text: for each prompt it
scores every admissible command `c` by the model's log-likelihood of the response
`<action>c</action>` (the sum of its tokens' log-probs, the prompt read once and its KV cache
shared by the candidates) and picks the best (`temperature=0`) or samples from the softmax of
the scores divided by the temperature, i.e. the policy restricted to the admissible actions and
renormalised. `action_score="mean"` scores by the mean token log-prob instead (length
normalisation, as multiple-choice evaluations of LMs do): summed, an untrained model prefers
the shortest command whatever the prompt says. A tiny model trained from scratch (the
behaviour-cloned policy) or a small instruction model that never writes the `<action>` tag by
itself (SmolLM2-135M) still acts validly this way. A model with token features (`bc
match_features=true`) gets each candidate token's exact-match code (`tetrad.agents.match`).
It ranks `info["candidates"]` (the rollout loop's completion of the admissible commands,
`Environment.candidates`: the shop's free-text search box becomes one candidate,
`search[<the instruction>]`), or the admissible commands when an info has none. After each
`act`, `last_token_logprobs[i]` holds the per-token log-probs (temperature 1) of the chosen
response of prompt `i`; the rollout loop stores them in the turn. For the RL update what matters is the probability of the *action*:
`last_action_logprobs[i]` is log softmax(scores / temperature) at the chosen action (temperature 1
when decoding greedily), `last_candidates[i]` the actions it chose among; the rollout loop stores
both in the turn and `tetrad.agents.handoff` hands them on as the update's old log-probs.
"""

from __future__ import annotations

import random

import torch

from tetrad.agents.match import match_codes
from tetrad.core.errors import UserError
from tetrad.llm.logprobs import continuation_logprobs, pad_sequences, prompt_cache
from tetrad.llm.models import ModelSpec, load_policy, token_feature_codes
from tetrad.llm.sampling import SamplingParams, format_prompts, sample


class LLMPolicy:
    def __init__(self, model, tokenizer, params: SamplingParams | None = None, chat: bool = True,
                 keep_rollouts: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.params = params or SamplingParams(temperature=0.0, max_new_tokens=48, stop=["</action>"])
        self.chat = chat
        self.keep_rollouts = keep_rollouts
        self.calls = []
        self.last_response_ids: list[list[int]] = []

    @classmethod
    def load(cls, spec: ModelSpec, params: SamplingParams | None = None, **kwargs) -> "LLMPolicy":
        model, tokenizer = load_policy(spec)
        return cls(model, tokenizer, params, **kwargs)

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        rollouts = sample(self.model, self.tokenizer, prompts, n=1, params=self.params, chat=self.chat)
        if self.keep_rollouts:
            self.calls.append(rollouts)
        # the sampled token ids (not a re-tokenisation of the text), which the RL update scores
        self.last_response_ids = [ids[m.bool()].tolist() for ids, m in zip(rollouts.response_ids,
                                                                           rollouts.response_mask)]
        return rollouts.texts


def action_response(action: str) -> str:
    """The response text an action is written as (what `rollout.parse_action` reads back)."""
    return f"<action>{action}</action>"


def encode_prompt(tokenizer, prompt: str, chat: bool = True) -> list[int]:
    """A prompt's token ids as the scoring policy reads it (chat template applied when the model
    has one); BC training encodes with this too, so it trains on what the policy will see."""
    text = format_prompts(tokenizer, [prompt], chat)[0]
    return tokenizer(text, add_special_tokens=not chat)["input_ids"]


def encode_response(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class ActionScoringPolicy:
    def __init__(self, model, tokenizer, temperature: float = 0.0, chat: bool = True, seed: int = 0,
                 candidate_batch: int = 16, action_score: str = "sum"):
        if action_score not in ("sum", "mean"):
            raise UserError(f"action_score must be 'sum' or 'mean' (got '{action_score}')")
        self.model, self.tokenizer = model, tokenizer
        self.temperature = temperature
        self.action_score = action_score
        self.chat = chat
        self.candidate_batch = candidate_batch
        self.rng = random.Random(seed)
        self.last_token_logprobs: list[list[float]] = []
        self.last_scores: list[list[float]] = []
        self.last_action_logprobs: list[float] = []
        self.last_candidates: list[list[str]] = []

    @classmethod
    def load(cls, spec: ModelSpec, **kwargs) -> "ActionScoringPolicy":
        model, tokenizer = load_policy(spec)
        return cls(model, tokenizer, **kwargs)

    def encode_response(self, text: str) -> list[int]:
        return encode_response(self.tokenizer, text)

    def encode_prompt(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt, self.chat)

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        out, self.last_token_logprobs, self.last_scores = [], [], []
        self.last_action_logprobs, self.last_candidates = [], []
        for prompt, info in zip(prompts, infos):
            actions = info.get("candidates", info["admissible_commands"])
            responses = [action_response(a) for a in actions]
            token_logps = self.score(prompt, actions)
            scores = [sum(t) / len(t) if self.action_score == "mean" else sum(t) for t in token_logps]
            choice = self._choose(scores)
            logps = torch.log_softmax(torch.tensor(scores, dtype=torch.float64) / (self.temperature or 1.0), 0)
            out.append(responses[choice])
            self.last_token_logprobs.append(token_logps[choice])
            self.last_scores.append(scores)
            self.last_action_logprobs.append(float(logps[choice]))
            self.last_candidates.append(actions)
        return out

    def _choose(self, scores: list[float]) -> int:
        if self.temperature <= 0:
            return max(range(len(scores)), key=scores.__getitem__)
        logits = torch.tensor(scores, dtype=torch.float64) / self.temperature
        probs = torch.softmax(logits, 0).tolist()
        return self.rng.choices(range(len(scores)), weights=probs)[0]

    @torch.no_grad()
    def score(self, prompt: str, actions: list[str]) -> list[list[float]]:
        """Per-token log-probs of each action's response (`action_response`) given the prompt (the
        prompt is run once; its KV cache is shared by batches of `candidate_batch` responses)."""
        was_training = self.model.training
        self.model.eval()
        device = self.model.device
        prompt_ids = torch.tensor([self.encode_prompt(prompt)], device=device)
        prompt_mask = torch.ones_like(prompt_ids)
        cache, last = prompt_cache(self.model, prompt_ids, prompt_mask)
        result: list[list[float]] = []
        for start in range(0, len(actions), self.candidate_batch):
            chunk_actions = actions[start:start + self.candidate_batch]
            chunk = [self.encode_response(action_response(a)) for a in chunk_actions]
            ids, mask = (t.to(device) for t in pad_sequences(chunk, self.tokenizer.pad_token_id))
            features = None
            if token_feature_codes(self.model):
                features = pad_sequences(match_codes(prompt, chunk_actions, chunk, self.tokenizer), 0)[0].to(device)
            logp = continuation_logprobs(self.model, cache, last, prompt_mask,
                                         torch.zeros(len(chunk), dtype=torch.long, device=device), ids, mask,
                                         features)
            result += [logp[i, :len(r)].tolist() for i, r in enumerate(chunk)]
        self.model.train(was_training)
        return result
