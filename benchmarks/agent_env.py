"""Environment throughput: ALFWorld steps/s in one process and in the worker pool, and the shop's.

    python benchmarks/agent_env.py [--envs 4] [--workers 2] [--rounds 30] [--repeats 3] [--out FILE]

Generates 8 ALFWorld games (train split, seed 0, no expert check) into a temporary folder, then
steps `--envs` environments for `--rounds` rounds of random admissible actions (the same
actions in both set-ups), once with all environments in this process and once in an `EnvPool`
of `--workers` processes. Resets (and episode ends, re-reset between rounds) are not timed:
steps/s counts environment steps only. The shop is stepped in this process with random
admissible actions. Each figure is the median of `--repeats` runs; the pool's speed-up is the
ratio of medians measured in the same run. A one-worker pool is measured too (its gap to one
process is the pool's own overhead), and the machine's load average is reported: on a machine
whose cores are busy with other work the pool cannot run its workers in parallel.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path


def step_rate(envs, n_envs: int, rounds: int, seed: int) -> float:
    """Environment steps per second over `rounds` batched steps of random admissible actions."""
    rng = random.Random(seed)
    results = envs.reset([{"game": i, "seed": seed} for i in range(n_envs)])
    infos = [info for _, info in results]
    steps, seconds = 0, 0.0
    for _ in range(rounds):
        actions = [rng.choice(info["admissible_commands"]) if info["admissible_commands"] else "look"
                   for info in infos]
        actions = [f"search[{rng.choice(['red', 'organic', 'wireless', 'cotton'])} shoes]" if a == "search[<query>]"
                   else a for a in actions]
        t0 = time.perf_counter()
        out = envs.step(actions)
        seconds += time.perf_counter() - t0
        steps += n_envs
        done = [i for i, (_, _, d, _) in enumerate(out) if d]
        infos = [o[3] for o in out]
        if done:
            again = envs.reset([{"game": i, "seed": seed} if i in done else None for i in range(n_envs)])
            for i in done:
                infos[i] = again[i][1]
    return steps / seconds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args(argv)

    from tetrad.agents.alfworld_env import AlfworldEnv
    from tetrad.agents.alfworld_games import make_games
    from tetrad.agents.pool import EnvPool
    from tetrad.agents.rollout import LocalEnvs
    from tetrad.agents.shop import ShopEnv, make_catalogue

    with tempfile.TemporaryDirectory() as tmp:
        folders = make_games(Path(tmp), 8, "train", 0, verify_steps=0)
        make_env = functools.partial(AlfworldEnv, folders, max_steps=1000)
        local = LocalEnvs([make_env() for _ in range(args.envs)])
        one, pooled, single_worker = [], [], []
        load_before = os.getloadavg()[0]
        with EnvPool(make_env, args.envs, args.workers) as pool, EnvPool(make_env, args.envs, 1) as pool1:
            for r in range(args.repeats):
                one.append(step_rate(local, args.envs, args.rounds, seed=r))
                pooled.append(step_rate(pool, args.envs, args.rounds, seed=r))
                single_worker.append(step_rate(pool1, args.envs, args.rounds, seed=r))
    products = make_catalogue(2000, 0)
    shop = LocalEnvs([ShopEnv(products, split="train", n_goals=200, max_steps=15) for _ in range(args.envs)])
    shop_rates = [step_rate(shop, args.envs, args.rounds * 10, seed=r) for r in range(args.repeats)]
    result = {
        "envs": args.envs, "workers": args.workers, "rounds": args.rounds, "repeats": args.repeats,
        "alfworld_one_process_steps_per_s": statistics.median(one),
        "alfworld_pool_steps_per_s": statistics.median(pooled),
        "pool_speedup": statistics.median(pooled) / statistics.median(one),
        "one_worker_pool_steps_per_s": statistics.median(single_worker),  # the pool's own overhead
        "load_average_before_after": [load_before, os.getloadavg()[0]],  # other processes on the machine
        "shop_steps_per_s": statistics.median(shop_rates),
        "runs": {"one_process": one, "pool": pooled, "one_worker_pool": single_worker, "shop": shop_rates},
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
