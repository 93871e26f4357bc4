"""ALFWorld game generation speed: kept games per minute, with the expert check, for this tree
(with and without `memoize_textworld_parsing`) and optionally an older checkout of tetrad, each
generating the same number of games of the same split and seed in its own process.

    python benchmarks/game_generation.py [--n 24] [--split train] [--seed 0]
                                         [--baseline-src <older checkout>/src]

Prints a Markdown table (seconds, samples the expert check rejected per task type, kept games per
minute, speed-up over the first row) and whether this tree's two ways wrote identical games.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import hashlib, json, sys, time
import tetrad.agents.alfworld_env as alfworld_env
from tetrad.agents.alfworld_games import make_games
if sys.argv[5] == "0":  # textworld's parser as installed
    alfworld_env.memoize_textworld_parsing = lambda: None
stats = {}
start = time.perf_counter()
folders = make_games(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), stats=stats)
seconds = time.perf_counter() - start
digest = hashlib.sha256(b"".join((f / "game.tw-pddl").read_bytes() for f in folders)).hexdigest()
print(json.dumps({"seconds": seconds, "kept": len(folders), "rejected": stats, "digest": digest}))
"""


def run(src: str, memoize: bool, args, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), str(args.n), args.split, str(args.seed),
                           "1" if memoize else "0"], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--split", default="train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-src", default="", help="the src/ folder of an older checkout, timed first")
    args = ap.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline_src:
            rows.append(("baseline checkout", run(args.baseline_src, False, args, Path(tmp) / "base")))
        rows.append(("this tree, textworld parsing as installed", run(here, False, args, Path(tmp) / "plain")))
        rows.append(("this tree", run(here, True, args, Path(tmp) / "memo")))
    print(f"{args.n} {args.split} games, seed {args.seed} (task types in turn), one process each\n")
    print("| generator | seconds | rejected samples | kept games per minute | speed-up |")
    print("| --- | ---: | --- | ---: | ---: |")
    first = rows[0][1]["seconds"]
    for name, r in rows:
        rejected = ", ".join(f"{t}: {n}" for t, n in sorted(r["rejected"].items())) or "none"
        print(f"| {name} | {r['seconds']:.1f} | {rejected} | {60 * r['kept'] / r['seconds']:.1f} | "
              f"{first / r['seconds']:.1f}x |")
    print(f"\nthis tree's two ways wrote identical games: {rows[-1][1]['digest'] == rows[-2][1]['digest']}")


if __name__ == "__main__":
    main()
