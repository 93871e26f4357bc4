"""ALFWorld game generation with and without the memoized textworld parsing
(`tetrad.agents.alfworld_env.memoize_textworld_parsing`): the same games (same split and seed,
so the same samples and the same expert checks) generated both ways in one run, and the games
kept per minute.

    python benchmarks/game_generation.py [--n 6] [--split train] [--seed 0] [--out /tmp/game-bench]

Prints a Markdown table: seconds, samples the expert check rejected, kept games per minute, and
the speed-up (plain / memoized); checks that both ways wrote identical game files.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import textworld.envs.pddl.textgen as textgen
import textworld.logic as logic

import tetrad.agents.alfworld_env as alfworld_env
from tetrad.agents.alfworld_games import make_games


def generate(out: Path, n: int, split: str, seed: int) -> tuple[float, int, list[bytes]]:
    shutil.rmtree(out, ignore_errors=True)
    stats: dict[str, int] = {}
    start = time.perf_counter()
    folders = make_games(out, n, split, seed, stats=stats)
    seconds = time.perf_counter() - start
    return seconds, sum(stats.values()), [(f / "game.tw-pddl").read_bytes() for f in folders]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/game-bench")
    args = ap.parse_args()
    out = Path(args.out)
    # plain first: the textworld parser as installed, the memoizing step disabled
    memoize = alfworld_env.memoize_textworld_parsing
    alfworld_env.memoize_textworld_parsing = lambda: None
    plain = generate(out / "plain", args.n, args.split, args.seed)
    alfworld_env.memoize_textworld_parsing = memoize
    memoize()
    assert textgen._parse_and_convert.memoized and logic._parse_and_convert.memoized
    fast = generate(out / "memoized", args.n, args.split, args.seed)
    assert plain[2] == fast[2], "the two ways wrote different games"
    print(f"{args.n} {args.split} games, seed {args.seed} (task types in turn); identical files both ways\n")
    print("| textworld parsing | seconds | rejected samples | kept games per minute |")
    print("| --- | ---: | ---: | ---: |")
    for name, (seconds, rejected, _) in (("as installed", plain), ("memoized", fast)):
        print(f"| {name} | {seconds:.1f} | {rejected} | {60 * args.n / seconds:.1f} |")
    print(f"\nspeed-up: {plain[0] / fast[0]:.1f}x")


if __name__ == "__main__":
    main()
