"""`tetrad ttrl compare`: base vs TTRL vs TTRL-Guard vs each guard rule alone, over seeds, written to
a Markdown block (docs/results/ttrl.md by default) that names the command that made it.

Every variant shares the run config and differs only in `guard`; runs land in
`runs/ttrl/<prefix>-<variant>-s<seed>`. Each finished run's summary, with what the report needs
from its run directory (guard activity and flip rate per pass from `metrics.jsonl`, the majority
label of every visit, the extinction windows, the share of confidently wrong base votes) and the
settings it was made with, is written to `<results_dir>/<prefix>-<variant>-s<seed>.json`
(`tetrad.core.rundir.committed_summary`). A later compare (another session, another machine)
reuses those files and the finished runs, resumes an interrupted run and trains only what is
missing; a file or run made with other settings is refused. The tables and figures are made from
the files alone.

Variants are compared with plain TTRL seed by seed: runs of one seed draw every step's samples from
the same seeded generators, so their differences come from the rule, not from sampling noise. The
report gives each variant's mean with a 95% Student-t interval over seeds and its difference from
plain TTRL as a paired 95% t interval over seeds (`tetrad.core.bootstrap.paired_t_interval`), for
pass@1, maj@k, degraded and learned (categories anchored to the base policy's vote, as
`tracking.py` counts them). It also gives the step the unsupervised stopping rule picks
(`tracking.stop_step`), the pass@1 of the evaluation it picks and the best evaluation's in
hindsight (set `run.eval_every` for evaluations to pick from).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
from pydantic import Field

from tetrad.core.bootstrap import paired_t_interval
from tetrad.core.config import Config, Seed
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json, write_marked_block
from tetrad.core.rundir import committed_summary, finished_summary
from tetrad.ttrl.recipe import TTRLConfig, run_ttrl

VARIANTS: dict[str, dict] = {
    "ttrl": {},
    "ttrl_guard": {"frs": True, "mps": True, "rcsu": True},
    "frs_only": {"frs": True},
    "mps_only": {"mps": True},
    "rcsu_only": {"rcsu": True},
}
EXTRAS_KEY = "labels_by_visit"  # the majority labels; with TIMING_KEY, a summary carries the compare's extras
TIMING_KEY = "degraded_first_wrong_visit"


class CompareConfig(Config):
    run: TTRLConfig = TTRLConfig()
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    variants: Annotated[list[str], Field(min_length=1)] = list(VARIANTS)
    prefix: str = "compare"
    results_dir: str = "docs/results/ttrl"  # one committed {settings, summary} JSON per run
    output: str = "docs/results/ttrl.md"
    block: str = "ttrl-compare"  # the marked block of `output` this comparison rewrites


def variant_config(cfg: CompareConfig, variant: str, seed: int) -> TTRLConfig:
    """The run of `variant` at `seed`: the shared run config with only the guard's rules and the seed changed."""
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    data = cfg.run.model_dump()
    data.update(name=f"{cfg.prefix}-{variant}-s{seed}", seed=seed, resume=False,
                guard={**data["guard"], "frs": False, "mps": False, "rcsu": False, **VARIANTS[variant]})
    return TTRLConfig.model_validate(data)


def run_dir(run: TTRLConfig) -> Path:
    return Path(run.root) / "ttrl" / run.name


def train_variant(run: TTRLConfig) -> dict:
    """`committed_summary`'s callback for a run with no finished directory: train it, and keep its
    summary with the extras in its `summary.json`."""
    path = run_dir(run)
    start = time.perf_counter()
    summary = run_ttrl(run)
    summary = {**summary, "seconds": time.perf_counter() - start, **run_extras(path, run)}
    atomic_write_json(path / "summary.json", summary)
    return summary


def variant_summary(run: TTRLConfig, results_dir: Path) -> dict:
    """The summary of one run, from its committed file, else its finished run directory, else by
    training it; an earlier compare's finished run (no extras in its summary) gets them from its directory."""
    if not (results_dir / f"{run.name}.json").is_file():
        done = finished_summary("ttrl", run)  # refuses a run made with other settings
        if done is not None and not {EXTRAS_KEY, TIMING_KEY} <= done.keys():
            atomic_write_json(run_dir(run) / "summary.json", {**done, **run_extras(run_dir(run), run)})
    return committed_summary("ttrl", run, results_dir, train_variant)


