"""Time TTRL steps of a run config, split into generate / score / update, with the TTRL-Guard's
overhead and (optionally) the sampler's generated tokens/s against plain `model.generate` on the
same model and batch.

    python benchmarks/llm_step.py [--config configs/ttrl/quick.yaml] [--prompts 8] [--repeats 5]
                                  [--warmup 1] [--no-plain-generate] [key=value ...]

The config's model (the cached base policy when it names none), its first `--prompts` problems, N,
M, sampling, chat template and update settings are used as they are; `key=value` overrides apply
to the config (e.g. `train_sampling.max_new_tokens=64`). Prints a Markdown table of medians over
`--repeats` steps taken after `--warmup` unmeasured ones, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from tetrad.core.config import load_config
from tetrad.llm.models import load_policy
from tetrad.llm.sampling import sample
from tetrad.llm.update import PolicyUpdater
from tetrad.ttrl.answers import extract_answer, normalise
from tetrad.ttrl.guard import GuardConfig, TTRLGuard
from tetrad.ttrl.recipe import TTRLConfig, resolve_model
from tetrad.ttrl.tasks import load_tasks
from tetrad.ttrl.voting import rewards, vote


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/ttrl/quick.yaml")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--no-plain-generate", action="store_true", help="skip the plain-generate comparison")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    args = ap.parse_args()
    cfg = load_config(TTRLConfig, args.config, args.overrides)
    torch.manual_seed(cfg.seed)
    t_load = time.perf_counter()
    model, tok = load_policy(resolve_model(cfg))
    load_s = time.perf_counter() - t_load
    tasks = load_tasks(cfg.tasks)
    ids, prompts = tasks.ids[:args.prompts], tasks.prompts[:args.prompts]
    n, m = cfg.n_samples, cfg.n_train
    guard = TTRLGuard(GuardConfig(frs=True, mps=True, rcsu=True))
    updater = PolicyUpdater(model, cfg.update.model_copy(update={"total_steps": args.repeats + args.warmup}))
    rows: dict[str, list[float]] = {k: [] for k in ("generate", "score", "update", "guard", "step", "tokens",
                                                    "sampler_tok_s", "plain_generate_tok_s")}
    for rep in range(args.repeats + args.warmup):
        t0 = time.perf_counter()
        r = sample(updater.policy, tok, prompts, n, cfg.train_sampling, chat=cfg.chat)
        t1 = time.perf_counter()
        answers = [normalise(extract_answer(t)) for t in r.texts]
        groups = [answers[g * n:(g + 1) * n] for g in range(len(prompts))]
        votes = [vote(a) for a in groups]
        train = r.first_of_each_group(m)
        reward = torch.cat([rewards(a[:m], v) for a, v in zip(groups, votes)])
        context = {"prompt_ids": ids, "votes": votes,
                   "answers": [[v.class_of(x) for x in a[:m]] for a, v in zip(groups, votes)]}
        t2 = time.perf_counter()
        adv = updater.advantages(train, reward)  # no hooks registered: the guard is timed on its own below
        g0 = time.perf_counter()
        adv = guard(adv, train, context)
        g1 = time.perf_counter()
        updater.update(train, adv)
        t3 = time.perf_counter()
        if not args.no_plain_generate:
            # plain generate on the same model and batch: the very prompt tensors the sampler used
            p = cfg.train_sampling
            updater.policy.eval()  # as the sampler runs it
            p0 = time.perf_counter()
            with torch.no_grad():
                out = updater.policy.generate(input_ids=r.prompt_ids, attention_mask=r.prompt_mask, do_sample=True,
                                              temperature=p.temperature, top_p=p.top_p, top_k=0,
                                              max_new_tokens=p.max_new_tokens, pad_token_id=tok.pad_token_id)
            p1 = time.perf_counter()
            updater.policy.train()
            plain_tokens = int((out[:, r.prompt_ids.shape[1]:] != tok.pad_token_id).sum())
            rows["plain_generate_tok_s"].append(plain_tokens / (p1 - p0))
        if rep < args.warmup:
            continue
        rows["generate"].append(t1 - t0)
        rows["score"].append(t2 - t1)
        rows["guard"].append(g1 - g0)
        rows["update"].append(t3 - t2 - (g1 - g0))
        rows["step"].append(t3 - t0)
        rows["tokens"].append(float(r.response_mask.sum()))
        rows["sampler_tok_s"].append(float(r.response_mask.sum()) / (t1 - t0))
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    print(f"config {args.config} {' '.join(args.overrides)}; {len(prompts)} prompts x N={n} samples, GRPO on M={m} "
          f"each, up to {cfg.train_sampling.max_new_tokens} new tokens; medians over {args.repeats} steps after "
          f"{args.warmup} warm-up; model loaded in {load_s:.1f} s; {torch.get_num_threads()} torch threads\n")
    print("| part | seconds | share of step |\n| --- | --- | --- |")
    for k in ("generate", "score", "update", "guard"):
        print(f"| {k} | {med[k]:.4f} | {med[k] / med['step']:.2%} |")
    print(f"| step | {med['step']:.4f} | 100% |\n")
    print(f"generated tokens per step: {med['tokens']:.0f} ({med['tokens'] / (len(prompts) * n):.1f} per response)")
    line = f"generated tokens/s: sampler {med['sampler_tok_s']:.0f}"
    if "plain_generate_tok_s" in med:
        line += (f", plain generate {med['plain_generate_tok_s']:.0f} "
                 f"(ratio {med['sampler_tok_s'] / med['plain_generate_tok_s']:.2f})")
    print(line)
    print(f"peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
