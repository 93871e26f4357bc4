"""Time one TTRL step split into generate / score / update, the sampler's generated tokens/s against
plain `model.generate` on the same model and batch, and the TTRL-Guard's overhead.

    python benchmarks/llm_step.py [--model runs/ttrl/pretrain/model | smollm2 | tiny] [--prompts 8]
                                  [--samples 16] [--train 8] [--new-tokens 6] [--repeats 5]

Prints a Markdown table of medians over `--repeats` steps (after one warm-up step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tetrad.llm.models import ModelSpec, load_policy
from tetrad.llm.sampling import SamplingParams, sample
from tetrad.llm.update import PolicyUpdater, UpdateConfig
from tetrad.ttrl.answers import extract_answer, normalise
from tetrad.ttrl.guard import GuardConfig, TTRLGuard
from tetrad.ttrl.tasks import reasoning_gym_tasks
from tetrad.ttrl.voting import rewards, vote


def spec_for(model: str) -> ModelSpec:
    if model in ("tiny", "smollm2"):
        return ModelSpec(kind=model)
    return ModelSpec(kind="hf", path=model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="runs/ttrl/pretrain/model")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--train", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_policy(spec_for(args.model))
    chat = args.model == "smollm2"
    tasks = reasoning_gym_tasks("chain_sum", args.prompts, 1234, prompt_style="question" if chat else "expression")
    params = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens)
    guard = TTRLGuard(GuardConfig(frs=True, mps=True, rcsu=True))
    updater = PolicyUpdater(model, UpdateConfig(lr=1e-5, micro_batch=64, total_steps=args.repeats + 1))
    rows: dict[str, list[float]] = {k: [] for k in ("generate", "score", "update", "guard", "step", "sampler_tok_s",
                                                    "plain_generate_tok_s")}
    for rep in range(args.repeats + 1):
        t0 = time.perf_counter()
        r = sample(updater.policy, tok, tasks.prompts, args.samples, params, chat=chat)
        t1 = time.perf_counter()
        answers = [normalise(extract_answer(t)) for t in r.texts]
        groups = [answers[g * args.samples:(g + 1) * args.samples] for g in range(len(tasks))]
        votes = [vote(a) for a in groups]
        train = r.first_of_each_group(args.train)
        reward = torch.cat([rewards(a[:args.train], v) for a, v in zip(groups, votes)])
        context = {"prompt_ids": tasks.ids, "votes": votes,
                   "answers": [[v.class_of(x) for x in a[:args.train]] for a, v in zip(groups, votes)]}
        t2 = time.perf_counter()
        adv = updater.advantages(train, reward)  # no hooks registered: the guard is timed on its own below
        g0 = time.perf_counter()
        adv = guard(adv, train, context)
        g1 = time.perf_counter()
        updater.update(train, adv)
        t3 = time.perf_counter()
        # plain generate on the same model and batch: the very prompt tensors the sampler used
        ids, mask = r.prompt_ids, r.prompt_mask
        p0 = time.perf_counter()
        with torch.no_grad():
            out = updater.policy.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=1.0,
                                          top_k=0, max_new_tokens=args.new_tokens, pad_token_id=tok.pad_token_id)
        p1 = time.perf_counter()
        plain_tokens = int((out[:, ids.shape[1]:] != tok.pad_token_id).sum())
        if rep == 0:
            continue  # warm-up
        rows["generate"].append(t1 - t0)
        rows["score"].append(t2 - t1)
        rows["guard"].append(g1 - g0)
        rows["update"].append(t3 - t2 - (g1 - g0))
        rows["step"].append(t3 - t0)
        rows["sampler_tok_s"].append(float(r.response_mask.sum()) / (t1 - t0))
        rows["plain_generate_tok_s"].append(plain_tokens / (p1 - p0))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"model {args.model}; {args.prompts} prompts x {args.samples} samples, GRPO on {args.train} each, "
          f"{args.new_tokens} new tokens; medians over {args.repeats} steps\n")
    print("| part | seconds | share of step |\n| --- | --- | --- |")
    for k in ("generate", "score", "update", "guard"):
        print(f"| {k} | {med[k]:.4f} | {med[k] / med['step']:.2%} |")
    print(f"| step | {med['step']:.4f} | 100% |\n")
    print(f"generated tokens/s: sampler {med['sampler_tok_s']:.0f}, plain generate {med['plain_generate_tok_s']:.0f} "
          f"(ratio {med['sampler_tok_s'] / med['plain_generate_tok_s']:.2f})")


if __name__ == "__main__":
    main()
