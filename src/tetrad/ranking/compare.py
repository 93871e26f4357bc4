"""`tetrad ranking compare`: every model at matched dense size, several seeds, same data, plus
MTmixAtt's ablations; writes a mean ± std table and a plot to `docs/results/ranking.md`.

Each (dataset, variant, seed) is one ordinary `tetrad ranking train` run under
`<root>/ranking/<name>-<dataset>-<variant>-s<seed>`; a run that already has a summary
is reused, so an interrupted comparison continues where it stopped. Ablations run on the
first dataset only.
"""

from __future__ import annotations

import json
from pathlib import Path

from typing import Annotated

import numpy as np
from pydantic import Field

from tetrad.core.config import RunConfig, Seed, validate_section
from tetrad.core.errors import UserError
from tetrad.core.io import write_marked_block
from tetrad.core.plots import new_figure, save_figure
from tetrad.core.rundir import finished_summary
from tetrad.ranking.models import BACKBONES
from tetrad.ranking.train import DataConfig, TrainConfig, train

DEFAULT_ABLATIONS: dict[str, dict] = {
    "grouping=manual": {"grouping": "manual"},
    "grouping=random": {"grouping": "random"},
    "mixing=zero": {"mixing": "zero"},
    "mixing=transpose": {"mixing": "transpose"},
    "dense_gate=relu": {"dense_gate": "relu"},
    "shared_experts=0": {"shared_experts": 0},
    "sparse_moe=off": {"sparse_moe": False},
    "norm=prenorm": {"norm": "prenorm"},
    "norm=postnorm": {"norm": "postnorm"},
}
# what follows this line in the results file (hand-run measurements, each naming its command) survives a re-run
COLUMNS = ["ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc", "ctr_logloss", "ctcvr_logloss"]


class CompareConfig(RunConfig):
    name: str = "compare"
    datasets: Annotated[dict[str, DataConfig], Field(min_length=1)] = {
        "synthetic": DataConfig(),
        "movielens": DataConfig(source="movielens", path="runs/data/ranking-movielens"),
    }
    models: list[str] = list(BACKBONES)
    ablations: dict[str, dict] = DEFAULT_ABLATIONS
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    preset: str = "tiny"
    model: dict = {}  # model fields every run shares (e.g. hash_buckets)
    train: dict = {}  # TrainConfig fields every run shares (batch_size, epochs, lr, threads, ...)
    dataset_train: dict[str, dict] = {}  # per dataset: TrainConfig fields that override `train`
    dataset_models: dict[str, list[str]] = {}  # per dataset: the models to run (default: `models`)
    out: str = "docs/results/ranking.md"
    command: str = "tetrad ranking compare --config configs/ranking/compare.yaml"


def _train_config(cfg: CompareConfig, dataset: str, data: DataConfig, variant: str, model: dict,
                  seed: int) -> TrainConfig:
    """One run's config: `train`, `dataset_train`, `model` and the ablations are plain mappings,
    checked here (a mistake in any is reported under `train.`, the run's config)."""
    name = f"{cfg.name}-{dataset}-{variant}-s{seed}".replace("=", "_")
    run_path = Path(cfg.root) / "ranking" / name
    settings = {**cfg.train, **cfg.dataset_train.get(dataset, {})}
    return validate_section(TrainConfig, {**settings, "name": name, "root": cfg.root, "seed": seed,
                                          "data": data.model_dump(),
                                          "model": {**cfg.model, **model, "preset": cfg.preset},
                                          "resume": (run_path / "metrics.jsonl").exists()}, "train")


def _run(cfg: CompareConfig, dataset: str, data: DataConfig, variant: str, model: dict, seed: int) -> dict:
    tc = _train_config(cfg, dataset, data, variant, model, seed)
    if (done := finished_summary("ranking", tc)) is not None:
        return done
    print(f"compare: {dataset} {variant} seed {seed}", flush=True)
    return train(tc)


def compare(cfg: CompareConfig) -> Path:
    unknown = [m for m in cfg.models + sum(cfg.dataset_models.values(), []) if m not in BACKBONES]
    if unknown:
        raise UserError(f"unknown model '{unknown[0]}' (available: {', '.join(BACKBONES)})")
    first = next(iter(cfg.datasets))
    for dataset, data in cfg.datasets.items():  # every run's settings are checked before hours of runs
        models = [{"name": m} for m in cfg.dataset_models.get(dataset, cfg.models)]
        ablations = [{"name": "mtmixatt", **over} for over in cfg.ablations.values()] if dataset == first else []
        for model in models + ablations:
            _train_config(cfg, dataset, data, "check", model, cfg.seeds[0])
    results: dict[str, dict[str, list[dict]]] = {}
    for dataset, data in cfg.datasets.items():  # the main tables first, the ablations after them
        results[dataset] = {m: [_run(cfg, dataset, data, m, {"name": m}, s) for s in cfg.seeds]
                            for m in cfg.dataset_models.get(dataset, cfg.models)}
    dataset, data = next(iter(cfg.datasets.items()))
    for a, over in cfg.ablations.items():
        results[dataset][f"mtmixatt {a}"] = [_run(cfg, dataset, data, f"mtmixatt-{a}", {"name": "mtmixatt", **over}, s)
                                             for s in cfg.seeds]
    out = Path(cfg.out)
    plots = {d: _plot(d, v, cfg, out.with_name(f"{out.stem}_{d}.png")).name for d, v in results.items()}
    write_marked_block(out, "ranking-compare", render(cfg, results, plots))
    return out


