"""`tetrad ttrl pretrain | run | compare`."""

from __future__ import annotations

import json


def add_commands(subparsers) -> None:
    for name, handler, text in [
        ("pretrain", _pretrain, "train (or reuse) the tiny arithmetic base policy and report its per-problem spread"),
        ("run", _run, "base evaluation, then TTRL or TTRL-Guard (by config); resumable with resume=true"),
        ("compare", _compare, "base vs TTRL vs TTRL-Guard vs each guard rule over seeds -> docs/results/ttrl.md"),
    ]:
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("--config", default=None, help="YAML config (e.g. configs/ttrl/quick.yaml)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
        p.set_defaults(handler=handler)


def _pretrain(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.ttrl.pretrain import PretrainConfig, model_dir, pretrain

    cfg = load_config(PretrainConfig, args.config, args.overrides)
    summary = pretrain(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_problem_accuracy"}, indent=1))
    print(f"base policy: {model_dir(cfg)}")
    return 0


def _run(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.ttrl.recipe import TTRLConfig, run_ttrl

    cfg = load_config(TTRLConfig, args.config, args.overrides)
    print(json.dumps(run_ttrl(cfg), indent=1))
    return 0


def _compare(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.ttrl.compare import CompareConfig, compare

    cfg = load_config(CompareConfig, args.config, args.overrides)
    path = compare(cfg, command=" ".join(["tetrad ttrl compare"] + ([f"--config {args.config}"] if args.config else [])
                                         + list(args.overrides)))
    print(f"compare: wrote {path}")
    return 0
