"""`tetrad ttrl compare`: base vs TTRL vs TTRL-Guard vs each guard rule alone, over seeds, written to
a Markdown table (docs/results/ttrl.md by default) that names the command that made it.

Every variant shares the run config and differs only in `guard`; runs land in
`runs/ttrl/<prefix>-<variant>-s<seed>` and a finished one (summary.json present) is reused. Writes
the table and findings into the `block` of `output`, and the flip rate per pass of every variant to
`<block>_flip_rate.png` beside it. The table also gives the step the unsupervised stopping rule
picks (`tracking.stop_step`), the pass@1 of the evaluation it picks and the best evaluation's in
hindsight (set `run.eval_every` for evaluations to pick from).
Variants are compared with plain TTRL seed by seed: runs of one seed draw every step's samples from
the same seeded generators, so their differences come from the rule, not from sampling noise.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from tetrad.core.config import Config, Seed
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json, write_marked_block
from tetrad.core.rundir import finished_summary
from tetrad.ttrl.recipe import TTRLConfig, run_ttrl

VARIANTS: dict[str, dict] = {
    "ttrl": {},
    "ttrl_guard": {"frs": True, "mps": True, "rcsu": True},
    "frs_only": {"frs": True},
    "mps_only": {"mps": True},
    "rcsu_only": {"rcsu": True},
}


class CompareConfig(Config):
    run: TTRLConfig = TTRLConfig()
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    variants: Annotated[list[str], Field(min_length=1)] = list(VARIANTS)
    prefix: str = "compare"
    output: str = "docs/results/ttrl.md"
    block: str = "ttrl-compare"  # the marked block of `output` this comparison rewrites


def compare(cfg: CompareConfig, command: str = "tetrad ttrl compare") -> Path:
    unknown = [v for v in cfg.variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant '{unknown[0]}' (known: {', '.join(VARIANTS)})")
    results: dict[str, list[dict]] = {v: [] for v in cfg.variants}
    for seed in cfg.seeds:
        for variant in cfg.variants:
            name = f"{cfg.prefix}-{variant}-s{seed}"
            done = Path(cfg.run.root) / "ttrl" / name / "summary.json"
            guard = cfg.run.guard.model_copy(update={"frs": False, "mps": False, "rcsu": False, **VARIANTS[variant]})
            run_cfg = cfg.run.model_copy(update={"name": name, "seed": seed, "guard": guard,
                                                 "resume": (done.parent / "metrics.jsonl").exists()})
            summary = finished_summary("ttrl", run_cfg)
            if summary is None:
                start = time.perf_counter()
                summary = run_ttrl(run_cfg)
                summary["seconds"] = time.perf_counter() - start
                atomic_write_json(done, summary)
            results[variant].append({**summary, **guard_activity(done.parent / "metrics.jsonl"),
                                     "run_dir": str(done.parent)})
    if "ttrl" in results:
        for rows in results.values():
            for row, plain in zip(rows, results["ttrl"]):  # both in seed order
                row["labels_changed"] = labels_changed(Path(row["run_dir"]), Path(plain["run_dir"]))
    out = Path(cfg.output)
    figure = plot_flip_rates(results, out.with_name(f"{cfg.block.replace('-', '_')}_flip_rate.png"))
    write_marked_block(out, cfg.block, render(cfg, results, command) + f"\n![flip rate per pass]({figure.name})\n")
    return out


def plot_flip_rates(results: dict[str, list[dict]], path: Path) -> Path:
    """Mean flip rate per pass (from the second: the first has nothing to flip from) of each variant,
    averaged over seeds."""
    from tetrad.core.plots import new_figure, save_figure

    fig, ax = new_figure()
    for variant, rows in results.items():
        later = np.array([r["flip_rate_by_pass"][1:] for r in rows], dtype=float)
        if later.size:
            ax.plot(range(2, later.shape[1] + 2), later.mean(0), marker=".", label=variant)
    ax.set(xlabel="pass over the test set", ylabel="flip rate (mean over seeds)", title="majority-label flip rate")
    if ax.lines:  # a single-pass run has no flip rates to draw
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def guard_activity(metrics_path: Path) -> dict[str, float]:
    """How often each guard rule acted over a run, and its mean flip rate per pass, from its metrics log."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    frs = [r["guard/frs_weight"] for r in rows if "guard/frs_weight" in r]
    by_pass = pd.DataFrame([r for r in rows if "flip_rate" in r]).groupby("epoch")["flip_rate"].mean()
    return {"mps_fired": float(sum(r.get("guard/mps_fired", 0) for r in rows)),
            "rcsu_skipped": float(sum(r.get("guard/rcsu_skipped", 0) for r in rows)),
            "frs_weight_mean": float(np.mean(frs)) if frs else float("nan"),
            "flip_rate_by_pass": by_pass.tolist()}


def labels_changed(run: Path, plain: Path) -> float:
    """Share of visits whose majority label differs from the plain TTRL run of the same seed. Every
    step's samples are drawn from the same seeded generators in both runs, so a rule that leaves
    the policy (almost) unchanged leaves the labels unchanged: this measures how far the rule moved
    training, free of sampling noise."""
    keys = ["step", "problem_id"]
    a = pd.read_parquet(run / "visits.parquet", columns=keys + ["label"])
    b = pd.read_parquet(plain / "visits.parquet", columns=keys + ["label"])
    both = a.merge(b, on=keys, suffixes=("", "_plain"))
    return float((both["label"].fillna("<none>") != both["label_plain"].fillna("<none>")).mean())