def _stats(runs: list[dict], key: str) -> tuple[float, float]:
    v = np.array([r[key] for r in runs], dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _cell(runs: list[dict], key: str) -> str:
    m, s = _stats(runs, key)
    return f"{m:.4f} ± {s:.4f}"


def render(cfg: CompareConfig, results: dict[str, dict[str, list[dict]]], plots: dict[str, str]) -> str:
    lines = ["# MTmixAtt and baselines: quality at matched size", "",
             f"Made by `{cfg.command}` (preset `{cfg.preset}`, seeds {cfg.seeds}, "
             f"shared training settings {json.dumps(cfg.train)}"
             + (f", per dataset {json.dumps(cfg.dataset_train)}" if cfg.dataset_train else "")
             + "). Every number is mean ± std over the seeds "
             "of the eval split; dense parameters exclude embedding tables; baselines are sized to "
             "MTmixAtt's count by `tetrad.ranking.models.resolve_config`.", ""]
    for dataset, variants in results.items():
        models = {v: r for v, r in variants.items() if " " not in v}
        ablations = {v: r for v, r in variants.items() if " " in v}
        first = next(iter(models.values()))[0]
        lines += [f"## {dataset}", "", f"Data: `{first['dataset']}`.", "",
                  "| model | dense params | " + " | ".join(COLUMNS) + " | train samples/s |",
                  "| --- | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |"]
        for v, runs in sorted(models.items(), key=lambda kv: -_stats(kv[1], "ctr_auc")[0]):
            lines.append(f"| {v} | {runs[0]['dense_params']:,} | " + " | ".join(_cell(runs, c) for c in COLUMNS)
                         + f" | {_stats(runs, 'train_samples_per_s')[0]:,.0f} |")
        if "oracle/ctr_auc" in first:
            lines.append("| *oracle (true probabilities)* | – | "
                         + " | ".join(f"{first['oracle/' + c]:.4f}" for c in COLUMNS) + " | – |")
        lines.append("")
        lines += _verdict(models)
        if ablations and "mtmixatt" in models:
            base = {c: _stats(models["mtmixatt"], c)[0] for c in ("ctr_auc", "ctcvr_auc")}
            lines += ["", f"### MTmixAtt ablations ({dataset})", "",
                      "| variant | dense params | ctr_auc | Δ ctr_auc | ctcvr_auc | Δ ctcvr_auc |",
                      "| --- | ---: | ---: | ---: | ---: | ---: |",
                      f"| full MTmixAtt | {models['mtmixatt'][0]['dense_params']:,} | "
                      f"{_cell(models['mtmixatt'], 'ctr_auc')} | – | "
                      f"{_cell(models['mtmixatt'], 'ctcvr_auc')} | – |"]
            for v, runs in ablations.items():
                d_ctr = _stats(runs, "ctr_auc")[0] - base["ctr_auc"]
                d_cvr = _stats(runs, "ctcvr_auc")[0] - base["ctcvr_auc"]
                lines.append(f"| {v.split(' ', 1)[1]} | {runs[0]['dense_params']:,} | {_cell(runs, 'ctr_auc')} | "
                             f"{d_ctr:+.4f} | {_cell(runs, 'ctcvr_auc')} | {d_cvr:+.4f} |")
        lines += ["", f"![CTR and CTCVR AUC per model on {dataset}]({plots[dataset]})", ""]
    lines += ["Timings (samples/s) were taken on a 2-core machine shared with other jobs: they are noisy "
              "and only indicative; `benchmarks/ranking_throughput.py` measures speed on its own.", ""]
    return "\n".join(lines)


def _verdict(models: dict[str, list[dict]]) -> list[str]:
    if "mtmixatt" not in models or len(models) < 2:
        return []
    out = []
    for metric in ("ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc"):
        mine, mine_sd = _stats(models["mtmixatt"], metric)
        beaten = [v for v in models if v != "mtmixatt" and _stats(models[v], metric)[0] >= mine]
        best_other = max((v for v in models if v != "mtmixatt"), key=lambda v: _stats(models[v], metric)[0])
        gap = mine - _stats(models[best_other], metric)[0]
        if beaten:
            out.append(f"- {metric}: MTmixAtt does **not** beat every baseline: "
                       f"{', '.join(beaten)} score{'s' if len(beaten) == 1 else ''} at least as high "
                       f"(best: {best_other}, MTmixAtt {gap:+.4f}).")
        else:
            out.append(f"- {metric}: MTmixAtt is highest, {gap:+.4f} over the best baseline ({best_other}); "
                       f"seed std {mine_sd:.4f}.")
    return out


def _plot(dataset: str, variants: dict[str, list[dict]], cfg: CompareConfig, path: Path) -> Path:
    fig, ax = new_figure(7.0, 4.5)
    names = [v for v in variants if " " not in v]
    x = np.arange(len(names))
    first = variants[names[0]][0]
    for j, metric in enumerate(("ctr_auc", "ctcvr_auc")):
        stats = [_stats(variants[n], metric) for n in names]
        ax.bar(x + (j - 0.5) * 0.4, [m for m, _ in stats], 0.4, yerr=[s for _, s in stats], label=metric)
        if f"oracle/{metric}" in first:
            ax.axhline(first[f"oracle/{metric}"], ls="--", lw=1, color=f"C{j}")
    lo = min(_stats(variants[n], m)[0] for n in names for m in ("ctr_auc", "ctcvr_auc"))
    ax.set_ylim(max(0.0, lo - 0.05), None)
    ax.set_xticks(x, names, rotation=45, ha="right")
    ax.set(title=f"{dataset}: preset {cfg.preset}, {len(cfg.seeds)} seeds (dashed: oracle)", ylabel="AUC")
    ax.legend()
    return save_figure(fig, path)
