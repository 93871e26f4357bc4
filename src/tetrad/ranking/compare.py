"""`tetrad ranking compare`: every model at matched backbone size, several seeds, same data and
budget, plus MTmixAtt's ablations; writes tables and plots into `docs/results/ranking.md`.

Each (dataset, variant, seed) is one ordinary `tetrad ranking train` run under
`<root>/ranking/<name>-<dataset>-<variant>-s<seed>`. Its summary is also written, with the
settings it was made with, to `<results_dir>/<run name>.json` (`core.rundir.committed_summary`):
a later compare, in another session, reuses those files and the finished runs and trains only
what is missing, and refuses a file or run made with other settings. The tables are made from
those files alone.

Learning rate: with `lr_grid`, each model's rate is chosen from the grid by trial runs (seed
`seeds[0]`, `lr_trial_steps` steps or the run's own budget, the same for every model) scored on
the validation slice (`train.valid_rows`, the end of the training split, never trained on),
by the mean of validation CTR and CTCVR AUC; the trials never see the eval split. Ablations
take MTmixAtt's rate, so that each differs from the full model in its switch alone.

Differences against MTmixAtt are paired: runs of one seed see the same batches, and every run
stores its eval AUC / GAUC under the same user-bootstrap replicates (`train.bootstrap`), so a
model's difference is computed replicate by replicate and seed by seed, and its 95% interval
(`core.bootstrap.paired_interval`) covers evaluation sampling and training seeds together.
Ablations run on the first dataset only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from tetrad.core.bootstrap import paired_interval
from tetrad.core.config import NonNegativeInt, PositiveFloat, RunConfig, Seed, validate_section
from tetrad.core.errors import UserError
from tetrad.core.io import write_marked_block
from tetrad.core.plots import new_figure, save_figure
from tetrad.core.rundir import committed_summary
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
COLUMNS = ["ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc", "ctr_logloss", "ctcvr_logloss"]
PAIRED = ["ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc"]  # the metrics with bootstrap replicates


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
    train: dict = {}  # TrainConfig fields every run shares (batch_size, epochs, lr, valid_rows, bootstrap, ...)
    dataset_train: dict[str, dict] = {}  # per dataset: TrainConfig fields that override `train`
    dataset_models: dict[str, list[str]] = {}  # per dataset: the models to run (default: `models`)
    lr_grid: list[PositiveFloat] = []  # non-empty: each model's learning rate chosen from these (needs valid_rows)
    lr_trial_steps: NonNegativeInt = 0  # steps of each learning-rate trial; 0: the run's own budget
    results_dir: str = "docs/results/ranking"  # every run's summary and settings; the tables are made from these
    out: str = "docs/results/ranking.md"
    command: str = "tetrad ranking compare --config configs/ranking/compare.yaml"


def _train_config(cfg: CompareConfig, dataset: str, data: DataConfig, variant: str, model: dict, seed: int,
                  **over) -> TrainConfig:
    """One run's config: `train`, `dataset_train`, `model` and the ablations are plain mappings,
    checked here (a mistake in any is reported under `train.`, the run's config)."""
    name = f"{cfg.name}-{dataset}-{variant}-s{seed}".replace("=", "_")
    settings = {**cfg.train, **cfg.dataset_train.get(dataset, {}), **over}
    return validate_section(TrainConfig, {**settings, "name": name, "root": cfg.root, "seed": seed,
                                          "data": data.model_dump(),
                                          "model": {**cfg.model, **model, "preset": cfg.preset}}, "train")


def _run(cfg: CompareConfig, tc: TrainConfig) -> dict:
    def run(c: TrainConfig) -> dict:
        print(f"compare: {c.name}", flush=True)
        return train(c)

    return committed_summary("ranking", tc, cfg.results_dir, run)


def _trial_overrides(cfg: CompareConfig, lr: float) -> dict:
    return {"lr": lr, "final_eval": False, "bootstrap": 0, **({"steps": cfg.lr_trial_steps} if cfg.lr_trial_steps
                                                              else {})}


def choose_lr(cfg: CompareConfig, dataset: str, data: DataConfig, model: str) -> dict:
    """{"lr": the chosen rate, "trials": {rate: validation score}}; without a grid, the shared `lr`."""
    if not cfg.lr_grid:
        return {}
    scores = {}
    for lr in cfg.lr_grid:
        s = _run(cfg, _train_config(cfg, dataset, data, f"{model}-lr{lr:g}", {"name": model}, cfg.seeds[0],
                                    **_trial_overrides(cfg, lr)))
        scores[lr] = (s["valid/ctr_auc"] + s["valid/ctcvr_auc"]) / 2
    return {"lr": max(scores, key=lambda lr: (scores[lr], -lr)), "trials": scores}  # a tie takes the smaller rate


def _check(cfg: CompareConfig) -> None:
    """Every run's settings, checked before hours of runs."""
    unknown = [m for m in cfg.models + sum(cfg.dataset_models.values(), []) if m not in BACKBONES]
    if unknown:
        raise UserError(f"unknown model '{unknown[0]}' (available: {', '.join(BACKBONES)})")
    first = next(iter(cfg.datasets))
    if cfg.ablations and "mtmixatt" not in cfg.dataset_models.get(first, cfg.models):
        raise UserError(f"ablations are compared with mtmixatt: add it to the models of dataset '{first}'")
    for dataset, data in cfg.datasets.items():
        if cfg.lr_grid and not _train_config(cfg, dataset, data, "check", {}, 0).valid_rows:
            raise UserError(f"lr_grid needs train.valid_rows > 0 (the validation slice) for dataset '{dataset}'")
        models = [{"name": m} for m in cfg.dataset_models.get(dataset, cfg.models)]
        ablations = [{"name": "mtmixatt", **over} for over in cfg.ablations.values()] if dataset == first else []
        for model in models + ablations:
            _train_config(cfg, dataset, data, "check", model, cfg.seeds[0])
            for lr in cfg.lr_grid:
                _train_config(cfg, dataset, data, "check", model, cfg.seeds[0], **_trial_overrides(cfg, lr))


def compare(cfg: CompareConfig) -> Path:
    _check(cfg)
    results: dict[str, dict[str, list[dict]]] = {}
    chosen: dict[str, dict[str, dict]] = {}
    for dataset, data in cfg.datasets.items():  # the main tables first, the ablations after them
        results[dataset], chosen[dataset] = {}, {}
        for m in cfg.dataset_models.get(dataset, cfg.models):
            chosen[dataset][m] = choose_lr(cfg, dataset, data, m)
            lr = {"lr": chosen[dataset][m]["lr"]} if chosen[dataset][m] else {}
            results[dataset][m] = [_run(cfg, _train_config(cfg, dataset, data, m, {"name": m}, s, **lr))
                                   for s in cfg.seeds]
    dataset, data = next(iter(cfg.datasets.items()))
    lr = {"lr": chosen[dataset]["mtmixatt"]["lr"]} if chosen[dataset].get("mtmixatt") else {}
    for a, over in cfg.ablations.items():
        results[dataset][f"mtmixatt {a}"] = [
            _run(cfg, _train_config(cfg, dataset, data, f"mtmixatt-{a}", {"name": "mtmixatt", **over}, s, **lr))
            for s in cfg.seeds]
    out = Path(cfg.out)
    plots = {d: _plot(d, v, cfg, out.with_name(f"{out.stem}_{d}.png")).name for d, v in results.items()}
    write_marked_block(out, "ranking-compare", render(cfg, results, plots, chosen))
    return out


def _stats(runs: list[dict], key: str) -> tuple[float, float]:
    v = np.array([r.get(key, np.nan) for r in runs], dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _cell(runs: list[dict], key: str) -> str:
    m, s = _stats(runs, key)
    return f"{m:.4f} ± {s:.4f}"


def paired_difference(runs: list[dict], reference: list[dict], key: str) -> tuple[float, float, float] | None:
    """(mean over seeds of run − reference, 95% interval) for seeds paired by position; None when
    the runs carry no bootstrap replicates of `key`."""
    if not all(f"bootstrap/{key}" in r for r in runs + reference):
        return None
    diffs = np.array([np.array(a[f"bootstrap/{key}"]) - np.array(b[f"bootstrap/{key}"])
                      for a, b in zip(runs, reference)])
    lo, hi = paired_interval(diffs)
    return float(np.mean([a[key] - b[key] for a, b in zip(runs, reference)])), lo, hi


def _delta(runs: list[dict], reference: list[dict], key: str) -> str:
    d = paired_difference(runs, reference, key)
    if d is None:
        return f"{_stats(runs, key)[0] - _stats(reference, key)[0]:+.4f}"
    mark = "**" if d[1] > 0 or d[2] < 0 else ""  # bold: the interval excludes 0
    return f"{mark}{d[0]:+.4f}{mark} [{d[1]:+.4f}, {d[2]:+.4f}]"


def render(cfg: CompareConfig, results: dict[str, dict[str, list[dict]]], plots: dict[str, str],
           chosen: dict[str, dict[str, dict]] | None = None) -> str:
    chosen = chosen or {}
    lines = ["# MTmixAtt and baselines: quality at matched backbone size", "",
             f"Made by `{cfg.command}` (preset `{cfg.preset}`, seeds {cfg.seeds}, "
             f"shared training settings {json.dumps(cfg.train)}"
             + (f", per dataset {json.dumps(cfg.dataset_train)}" if cfg.dataset_train else "")
             + (f", learning rate per model from {cfg.lr_grid} on the validation slice" if cfg.lr_grid else "")
             + f"), from the run summaries in `{cfg.results_dir}/`. Every number is the mean ± std over "
             "the seeds on the eval split. Backbones (with their reduction to the common width) are "
             "matched to MTmixAtt's parameter count; the heads are the same for every model. "
             "Δ = model − MTmixAtt, paired by seed, with a 95% interval from the user bootstrap and the "
             "seeds together (bold: the interval excludes 0; negative: MTmixAtt is better).", ""]
    for dataset, variants in results.items():
        lines += _dataset_section(dataset, variants, chosen.get(dataset, {}), plots[dataset])
    lines += ["Timings were taken on a machine shared with other jobs: indicative only; "
              "`benchmarks/ranking_throughput.py` measures speed on its own.", ""]
    return "\n".join(lines)


def _dataset_section(dataset: str, variants: dict[str, list[dict]], chosen: dict[str, dict], plot: str) -> list[str]:
    models = {v: r for v, r in variants.items() if " " not in v}
    ablations = {v: r for v, r in variants.items() if " " in v}
    first = next(iter(models.values()))[0]
    ref = models.get("mtmixatt")
    lines = [f"## {dataset}", "", f"Data: `{first['dataset']}`, {int(first['eval_rows']):,} eval rows.", "",
             "| model | lr | backbone | heads | " + " | ".join(COLUMNS) + " | train s |",
             "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in COLUMNS) + " | ---: |"]
    order = sorted(models, key=lambda v: -_stats(models[v], "ctr_auc")[0])
    for v in order:
        runs = models[v]
        lines.append(f"| {v} | {runs[0].get('lr', float('nan')):g} | {runs[0].get('backbone_params', 0):,} | "
                     f"{runs[0].get('head_params', 0):,} | " + " | ".join(_cell(runs, c) for c in COLUMNS)
                     + f" | {_stats(runs, 'train_seconds')[0]:,.0f} |")
    for prefix, label in (("oracle/", "oracle (true probabilities)"),
                          ("additive/", "additive oracle (teacher without interactions)")):
        if f"{prefix}ctr_auc" in first:
            lines.append(f"| *{label}* | – | – | – | " + " | ".join(
                f"{first[prefix + c]:.4f}" if "logloss" not in c or prefix == "oracle/" else "–" for c in COLUMNS)
                + " | – |")
    if any(chosen.values()):
        lines += ["", "Learning-rate trials (validation mean of CTR and CTCVR AUC, seed 0): "
                  + "; ".join(f"{m} " + ", ".join(f"{lr:g}: {s:.4f}" for lr, s in c["trials"].items())
                              for m, c in chosen.items() if c) + "."]
    if ref is not None and len(models) > 1:
        lines += ["", "Paired differences against MTmixAtt:", "",
                  "| model | " + " | ".join(f"Δ {c} [95% CI]" for c in PAIRED) + " |",
                  "| --- | " + " | ".join("---:" for _ in PAIRED) + " |"]
        lines += [f"| {v} | " + " | ".join(_delta(models[v], ref, c) for c in PAIRED) + " |"
                  for v in order if v != "mtmixatt"]
        lines += ["", *_verdict(models)]
        lines += _scenario_table(models, order, ref)
    if ablations and ref is not None:
        lines += ["", f"### MTmixAtt ablations ({dataset})", "",
                  "| variant | backbone | ctr_auc | Δ ctr_auc [95% CI] | ctcvr_auc | Δ ctcvr_auc [95% CI] |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |",
                  f"| full MTmixAtt | {ref[0].get('backbone_params', 0):,} | {_cell(ref, 'ctr_auc')} | – | "
                  f"{_cell(ref, 'ctcvr_auc')} | – |"]
        for v, runs in ablations.items():
            lines.append(f"| {v.split(' ', 1)[1]} | {runs[0].get('backbone_params', 0):,} | {_cell(runs, 'ctr_auc')} | "
                         f"{_delta(runs, ref, 'ctr_auc')} | {_cell(runs, 'ctcvr_auc')} | "
                         f"{_delta(runs, ref, 'ctcvr_auc')} |")
    return lines + ["", f"![AUC per model and per scenario, and training time, on {dataset}]({plot})", ""]


def _scenarios(runs: list[dict]) -> list[str]:
    return sorted(k.split("/", 1)[1] for k in runs[0] if k.startswith("ctr_auc/"))


def _scenario_table(models: dict[str, list[dict]], order: list[str], ref: list[dict]) -> list[str]:
    """CTR and CTCVR AUC per scenario (mean over seeds), with the paired difference of CTR AUC."""
    names = _scenarios(ref)
    if len(names) < 2:
        return []
    lines = ["", "Per scenario (CTR AUC, Δ CTR AUC [95% CI], CTCVR AUC):", "",
             "| model | " + " | ".join(names) + " |", "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for v in order:
        cells = []
        for n in names:
            delta = "" if v == "mtmixatt" else f", {_delta(models[v], ref, f'ctr_auc/{n}')}"
            cells.append(f"{_stats(models[v], f'ctr_auc/{n}')[0]:.4f}{delta}, "
                         f"{_stats(models[v], f'ctcvr_auc/{n}')[0]:.4f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def _verdict(models: dict[str, list[dict]]) -> list[str]:
    """Per metric: whether MTmixAtt beats every baseline, and which ones it beats beyond the interval."""
    out = []
    for metric in PAIRED:
        mine = _stats(models["mtmixatt"], metric)[0]
        others = [v for v in models if v != "mtmixatt"]
        beaten = [v for v in others if _stats(models[v], metric)[0] >= mine]
        best = max(others, key=lambda v: _stats(models[v], metric)[0])
        gap = mine - _stats(models[best], metric)[0]
        diffs = {v: paired_difference(models[v], models["mtmixatt"], metric) for v in others}
        clearly_worse = [v for v, d in diffs.items() if d is not None and d[2] < 0]
        clearly_better = [v for v, d in diffs.items() if d is not None and d[1] > 0]
        head = (f"- {metric}: MTmixAtt does **not** beat every baseline: {', '.join(beaten)} "
                f"score{'s' if len(beaten) == 1 else ''} at least as high (best: {best}, MTmixAtt {gap:+.4f})"
                if beaten else f"- {metric}: MTmixAtt is highest, {gap:+.4f} over the best baseline ({best})")
        if all(d is not None for d in diffs.values()):
            head += (f"; beyond the 95% interval, MTmixAtt beats {', '.join(clearly_worse) or 'none'} and is beaten "
                     f"by {', '.join(clearly_better) or 'none'}")
        out.append(head + ".")
    return out


def _plot(dataset: str, variants: dict[str, list[dict]], cfg: CompareConfig, path: Path) -> Path:
    """Three panels: CTR and CTCVR AUC per model (dashed: oracle, dotted: additive oracle), CTR AUC
    per scenario, training seconds per model."""
    names = [v for v in variants if " " not in v]
    first = variants[names[0]][0]
    scen = _scenarios(variants[names[0]])
    fig, axes = new_figure(15.0, 4.5, ncols=3)
    x = np.arange(len(names))
    for j, metric in enumerate(("ctr_auc", "ctcvr_auc")):
        stats = [_stats(variants[n], metric) for n in names]
        axes[0].bar(x + (j - 0.5) * 0.4, [m for m, _ in stats], 0.4, yerr=[s for _, s in stats], label=metric)
        for prefix, style in (("oracle/", "--"), ("additive/", ":")):
            if f"{prefix}{metric}" in first:
                axes[0].axhline(first[f"{prefix}{metric}"], ls=style, lw=1, color=f"C{j}")
    lo = min(_stats(variants[n], m)[0] for n in names for m in ("ctr_auc", "ctcvr_auc"))
    axes[0].set_ylim(max(0.0, lo - 0.05), None)
    axes[0].set(title=f"{dataset}: preset {cfg.preset}, {len(cfg.seeds)} seeds", ylabel="AUC")
    axes[0].legend()
    width = 0.8 / max(1, len(scen))
    for j, n in enumerate(scen):
        axes[1].bar(x + (j - (len(scen) - 1) / 2) * width, [_stats(variants[v], f"ctr_auc/{n}")[0] for v in names],
                    width, label=n)
    if scen:
        lo = min(_stats(variants[v], f"ctr_auc/{n}")[0] for v in names for n in scen)
        axes[1].set_ylim(max(0.0, lo - 0.05), None)
        axes[1].legend(fontsize="small")
    axes[1].set(title="CTR AUC per scenario", ylabel="AUC")
    axes[2].bar(x, [_stats(variants[v], "train_seconds")[0] for v in names])
    axes[2].set(title="training time", ylabel="seconds")
    for ax in axes:
        ax.set_xticks(x, names, rotation=45, ha="right")
    return save_figure(fig, path)
