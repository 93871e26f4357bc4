"""An LLM as a rollout policy, on `tetrad.llm` (loading, batched sampling).

`LLMPolicy(model, tokenizer, params)` answers each prompt with one sampled response (chat
template applied when the model has one). Generation stops at `</action>`, the end of the action
the prompt asks for. The token ids and masks of every call are kept in `calls` (one
`tetrad.llm.sampling.Rollouts` per batch), which is what a policy update needs; `keep_rollouts=False`
drops them for evaluation.
"""

from __future__ import annotations

from tetrad.llm.models import ModelSpec, load_policy
from tetrad.llm.sampling import SamplingParams, sample


class LLMPolicy:
    def __init__(self, model, tokenizer, params: SamplingParams | None = None, chat: bool = True,
                 keep_rollouts: bool = True):
        self.model, self.tokenizer = model, tokenizer
        self.params = params or SamplingParams(temperature=0.0, max_new_tokens=48, stop=["</action>"])
        self.chat = chat
        self.keep_rollouts = keep_rollouts
        self.calls = []

    @classmethod
    def load(cls, spec: ModelSpec, params: SamplingParams | None = None, **kwargs) -> "LLMPolicy":
        model, tokenizer = load_policy(spec)
        return cls(model, tokenizer, params, **kwargs)

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        rollouts = sample(self.model, self.tokenizer, prompts, n=1, params=self.params, chat=self.chat)
        if self.keep_rollouts:
            self.calls.append(rollouts)
        return rollouts.texts
