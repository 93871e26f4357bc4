"""`tetrad ranking ...`: generate, train, export, compare, params."""

from __future__ import annotations


def add_commands(sub) -> None:
    p = sub.add_parser("generate", help="write the synthetic multi-scenario, multi-task log as sharded Parquet")
    p.add_argument("out", help="output folder (gets schema.json, train/, eval/)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. rows=10000000 users=1000000")
    p.set_defaults(handler=_generate)

    p = sub.add_parser("movielens", help="write MovieLens-100k framed as a multi-task log")
    p.add_argument("out")
    p.add_argument("--negatives", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_movielens)

    p = sub.add_parser("train", help="train a ranking model (MTmixAtt or a baseline)")
    p.add_argument("--config", default=None, help="YAML config, e.g. configs/ranking/mtmixatt_tiny.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="e.g. model.name=rankmixer steps=200")
    p.set_defaults(handler=_train)

    p = sub.add_parser("export", help="export a trained run's model to ONNX")
    p.add_argument("run", help="run directory, e.g. runs/ranking/default")
    p.add_argument("--out", default=None, help="ONNX file (default: <run>/model.onnx)")
    p.set_defaults(handler=_export)

    p = sub.add_parser("compare", help="all models at matched size, 3 seeds, plus the paper's ablations")
    p.add_argument("--config", default=None, help="YAML config, e.g. configs/ranking/compare.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(handler=_compare)

    p = sub.add_parser("params", help="backbone, head and dense parameter counts of every model at a preset "
                                      "(meta device)")
    p.add_argument("--preset", default="15m")
    p.set_defaults(handler=_params)


def _generate(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.data.ctr_synthetic import SyntheticCTRConfig, generate

    schema = generate(args.out, load_config(SyntheticCTRConfig, None, args.overrides))
    print(f"wrote {schema.extra['train_rows']} train and {schema.extra['eval_rows']} eval rows, "
          f"{len(schema.features)} features, {len(schema.scenarios)} scenarios to {args.out}")
    return 0


def _movielens(args) -> int:
    from tetrad.data.ctr_public import movielens_multitask

    schema = movielens_multitask(args.out, negatives=args.negatives, seed=args.seed)
    print(f"wrote {schema.extra['train_rows']} train and {schema.extra['eval_rows']} eval rows to {args.out}")
    return 0


def _train(args) -> int:
    import json

    from tetrad.core.config import load_config
    from tetrad.ranking.train import TrainConfig, train

    summary = train(load_config(TrainConfig, args.config, args.overrides))
    if summary:
        keys = [k for k in summary if k.split("_")[0] in ("ctr", "ctcvr", "oracle/ctr", "oracle/ctcvr")
                and "/" not in k.replace("oracle/", "")]
        print(json.dumps({"model": summary["model"], "dense_params": summary["dense_params"],
                          **{k: round(summary[k], 4) for k in keys}}, indent=1))
    return 0


def _export(args) -> int:
    from pathlib import Path

    from tetrad.ranking.export import export_onnx, load_trained

    model, features = load_trained(args.run)
    out = export_onnx(model, features, args.out or Path(args.run) / "model.onnx")
    print(f"wrote {out}")
    return 0


def _compare(args) -> int:
    from tetrad.core.config import load_config
    from tetrad.ranking.compare import CompareConfig, compare

    out = compare(load_config(CompareConfig, args.config, args.overrides))
    print(f"wrote {out}")
    return 0


def _params(args) -> int:
    from tetrad.core.errors import UserError
    from tetrad.data.ctr_synthetic import SyntheticCTRConfig, synthetic_schema
    from tetrad.ranking.data import select_features
    from tetrad.ranking.models import (BACKBONES, PRESETS, ModelConfig, backbone_parameter_count, build_model,
                                       dense_parameter_count, head_parameter_count)

    if args.preset not in PRESETS:
        raise UserError(f"unknown preset '{args.preset}' (available: {', '.join(PRESETS)})")
    features = select_features(synthetic_schema(SyntheticCTRConfig()))
    print(f"{'model':14s} {'backbone':>14s} {'heads':>12s} {'dense':>14s}")
    for name in BACKBONES:
        model = build_model(ModelConfig(name=name, preset=args.preset), features, device="meta")
        print(f"{name:14s} {backbone_parameter_count(model):>14,d} {head_parameter_count(model):>12,d} "
              f"{dense_parameter_count(model):>14,d}")
    return 0