def _stat(rows: list[dict], key: str, fmt: str = "{:.3f}") -> str:
    vals = np.array([r.get(key, np.nan) for r in rows], dtype=float)
    if np.isnan(vals).all():
        return "–"
    if len(vals) == 1:
        return fmt.format(vals[0])
    return f"{fmt.format(np.nanmean(vals))} ± {fmt.format(np.nanstd(vals))}"


def render(cfg: CompareConfig, results: dict[str, list[dict]], command: str) -> str:
    k = cfg.run.eval_samples
    columns = [  # (header, summary key, format)
        (f"pass@1 (mean@{k})", "pass@1", "{:.3f}"), (f"maj@{k}", f"maj@{k}", "{:.3f}"),
        ("label acc. (last epoch)", "label_accuracy_last_epoch", "{:.3f}"), ("learned", "n_learned", "{:.1f}"),
        ("degraded", "n_degraded", "{:.1f}"), ("stable right", "n_stable_right", "{:.1f}"),
        ("always wrong", "n_always_wrong", "{:.1f}"), ("flip-rate peak", "flip_rate_peak", "{:.3f}"),
        ("flip rate at end", "flip_rate_last", "{:.3f}"),
        ("stop rule's step", "stop_step", "{:.0f}"), ("pass@1 at its pick", "stop_pass@1", "{:.3f}"),
        ("best pass@1 (hindsight)", "best_pass@1", "{:.3f}"),
        ("MPS firings", "mps_fired", "{:.1f}"), ("RCSU skips", "rcsu_skipped", "{:.1f}"),
        ("mean FRS weight", "frs_weight_mean", "{:.3f}"), ("labels ≠ TTRL's", "labels_changed", "{:.3f}"),
        ("seconds/run", "seconds", "{:.0f}"),
    ]
    first = next(iter(results.values()))
    base = {"pass@1": _stat(first, "base_pass@1"), f"maj@{k}": _stat(first, f"base_maj@{k}")}
    lines = ["| variant | " + " | ".join(h for h, _, _ in columns) + " |", "| --- " * (len(columns) + 1) + "|",
             "| base (step 0) | " + " | ".join(base.get(key, "–") for _, key, _ in columns) + " |"]
    for v, rows in results.items():
        lines.append(f"| {v} | " + " | ".join(_stat(rows, key, fmt) for _, key, fmt in columns) + " |")
    return "\n".join([f"Made by `{command}` ({len(cfg.seeds)} seeds: {cfg.seeds}; mean ± standard deviation over seeds).",
                      "", *lines, "", *findings(results), ""])


def findings(results: dict[str, list[dict]]) -> list[str]:
    """Plain statements computed from the numbers (the paper's claims, checked)."""
    out = []

    def mean(v: str, key: str) -> float:
        vals = np.array([r.get(key, np.nan) for r in results.get(v, [])], dtype=float)
        return float(vals[~np.isnan(vals)].mean()) if (~np.isnan(vals)).any() else float("nan")

    if "ttrl" in results:
        learned, degraded = mean("ttrl", "n_learned"), mean("ttrl", "n_degraded")
        peak_step, steps = mean("ttrl", "flip_rate_peak_step"), mean("ttrl", "steps")
        n = mean("ttrl", "problems")
        out.append(f"- Plain TTRL, degraded vs learned problems: {degraded:.1f} vs {learned:.1f} of {n:.0f} "
                   f"({degraded / n:.1%} vs {learned / n:.1%}; the paper: 21.6% vs 0.7%) — "
                   + ("degraded outnumber learned, the direction of the paper's pattern." if degraded > learned else
                      "the paper's pattern (degraded >> learned) does not reproduce here."))
        # the first pass has no flips to count (no earlier visit)
        later = np.array([r["flip_rate_by_pass"][1:] for r in results["ttrl"]], dtype=float)
        by_pass = ", ".join(f"{x:.2f}" for x in later.mean(0)) if later.size else "–"
        out.append(f"- Plain TTRL flip rate peaks at {mean('ttrl', 'flip_rate_peak'):.3f} at step {peak_step:.0f} of "
                   f"{steps:.0f} and ends at {mean('ttrl', 'flip_rate_last'):.3f}; mean per pass (from the second): "
                   f"{by_pass}.")
        out.append(f"- pass@1: base {mean('ttrl', 'base_pass@1'):.3f} -> TTRL {mean('ttrl', 'pass@1'):.3f}.")
    for v in ("ttrl_guard", "frs_only", "mps_only", "rcsu_only"):
        if v in results and "ttrl" in results:
            # paired by seed: both runs of a seed draw from the same seeded generators
            diffs = np.array([a.get("pass@1", np.nan) - b.get("pass@1", np.nan)
                              for a, b in zip(results[v], results["ttrl"])], dtype=float)
            dd = mean(v, "n_degraded") - mean("ttrl", "n_degraded")
            consistent = len(diffs) > 1 and (np.all(diffs > 0) or np.all(diffs < 0)) and abs(diffs.mean()) > diffs.std()
            verdict = (("raises" if diffs.mean() > 0 else "lowers") + " pass@1 in every seed" if consistent
                       else "no consistent effect on pass@1")
            out.append(f"- {v} vs TTRL, same seeds: pass@1 {', '.join(f'{d:+.3f}' for d in diffs)} "
                       f"(mean {diffs.mean():+.3f}), degraded problems {dd:+.1f}, majority labels differ from "
                       f"TTRL's at {mean(v, 'labels_changed'):.1%} of visits; {verdict}.")
    return out
