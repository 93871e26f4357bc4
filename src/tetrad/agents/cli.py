"""`tetrad agents ...`: make games and catalogues, export expert trajectories, train the BC policy,
evaluate policies."""

from __future__ import annotations

import json


def add_commands(sub) -> None:
    p = sub.add_parser("make-games", help="generate ALFWorld games (PDDL + traj_data.json) for the real engine")
    p.add_argument("--out", required=True, help="folder to write <split>/<task_type>-<index>/ into")
    p.add_argument("--n", type=int, default=60, help="number of games (task types in turn)")
    p.add_argument("--split", default="train", help="train, valid_seen or valid_unseen")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task-types", default="", help="comma-separated task types (default: all six)")
    p.add_argument("--verify-steps", type=int, default=50,
                   help="keep only games the handcoded expert wins within this many steps (0: no check)")
    p.set_defaults(handler=_make_games)

    p = sub.add_parser("expert-trajectories", help="play games with ALFWorld's handcoded expert, write JSONL")
    p.add_argument("--games", required=True, help="a game folder (generated or real ALFWorld data)")
    p.add_argument("--out", required=True, help="JSONL file, one episode per line")
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_expert_trajectories)

    p = sub.add_parser("make-catalogue", help="generate the shop's product catalogue (JSON)")
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_make_catalogue)

    p = sub.add_parser("bc", help="behaviour-clone a small policy from the handcoded expert, skills in context",
                       description="Train the behaviour-cloned base policy. Config keys (see "
                                   "tetrad.agents.bc.BCConfig) can be set as key=value.")
    p.add_argument("--config", default=None, help="YAML config (e.g. configs/agents/bc.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(handler=_bc)

    p = sub.add_parser("eval", help="play a policy on ALFWorld or the shop with skills on/off; success per task type",
                       description="Evaluate a policy. Config keys (see tetrad.agents.evaluate.EvalConfig) "
                                   "can be set as key=value.")
    p.add_argument("--config", default=None, help="YAML config (e.g. configs/agents/eval_alfworld.yaml)")
    p.add_argument("--policy", default=None,
                   help="expert, random, bc (bc_run=<run directory>), llm (the `model` config section) or smollm")
    p.add_argument("--skills", default=None, help="on, off or both")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(handler=_eval)

    p = sub.add_parser("summarize", help="summarise an evaluation run's episodes.jsonl again (with today's metrics)")
    p.add_argument("run", help="an evaluation run directory (runs/agents/<name>)")
    p.set_defaults(handler=_summarize)


def _make_games(args) -> int:
    from tetrad.agents.alfworld_env import TASK_TYPES
    from tetrad.agents.alfworld_games import make_games

    types = [t.strip() for t in args.task_types.split(",") if t.strip()] or list(TASK_TYPES)
    stats: dict[str, int] = {}
    folders = make_games(args.out, args.n, args.split, args.seed, types, args.verify_steps, stats)
    rejected = sum(stats.values())
    print(f"wrote {len(folders)} games to {args.out}/{args.split}"
          + (f"; the expert check rejected {rejected} sampled games ({json.dumps(stats)})" if args.verify_steps else ""))
    return 0


def _expert_trajectories(args) -> int:
    from tetrad.agents.bc_data import play_expert, write_episodes
    from tetrad.agents.environments import environment

    tasks = environment("alfworld").tasks("train", 0, games=args.games, expert=True, max_steps=args.max_steps)
    episodes = play_expert("alfworld", tasks, args.seed)
    counts: dict[str, dict[str, int]] = {}
    for ep in episodes:
        c = counts.setdefault(ep["task_type"], {"episodes": 0, "won": 0})
        c["episodes"] += 1
        c["won"] += int(ep["won"])
    won = [ep for ep in episodes if ep["won"]]
    write_episodes(won, args.out)
    print(f"expert won {len(won)}/{len(episodes)} games; wrote the {len(won)} won trajectories to {args.out}")
    print(json.dumps(counts, indent=1))
    return 0


def _make_catalogue(args) -> int:
    from tetrad.agents.shop import make_catalogue, save_catalogue

    save_catalogue(make_catalogue(args.n, args.seed), args.out)
    print(f"wrote {args.n} products to {args.out}")
    return 0


def _bc(args) -> int:
    from tetrad.agents.bc import BCConfig, train_bc
    from tetrad.core.config import load_config

    summary = train_bc(load_config(BCConfig, args.config, args.overrides))
    print(json.dumps(summary, indent=1))
    return 0


def _eval(args) -> int:
    from tetrad.agents.evaluate import EvalConfig, evaluate
    from tetrad.core.config import load_config

    overrides = list(args.overrides)
    if args.policy:
        overrides.append(f"policy={args.policy}")
    if args.skills:
        overrides.append(f"skills={args.skills}")
    summary = evaluate(load_config(EvalConfig, args.config, overrides))
    print(json.dumps(summary, indent=1))
    return 0


def _summarize(args) -> int:
    from pathlib import Path

    from tetrad.agents.rollout import load_episodes, summarize

    print(json.dumps(summarize(load_episodes(Path(args.run) / "episodes.jsonl")), indent=1))
    return 0
