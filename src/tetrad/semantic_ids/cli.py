"""`tetrad sid ...`: tokenize, diagnose, train, eval, hourglass. Each takes an optional YAML
config (`--config configs/sid/<name>.yaml`) and `key=value` overrides."""

from __future__ import annotations

import json


def _config(args, cls=None):
    from tetrad.core.config import load_config
    from tetrad.semantic_ids.train import SidConfig

    return load_config(cls or SidConfig, args.config, args.overrides)


def _tokenize(args) -> int:
    from tetrad.semantic_ids.train import run_tokenize

    print(json.dumps(run_tokenize(_config(args)), indent=2))
    return 0


def _diagnose(args) -> int:
    from tetrad.semantic_ids.train import run_tokenize

    out = run_tokenize(_config(args), diagnose_too=True)
    print(open(out["diagnostics"]).read())
    print(f"diagnostics: {out['diagnostics']} (JSON and plots beside it)")
    return 0


def _train(args) -> int:
    from tetrad.semantic_ids.train import run_train

    summary = run_train(_config(args))
    if summary:
        print(json.dumps(summary, indent=2))
    return 0


def _eval(args) -> int:
    from tetrad.semantic_ids.train import run_eval

    print(json.dumps(run_eval(_config(args), args.split), indent=2))
    return 0


def _hourglass(args) -> int:
    from tetrad.semantic_ids.study import StudyConfig, run_study

    cfg = _config(args, StudyConfig)
    config = ["--config", args.config] if args.config else []
    run_study(cfg, command=" ".join(["tetrad sid hourglass", *config, *args.overrides]))
    return 0


def add_commands(subparsers) -> None:
    specs = [
        ("tokenize", _tokenize, "fit a quantizer on item embeddings, apply the fix, save the codes"),
        ("diagnose", _diagnose, "tokenize, then the hourglass diagnostics: table, plots, JSON"),
        ("train", _train, "train the TIGER-style retriever (and SASRec) on SIDs; resumable; torchrun-ready"),
        ("eval", _eval, "score a trained retriever with trie-constrained beam search"),
        ("hourglass", _hourglass, "the hourglass study end to end, written to docs/results/semantic-ids.md"),
    ]
    for name, handler, text in specs:
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("--config", help="YAML config (configs/sid/)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (e.g. quantizer.kind=rq_vae)")
        if name == "eval":
            p.add_argument("--split", choices=["test", "valid"], default="test")
        p.set_defaults(handler=handler)