def compare(cfg: CompareConfig, command: str = "tetrad ttrl compare") -> Path:
    runs = {v: {s: variant_config(cfg, v, s) for s in cfg.seeds} for v in cfg.variants}
    results_dir = Path(cfg.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summaries = {v: {s: variant_summary(r, results_dir) for s, r in by_seed.items()} for v, by_seed in runs.items()}
    seconds = time.perf_counter() - start
    out = Path(cfg.output)
    stem = cfg.block.replace("-", "_")
    flips = plot_flip_rates(summaries, out.with_name(f"{stem}_flip_rate.png"))
    dynamics = plot_dynamics(summaries, out.with_name(f"{stem}_dynamics.png"))
    text = (render(cfg, summaries, command, seconds) + f"\n![flip rate per pass]({flips.name})\n"
            f"\n![flip rate per pass and extinction windows, every variant]({dynamics.name})\n")
    write_marked_block(out, cfg.block, text)
    return out


# --- what a run directory adds to the summary -------------------------------------------------

def run_extras(path: Path, run: TTRLConfig) -> dict:
    """What the report needs beyond `summary.json`, read once from the run directory so that the
    committed file alone makes the tables."""
    extras: dict = {**guard_activity(path / "metrics.jsonl")}
    visits = pd.read_parquet(path / "visits.parquet", columns=["step", "problem_id", "label"])
    visits = visits.sort_values(["step", "problem_id"])
    extras[EXTRAS_KEY] = [None if pd.isna(x) else str(x) for x in visits["label"]]
    problems = pd.read_parquet(path / "problems.parquet")
    if "extinction_window" in problems:
        extras["extinction_windows"] = [float(w) for w in problems["extinction_window"].dropna()]
    need = max(1, run.n_train // run.guard.mps_min_votes_denom) / run.n_samples  # MPS's rule, as a share of votes
    extras |= degradation_timing(pd.read_parquet(path / "visits.parquet"), problems, need)
    if {"initial_label_acc", "base_majority_ratio"} <= set(problems):
        wrong = (problems["initial_label_acc"] == 0) & (problems["base_majority_ratio"] > run.guard.tau_mr)
        extras["base_confident_wrong"] = float(wrong.mean())
    return extras


def degradation_timing(visits: pd.DataFrame, problems: pd.DataFrame, mps_min_share: float) -> dict:
    """When the degraded problems (the base policy's vote right, the final label wrong) went wrong,
    and whether the guard could still act: per degraded problem, the visit of its first wrong
    majority label and the share of samples with the true answer on that visit. With one true
    answer a right label cannot flip to another right one, so that visit is the problem's first
    flip: a flip-rate rule gets its first signal when the label is already wrong. What it can do
    then is MPS's bonus for the true answer, which needs `mps_min_share` of the votes; below it
    (or on a problem's first visit, where the guard is the identity) it is too late."""
    degraded = problems.loc[problems["category"] == "degraded", "problem_id"]
    first_wrong, true_share, first_visit = [], [], []
    for pid in degraded:
        rows = visits[visits["problem_id"] == pid].sort_values("visit")
        wrong = rows[~rows["label_correct"].astype(bool)]
        if wrong.empty:  # only the final vote was wrong, no training visit's label
            continue
        first_wrong.append(int(wrong["visit"].iloc[0]))
        true_share.append(float(wrong["true_share"].iloc[0]))
        first_visit.append(first_wrong[-1] == int(rows["visit"].iloc[0]))
    nan = float("nan")
    mean = lambda xs: float(np.mean(xs)) if xs else nan  # noqa: E731
    return {TIMING_KEY: first_wrong,
            "degraded_first_wrong_median": float(np.median(first_wrong)) if first_wrong else nan,
            "degraded_true_share_at_first_wrong": mean(true_share),
            "degraded_wrong_on_first_visit": mean(first_visit),
            "degraded_truth_below_mps": mean([x < mps_min_share for x in true_share])}


def guard_activity(metrics_path: Path) -> dict[str, float]:
    """How often each guard rule acted over a run, and its mean flip rate per pass, from its metrics log."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    frs = [r["guard/frs_weight"] for r in rows if "guard/frs_weight" in r]
    flips = [r for r in rows if "flip_rate" in r]
    by_pass = pd.DataFrame(flips).groupby("epoch")["flip_rate"].mean() if flips else pd.Series(dtype=float)
    return {"mps_fired": float(sum(r.get("guard/mps_fired", 0) for r in rows)),
            "rcsu_skipped": float(sum(r.get("guard/rcsu_skipped", 0) for r in rows)),
            "frs_weight_mean": float(np.mean(frs)) if frs else float("nan"),
            "flip_rate_by_pass": by_pass.tolist()}


def labels_changed(run: dict, plain: dict) -> float:
    """Share of visits whose majority label differs from the plain TTRL run of the same seed (both
    summaries' `labels_by_visit`, in (step, problem) order). Every step's samples are drawn from the
    same seeded generators in both runs, so a rule that leaves the policy (almost) unchanged leaves
    the labels unchanged: this measures how far the rule moved training, free of sampling noise."""
    a, b = run.get(EXTRAS_KEY), plain.get(EXTRAS_KEY)
    if a is None or b is None or len(a) != len(b) or not a:
        return float("nan")
    return float(np.mean([x != y for x, y in zip(a, b)]))


# --- figures ----------------------------------------------------------------------------------

def _by_pass(rows: list[dict]) -> np.ndarray:
    """[seeds, passes - 1]: flip rate per pass from the second (the first has nothing to flip from)."""
    later = [r.get("flip_rate_by_pass", [])[1:] for r in rows]
    width = min((len(x) for x in later), default=0)
    return np.array([x[:width] for x in later], dtype=float).reshape(len(later), width)


def plot_flip_rates(summaries: dict[str, dict[int, dict]], path: Path) -> Path:
    """Mean flip rate per pass (from the second: the first has nothing to flip from) of each variant,
    averaged over seeds."""
    from tetrad.core.plots import new_figure, save_figure

    fig, ax = new_figure()
    for variant, by_seed in summaries.items():
        later = _by_pass(list(by_seed.values()))
        if later.size:
            ax.plot(range(2, later.shape[1] + 2), later.mean(0), marker=".", label=variant)
    ax.set(xlabel="pass over the test set", ylabel="flip rate (mean over seeds)", title="majority-label flip rate")
    if ax.lines:  # a single-pass run has no flip rates to draw
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_dynamics(summaries: dict[str, dict[int, dict]], path: Path) -> Path:
    """Left: each variant's flip rate per pass, its mean over seeds and the band from the lowest to
    the highest seed. Right: every problem's extinction window (steps from the last visit the true
    answer held the vote to its disappearance), pooled over seeds, one column of points per variant,
    with the mean number of problems whose true answer died out per run."""
    from tetrad.core.plots import new_figure, save_figure

    fig, (left, right) = new_figure(width=10.0, height=3.8, ncols=2)
    rng = np.random.default_rng(0)  # horizontal jitter only
    for i, (variant, by_seed) in enumerate(summaries.items()):
        rows = list(by_seed.values())
        later = _by_pass(rows)
        if later.size:
            x = np.arange(2, later.shape[1] + 2)
            line, = left.plot(x, later.mean(0), marker=".", label=variant)
            left.fill_between(x, later.min(0), later.max(0), color=line.get_color(), alpha=0.15)
        windows = [w for r in rows for w in r.get("extinction_windows", [])]
        if windows:
            right.scatter(i + rng.uniform(-0.2, 0.2, len(windows)), windows, s=8, alpha=0.5)
            right.plot([i - 0.3, i + 0.3], [np.median(windows)] * 2, color="black")
    left.set(xlabel="pass over the test set", ylabel="flip rate", title="flip rate per pass (mean, seed range)")
    if left.lines:
        left.legend(fontsize=7)
    counts = [np.mean([len(r.get("extinction_windows", [])) for r in by_seed.values()])
              for by_seed in summaries.values()]
    right.set_xticks(range(len(summaries)), [f"{v}\n{c:.1f} extinct/run" for v, c in zip(summaries, counts)],
                     fontsize=7)
    right.set(ylabel="extinction window (steps)", title="extinction windows (line: median)")
    return save_figure(fig, path)


# --- the report -------------------------------------------------------------------------------

def _values(by_seed: dict[int, dict], key: str) -> list[float]:
    return [float(by_seed[s][key]) for s in sorted(by_seed)
            if by_seed[s].get(key) is not None and not math.isnan(float(by_seed[s][key]))]


def _interval(values: list[float], fmt: str, sign: str = "") -> str:
    """`mean [low, high]`: the 95% t interval over seeds (`paired_t_interval` of the values, the
    one-sample interval of their mean); the mean alone for one seed."""
    if not values:
        return "–"
    mean, half = paired_t_interval(values)
    f = fmt.replace("{:", "{:" + sign)
    if math.isnan(half):
        return f.format(mean)
    return f"{f.format(mean)} [{f.format(mean - half)}, {f.format(mean + half)}]"


def _stat(values: list[float], fmt: str) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} ± {fmt.format(np.std(values))}"


def paired_differences(summaries: dict[str, dict[int, dict]], variant: str, key: str) -> list[float]:
    """`variant` minus plain TTRL at `key`, seed by seed (the seeds both have, in order)."""
    ref, runs = summaries.get("ttrl", {}), summaries[variant]
    return [float(runs[s][key]) - float(ref[s][key]) for s in sorted(runs)
            if s in ref and runs[s].get(key) is not None and ref[s].get(key) is not None
            and not math.isnan(float(runs[s][key]) - float(ref[s][key]))]


def render(cfg: CompareConfig, summaries: dict[str, dict[int, dict]], command: str, seconds: float = 0.0) -> str:
    k = cfg.run.eval_samples
    runs = [r for by_seed in summaries.values() for r in by_seed.values()]
    total = sum(r.get("seconds", 0.0) for r in runs)
    main = [(f"pass@1 (mean@{k})", "pass@1", "{:.3f}"), (f"maj@{k}", f"maj@{k}", "{:.3f}"),
            ("degraded", "n_degraded", "{:.1f}"), ("learned", "n_learned", "{:.1f}"),
            ("stable right", "n_stable_right", "{:.1f}"), ("always wrong", "n_always_wrong", "{:.1f}")]
    lines = [f"Made by `{command}` ({len(cfg.seeds)} seeds: {cfg.seeds}; {len(runs)} runs, {total / 60:.0f} min of "
             f"training in all, {seconds / 60:.1f} min of it by this command, the rest reused from "
             f"`{cfg.results_dir}`). Categories are anchored to the base policy's vote (docs/ttrl.md).", "",
             "Mean over seeds [95% t interval over seeds]:", "",
             "| variant | " + " | ".join(h for h, _, _ in main) + " |", "| --- |" + " ---: |" * len(main)]
    first = next(iter(summaries.values()))
    base = {"pass@1": _interval(_values(first, "base_pass@1"), "{:.3f}"),
            f"maj@{k}": _interval(_values(first, f"base_maj@{k}"), "{:.3f}")}
    lines.append("| base (step 0) | " + " | ".join(base.get(key, "–") for _, key, _ in main) + " |")
    for v, by_seed in summaries.items():
        lines.append(f"| {v} | " + " | ".join(_interval(_values(by_seed, key), fmt) for _, key, fmt in main) + " |")
    if "ttrl" in summaries and len(summaries) > 1:
        effect = main[:4]
        lines += ["", "The guard's effect: variant minus plain TTRL, paired by seed, mean [95% paired t interval "
                  "over seeds] (`paired_t_interval`; an interval that excludes 0 is an effect beyond seed noise):", "",
                  "| variant | seeds | " + " | ".join(f"Δ {h}" for h, _, _ in effect) + " | labels ≠ TTRL's |",
                  "| --- | ---: |" + " ---: |" * (len(effect) + 1)]
        for v in summaries:
            if v == "ttrl":
                continue
            changed = [labels_changed(summaries[v][s], summaries["ttrl"][s]) for s in sorted(summaries[v])
                       if s in summaries["ttrl"]]
            cells = [_interval(paired_differences(summaries, v, key), fmt, "+") for _, key, fmt in effect]
            cells.append(_stat([c for c in changed if not math.isnan(c)], "{:.3f}"))
            lines.append(f"| {v} | {len(changed)} | " + " | ".join(cells) + " |")
    dynamics = [("base votes confidently wrong", "base_confident_wrong", "{:.3f}"),
                ("label acc. (last epoch)", "label_accuracy_last_epoch", "{:.3f}"),
                ("flip-rate peak", "flip_rate_peak", "{:.3f}"), ("flip rate at end", "flip_rate_last", "{:.3f}"),
                ("extinct problems", "extinct_problems", "{:.1f}"),
                ("median extinction window", "extinction_window_median", "{:.1f}"),
                ("degraded: first wrong visit (median)", "degraded_first_wrong_median", "{:.1f}"),
                ("degraded: wrong on first visit", "degraded_wrong_on_first_visit", "{:.2f}"),
                ("degraded: true share then", "degraded_true_share_at_first_wrong", "{:.3f}"),
                ("degraded: truth below MPS's minimum", "degraded_truth_below_mps", "{:.2f}"),
                ("stop rule's step", "stop_step", "{:.0f}"), ("pass@1 at its pick", "stop_pass@1", "{:.3f}"),
                ("best pass@1 (hindsight)", "best_pass@1", "{:.3f}"),
                ("MPS firings", "mps_fired", "{:.1f}"), ("RCSU skips", "rcsu_skipped", "{:.1f}"),
                ("mean FRS weight", "frs_weight_mean", "{:.3f}"), ("seconds/run", "seconds", "{:.0f}")]
    lines += ["", f"Dynamics and guard activity (mean ± standard deviation over seeds; a confidently wrong base "
              f"vote is wrong with a majority ratio above tau_mr = {cfg.run.guard.tau_mr}):", "",
              "| variant | " + " | ".join(h for h, _, _ in dynamics) + " |", "| --- |" + " ---: |" * len(dynamics)]
    for v, by_seed in summaries.items():
        lines.append(f"| {v} | " + " | ".join(_stat(_values(by_seed, key), fmt) for _, key, fmt in dynamics) + " |")
    return "\n".join([*lines, "", *findings(summaries), ""])


def findings(summaries: dict[str, dict[int, dict]]) -> list[str]:
    """Plain statements computed from the numbers (the paper's claims, checked)."""
    out = []

    def mean(v: str, key: str) -> float:
        vals = _values(summaries.get(v, {}), key)
        return float(np.mean(vals)) if vals else float("nan")

    if "ttrl" in summaries:
        learned, degraded = mean("ttrl", "n_learned"), mean("ttrl", "n_degraded")
        peak_step, steps, n = mean("ttrl", "flip_rate_peak_step"), mean("ttrl", "steps"), mean("ttrl", "problems")
        out.append(f"- Plain TTRL, degraded vs learned problems: {degraded:.1f} vs {learned:.1f} of {n:.0f} "
                   f"({degraded / n:.1%} vs {learned / n:.1%}; the paper: 21.6% vs 0.7%) — "
                   + ("degraded outnumber learned, the direction of the paper's pattern." if degraded > learned else
                      "the paper's pattern (degraded >> learned) does not reproduce here."))
        later = _by_pass(list(summaries["ttrl"].values()))
        by_pass = ", ".join(f"{x:.2f}" for x in later.mean(0)) if later.size else "–"
        out.append(f"- Plain TTRL flip rate peaks at {mean('ttrl', 'flip_rate_peak'):.3f} at step {peak_step:.0f} of "
                   f"{steps:.0f} and ends at {mean('ttrl', 'flip_rate_last'):.3f}; mean per pass (from the second): "
                   f"{by_pass}.")
        out.append(f"- pass@1: base {mean('ttrl', 'base_pass@1'):.3f} -> TTRL {mean('ttrl', 'pass@1'):.3f}.")
    for v in ("ttrl", "ttrl_guard"):
        visits = [w for r in summaries.get(v, {}).values() for w in r.get(TIMING_KEY, [])]
        if visits:
            out.append(f"- When {v}'s degraded problems went wrong ({len(visits)} over its seeds): the first wrong "
                       f"label came at visit {np.median(visits):.0f} (median), on the problem's first visit in "
                       f"{mean(v, 'degraded_wrong_on_first_visit'):.0%} of them (where the guard is the identity), "
                       f"with the true answer in {mean(v, 'degraded_true_share_at_first_wrong'):.1%} of the samples "
                       f"(mean); in {mean(v, 'degraded_truth_below_mps'):.0%} it had fewer votes than MPS needs to "
                       "promote it. The flip that signals a problem is the visit that makes it wrong, so the guard's "
                       "first chance to act comes after the damage.")
    for v in summaries:
        if v == "ttrl" or "ttrl" not in summaries:
            continue
        diffs = paired_differences(summaries, v, "pass@1")
        if not diffs:
            continue
        m, half = paired_t_interval(diffs)
        dd = paired_differences(summaries, v, "n_degraded")
        verdict = ("one seed: no interval" if math.isnan(half) else
                   ("raises" if m > 0 else "lowers") + " pass@1 beyond seed noise (the 95% interval excludes 0)"
                   if abs(m) > half else "no effect on pass@1 distinguishable from seed noise")
        out.append(f"- {v} vs TTRL, same seeds: pass@1 {', '.join(f'{d:+.3f}' for d in diffs)} "
                   f"(mean {m:+.3f}), degraded problems {np.mean(dd) if dd else float('nan'):+.1f}; {verdict}.")
    return out
