"""Time one action-loss step (forward + backward) of the BC policy two ways on the same batches:
the prompt's KV cache copied to every candidate (`prompt_cache` + `continuation_logprobs`, what
the scoring decoder does at inference) against one packed pass with a block mask
(`packed_continuation_logprobs`, what `tetrad agents bc` trains with), and their peak memory.

    python benchmarks/bc_step.py --trajectories runs/agents/bc-big/expert.jsonl
                                 [--episodes 60] [--history 8] [--hidden 128] [--layers 2]
                                 [--batch 8] [--repeats 5] [--threads 1] [--device cpu]

Prints a Markdown table: the median seconds per step of each way over `--repeats` batches (the
two ways alternate on the same batches, so machine load hits both alike) and their ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from tetrad.agents.bc_data import bc_examples, encode_examples, load_trajectories
from tetrad.agents.bc_model import action_logprobs, resolve_device
from tetrad.agents.skills import SkillLibrary
from tetrad.llm.logprobs import continuation_logprobs, pad_sequences, prompt_cache
from tetrad.llm.models import tiny_llama
from tetrad.llm.tokenizers import word_tokenizer


def cached_scores(model, batch, pad):
    device = model.device
    prompt_ids, prompt_mask = (t.to(device) for t in pad_sequences([e.prompt for e in batch], pad, left=True))
    cache, last = prompt_cache(model, prompt_ids, prompt_mask)
    rows = torch.tensor([i for i, e in enumerate(batch) for _ in e.candidates], device=device)
    ids, mask = (t.to(device) for t in pad_sequences([c for e in batch for c in e.candidates], pad))
    return continuation_logprobs(model, cache, last, prompt_mask, rows, ids, mask).sum()


def packed_scores(model, batch, pad):
    return action_logprobs(model, batch, pad)[0].sum()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", required=True)
    ap.add_argument("--episodes", type=int, default=60)
    ap.add_argument("--history", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    episodes = load_trajectories(args.trajectories)[:args.episodes]
    examples = bc_examples(episodes, [True] * len(episodes), SkillLibrary.load(), args.history)
    tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)])
    encoded = encode_examples(examples, tok)
    torch.manual_seed(0)
    model = tiny_llama(tok, args.hidden, args.layers, 4, 4096).to(device)
    ways = {"cache copied per candidate": cached_scores, "packed, block mask": packed_scores}
    times: dict[str, list[float]] = {k: [] for k in ways}
    peaks: dict[str, float] = {}
    rng = random.Random(0)
    for rep in range(args.repeats + 1):  # the first round warms up, unmeasured
        batch = rng.sample(encoded, args.batch)
        for name, way in ways.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            way(model, batch, tok.pad_token_id).backward()
            if device.type == "cuda":
                torch.cuda.synchronize()
                peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
            model.zero_grad(set_to_none=True)
            if rep:
                times[name].append(time.perf_counter() - t0)
    print(f"{args.batch} examples per step, history {args.history}, {args.layers} x {args.hidden}, "
          f"{sum(len(e.prompt) for e in encoded) / len(encoded):.0f} prompt tokens and "
          f"{sum(len(e.candidates) for e in encoded) / len(encoded):.1f} candidates on average, {device}\n")
    base = statistics.median(times["cache copied per candidate"])
    print("| scoring | s / step (median) | vs cache | peak GPU GiB |\n| --- | ---: | ---: | ---: |")
    for name, ts in times.items():
        med = statistics.median(ts)
        peak = f"{peaks[name]:.2f}" if name in peaks else "-"
        print(f"| {name} | {med:.3f} | {base / med:.2f}x | {peak} |")


if __name__ == "__main__":
    main()
