"""`tetrad skillc train | compare`."""

from __future__ import annotations

import json


def add_commands(subparsers) -> None:
    for name, handler, text in [
        ("train", _train, "train one method (SkillC, a baseline or an ablation) from a base policy; resumable"),
        ("compare", _compare, "every method from the same base policy over seeds -> docs/results/skillc.md"),
    ]:
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("--config", default=None, help="YAML config (e.g. configs/skillc/skillc.yaml)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
        p.set_defaults(handler=handler)


def _train(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.skillc.recipe import SkillCConfig, train

    summary = train(load_config(SkillCConfig, args.config, args.overrides))
    print(json.dumps(summary, indent=1))
    return 0


def _compare(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.skillc.compare import CompareConfig, compare

    cfg = load_config(CompareConfig, args.config, args.overrides)
    command = " ".join(["tetrad skillc compare"] + ([f"--config {args.config}"] if args.config else [])
                       + list(args.overrides))
    print(f"compare: wrote {compare(cfg, command)}")
    return 0
