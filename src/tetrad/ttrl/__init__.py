"""TTRL (majority vote as pseudo-label, GRPO on unlabeled test problems) and TTRL-Guard.

- `answers`: final-answer extraction (never raises), normalisation, equivalence (math-verify).
- `tasks`: reasoning-gym problems and TTRL benchmark JSON files; truths kept apart from prompts.
- `voting`: majority vote, majority ratio, rewards.
- `tracking`: per-problem trajectories, categories, flip rate, extinction windows.
- `guard`: FRS, MPS, RCSU as an advantage hook.
- `recipe`, `pretrain`, `compare`: the `tetrad ttrl` commands.
"""
