"""The LLM reinforcement-learning engine TTRL-Guard and SkillC share.

- `models`: load a policy (Hugging Face directory, SmolLM2-135M-Instruct from its GGUF file,
  a tiny Llama built from a config with a locally built character tokenizer).
- `sampling`: batched sampling with a KV cache (temperature, top-p, max new tokens, stop strings).
- `logprobs`: per-token log-probs of given responses.
- `grpo`: group-normalised advantages, the clipped GRPO loss and the k3 KL, as pure functions.
- `update`: the policy-update loop (AdamW, clipping, accumulation, warm-up + cosine schedule, DDP)
  with pluggable advantage hooks.

See docs/llm.md for the interface.
"""
