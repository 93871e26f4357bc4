"""SkillC: RL for LLM agents trained with skill prompts that must work without them.

- `advantages`: GRPO, SkillC's dual-stream advantage, the fixed-gate ablation, D2Skill's bonus,
  as pure functions of tensors.
- `curriculum`: the adaptive curriculum (smoothed gap -> strength, allocation, monotonic
  pruning) and SKILL0's withdrawal schedule.
- `learners`: the policy update for a scoring policy (action log-probs) or a generating LLM
  (token log-probs, optional LoRA).
- `recipe`: `tetrad skillc train`; `compare`: `tetrad skillc compare`.
"""
