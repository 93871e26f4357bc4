"""The hand-off from played episodes to an RL update.

Each turn of an episode becomes one sample carrying its episode's advantage and group (verl-agent's
multi-turn convention), and the acting policy's log-probability of what it did, the ratio's old
side. What "what it did" means depends on how the policy acts:

- A **scoring policy** (`ActionScoringPolicy`: the behaviour-cloned scorer, or any LM ranking
  the admissible actions) takes an *action*: its probability is the softmax, at the policy's
  temperature, of the candidates' summed response log-probs. `scored_turns` returns, per turn,
  the prompt's and every candidate's token ids (as the policy encoded them), the index of the
  action taken and its recorded log-probability; `scored_logprobs` recomputes that
  log-probability with gradients (`bc_model.action_logprobs`, the same function BC trains), so the
  update's ratio is 1 on-policy.
- A **generating policy** (`LLMPolicy`: an LLM writing `<action>...</action>`) takes tokens:
  `generated_turns` returns `tetrad.llm.Rollouts` of the turns' prompt (chat template applied) and
  response token ids and masks, one row per turn, which `tetrad.llm.PolicyUpdater.update`
  consumes with token log-probs at the sampling temperature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tetrad.agents.bc_data import EncodedExample
from tetrad.agents.bc_model import action_logprobs
from tetrad.agents.llm_policy import action_response, encode_prompt, encode_response
from tetrad.agents.match import match_codes
from tetrad.agents.rollout import Episode
from tetrad.core.errors import UserError
from tetrad.llm.logprobs import pad_sequences
from tetrad.llm.sampling import Rollouts


@dataclass
class ScoredTurns:
    examples: list[EncodedExample]  # per turn: prompt ids, candidate ids, index of the action taken
    old_logprobs: torch.Tensor  # [B] the acting policy's log-probability of that action
    advantages: torch.Tensor  # [B] the turn's episode's advantage

    def __len__(self) -> int:
        return len(self.examples)

    def select(self, rows: list[int]) -> "ScoredTurns":
        idx = torch.tensor(rows, dtype=torch.long)
        return ScoredTurns([self.examples[i] for i in rows], self.old_logprobs[idx], self.advantages[idx])


def _per_turn(episodes: list[Episode], advantages: torch.Tensor) -> torch.Tensor:
    """Each turn's advantage: its episode's."""
    if advantages.shape != (len(episodes),) or not torch.isfinite(advantages).all():
        raise UserError(f"need one finite advantage per episode ({len(episodes)}), got {tuple(advantages.shape)}")
    return torch.tensor([float(advantages[e]) for e, ep in enumerate(episodes) for _ in ep.turns],
                        dtype=torch.float32)


def scored_turns(episodes: list[Episode], advantages: torch.Tensor, tokenizer, chat: bool = True,
                 features: bool = False) -> ScoredTurns:
    """The update batch of a scoring policy's episodes (one row per turn); `features`: with the
    candidates' exact-match codes, for a model that has token features."""
    turn_advantages = _per_turn(episodes, advantages)
    examples, old = [], []
    responses: dict[str, list[int]] = {}
    for ep in episodes:
        for turn in ep.turns:
            if turn.action_logprob is None or turn.candidates is None:
                raise UserError("a turn carries no action log-probability: the episodes were not played by a "
                                "scoring policy (use generated_turns for a generating one)")
            for c in turn.candidates:
                if c not in responses:
                    responses[c] = encode_response(tokenizer, action_response(c))
            candidates = [responses[c] for c in turn.candidates]
            codes = match_codes(turn.prompt, turn.candidates, candidates, tokenizer) if features else None
            examples.append(EncodedExample(turn.action, encode_prompt(tokenizer, turn.prompt, chat),
                                           responses[turn.action], candidates, turn.candidates.index(turn.action),
                                           codes))
            old.append(turn.action_logprob)
    return ScoredTurns(examples, torch.tensor(old, dtype=torch.float32), turn_advantages)


def scored_logprobs(model, batch: ScoredTurns, pad: int, temperature: float) -> torch.Tensor:
    """log pi(action taken | prompt) [B] under `model` at `temperature`, with gradients."""
    return action_logprobs(model, batch.examples, pad, temperature=temperature)[0]


def generated_turns(episodes: list[Episode], advantages: torch.Tensor, tokenizer, chat: bool = True
                    ) -> tuple[Rollouts, torch.Tensor]:
    """The update batch of a generating policy's episodes: one `Rollouts` row per turn (prompt
    as the policy read it, its sampled response tokens) and the turn's advantage."""
    turn_advantages = _per_turn(episodes, advantages)
    prompts = [encode_prompt(tokenizer, t.prompt, chat) for ep in episodes for t in ep.turns]
    responses = []
    for ep in episodes:
        for t in ep.turns:
            if t.response_ids is None:
                raise UserError("a turn carries no sampled token ids: the episodes were not played by a "
                                "generating policy (use scored_turns for a scoring one)")
            responses.append(t.response_ids or [tokenizer.eos_token_id])
    pad = tokenizer.pad_token_id
    prompt_ids, prompt_mask = pad_sequences(prompts, pad, left=True)
    response_ids, response_mask = pad_sequences(responses, pad)
    texts = [t.response for ep in episodes for t in ep.turns]
    return Rollouts(prompt_ids, prompt_mask, response_ids, response_mask, texts), turn_advantages
