"""What the exact-match features cost: one BC action-loss step (forward + backward, packed) of the
same tiny scorer with and without token features, alternating on the same batches, and the time
to compute the codes (`tetrad.agents.match.match_codes`) of a batch on the CPU.

    python benchmarks/match_features.py --trajectories runs/agents/bc-shop-match/expert.jsonl --env shop
                                        [--episodes 200] [--hidden 128] [--layers 2] [--batch 8]
                                        [--repeats 10] [--threads 1]

Prints a Markdown table of median seconds per step and the ratio (features / none).
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time

import torch

from tetrad.agents.bc_data import bc_examples, encode_examples, load_trajectories
from tetrad.agents.bc_model import action_logprobs
from tetrad.agents.match import N_CODES
from tetrad.agents.skills import SkillLibrary
from tetrad.llm.models import add_token_features, tiny_llama
from tetrad.llm.tokenizers import word_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trajectories", required=True)
    ap.add_argument("--env", default="shop", choices=["alfworld", "shop"])
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--history", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    episodes = load_trajectories(args.trajectories)[:args.episodes]
    examples = bc_examples(episodes, [True] * len(episodes), SkillLibrary.load(), args.history, args.env)
    tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)])
    torch.manual_seed(0)
    plain = tiny_llama(tok, args.hidden, args.layers, 4, 4096)
    featured = add_token_features(copy.deepcopy(plain), N_CODES)
    rng = random.Random(0)
    times: dict[str, list[float]] = {"none": [], "features": [], "computing the codes": []}
    for rep in range(args.repeats + 1):  # the first round warms up, unmeasured
        batch = rng.sample(examples, args.batch)
        t0 = time.perf_counter()
        with_codes = encode_examples(batch, tok, features=True)
        t1 = time.perf_counter()
        without = encode_examples(batch, tok)
        t2 = time.perf_counter()
        codes_seconds = (t1 - t0) - (t2 - t1)
        for name, model, encoded in (("none", plain, without), ("features", featured, with_codes)):
            t = time.perf_counter()
            (-action_logprobs(model, encoded, tok.pad_token_id)[0].mean()).backward()
            model.zero_grad(set_to_none=True)
            if rep:
                times[name].append(time.perf_counter() - t)
        if rep:
            times["computing the codes"].append(codes_seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"| batch of {args.batch} ({args.env}, {args.hidden} x {args.layers}) | median seconds |")
    print("| --- | ---: |")
    for k, v in median.items():
        print(f"| {k} | {v:.4f} |")
    print(f"| ratio, features / none (step only) | {median['features'] / median['none']:.3f} |")


if __name__ == "__main__":
    main()
