"""The two ways a policy acts and learns in SkillC's recipe, behind one small interface.

`ScoringLearner` (`decode=score`): the policy ranks the admissible actions (`ActionScoringPolicy`,
what the behaviour-cloned base policy is) and the update is GRPO's clipped-ratio loss with one
sample per turn, the ratio being pi(action | prompt) / pi_old(action | prompt) over the
admissible actions at the sampling temperature (`tetrad.agents.handoff.scored_turns`).

`GeneratingLearner` (`decode=generate`): an LLM writes `<action>...</action>` (`LLMPolicy`) and
the update is `tetrad.llm.PolicyUpdater`'s token-level GRPO on the turns' sampled tokens, with
the log-probs at the sampling temperature. `lora_rank > 0` trains LoRA adapters (peft) instead of
all weights, which is what lets 1.5B-7B models fit one GPU; the saved policy has them merged.

Both expose `acting_policy(seed)`, `step(episodes, advantages) -> stats`, `parts()` (what the
checkpointer saves) and `save(folder)`.
"""

from __future__ import annotations

import torch

from tetrad.agents.handoff import generated_turns, scored_logprobs, scored_turns
from tetrad.agents.llm_policy import ActionScoringPolicy, LLMPolicy
from tetrad.core.errors import UserError
from tetrad.llm.grpo import grpo_token_losses
from tetrad.llm.models import save_policy, token_feature_codes
from tetrad.llm.sampling import SamplingParams
from tetrad.llm.update import PolicyUpdater, UpdateConfig, warmup_cosine


class ScoringLearner:
    def __init__(self, model, tokenizer, cfg: UpdateConfig, temperature: float):
        self.model, self.tokenizer, self.cfg, self.temperature = model, tokenizer, cfg, temperature
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(cfg.total_steps, cfg.warmup_ratio, cfg.min_lr_ratio))

    def acting_policy(self, seed: int, temperature: float | None = None) -> ActionScoringPolicy:
        t = self.temperature if temperature is None else temperature
        return ActionScoringPolicy(self.model, self.tokenizer, temperature=t, seed=seed)

    def step(self, episodes, advantages: torch.Tensor) -> dict[str, float]:
        batch = scored_turns(episodes, advantages, self.tokenizer, features=token_feature_codes(self.model) > 0)
        n, pad = len(batch), self.tokenizer.pad_token_id
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = clipped = ratio_dev = 0.0
        for start in range(0, n, self.cfg.micro_batch):
            mb = batch.select(list(range(start, min(start + self.cfg.micro_batch, n))))
            logp = scored_logprobs(self.model, mb, pad, self.temperature)
            old = mb.old_logprobs.to(logp.device)
            losses = grpo_token_losses(logp[:, None], old[:, None], mb.advantages.to(logp.device), self.cfg.clip_eps)
            loss = losses.sum() / n  # the mean over every turn of the batch
            loss.backward()
            total += float(loss.detach())
            with torch.no_grad():
                ratio = torch.exp(logp.detach() - old)
                clipped += float(((ratio - 1).abs() > self.cfg.clip_eps).sum())
                ratio_dev = max(ratio_dev, float((ratio - 1).abs().max()))
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        return {"loss": total, "clip_frac": clipped / max(n, 1), "grad_norm": float(grad_norm), "lr": lr,
                "turns": float(n), "max_ratio_deviation": ratio_dev}

    def parts(self) -> dict:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}

    def save(self, folder) -> None:
        save_policy(self.model, self.tokenizer, folder)


class GeneratingLearner:
    def __init__(self, model, tokenizer, cfg: UpdateConfig, temperature: float, max_new_tokens: int,
                 lora_rank: int = 0, lora_alpha: float = 16.0):
        if lora_rank > 0:
            try:
                from peft import LoraConfig, get_peft_model
            except ImportError:
                raise UserError("lora_rank > 0 needs peft: pip install -e '.[skillc]'") from None
            model = get_peft_model(model, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules="all-linear",
                                                     task_type="CAUSAL_LM"))
        self.tokenizer, self.temperature, self.max_new_tokens = tokenizer, temperature, max_new_tokens
        # one temperature: the update scores tokens at the temperature they were sampled at
        self.updater = PolicyUpdater(model, cfg.model_copy(update={"epochs": 1}), temperature=temperature or 1.0)

    @property
    def model(self):
        return self.updater.policy

    def acting_policy(self, seed: int, temperature: float | None = None) -> LLMPolicy:
        t = self.temperature if temperature is None else temperature
        params = SamplingParams(temperature=t, max_new_tokens=self.max_new_tokens, stop=["</action>"])
        torch.manual_seed(seed)
        return LLMPolicy(self.model, self.tokenizer, params, keep_rollouts=False)

    def step(self, episodes, advantages: torch.Tensor) -> dict[str, float]:
        rollouts, adv = generated_turns(episodes, advantages, self.tokenizer)
        self.model.train()
        stats = self.updater.update(rollouts.to(self.model.device), adv.to(self.model.device))
        stats["turns"] = float(len(rollouts))
        return stats

    def parts(self) -> dict:
        return self.updater.state_dict_parts()

    def save(self, folder) -> None:
        model = self.model
        if hasattr(model, "merge_and_unload"):  # LoRA: save the merged weights as a plain HF model
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        save_policy(model, self.tokenizer, folder)
