"""`tetrad skillc compare`: every method and ablation from the same base policy, same seeds and
budget, into `docs/results/skillc.md`.

Runs land in `runs/skillc/<prefix>-<variant>-s<seed>`. Each finished run's summary is also written,
with the settings it was made with, to `<results_dir>/<prefix>-<variant>-s<seed>.json`; a later
compare (in another session, on another machine) reuses those files and the finished runs and
trains only what is missing, and refuses a file or run made with other settings. The tables are
made from the files alone.

Methods are compared with SkillC seed by seed (runs of one seed start from the same base policy
and draw the same training games), as paired differences with a 95% t interval over seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from tetrad.agents.environments import environment
from tetrad.core.config import Config, Seed
from tetrad.core.errors import UserError
from tetrad.core.io import write_marked_block
from tetrad.core.bootstrap import paired_t_interval
from tetrad.core.rundir import committed_summary
from tetrad.skillc.recipe import SkillCConfig, train

VARIANTS: dict[str, dict] = {
    "skillc": {"method": "skillc"},
    "grpo": {"method": "grpo"},
    "grpo_skills": {"method": "grpo_skills"},
    "skill0": {"method": "skill0"},
    "d2skill": {"method": "d2skill"},
    "no_pairing": {"method": "skillc", "pairing": False},
    "no_pruning": {"method": "skillc", "pruning": False},
    "fixed_share": {"method": "skillc", "allocation": "fixed"},
    "fixed_gate": {"method": "skillc", "normalisation": "fixed_gate"},
    "skillc_extra": {"method": "skillc", "pairing_budget": "extra"},
}


class CompareConfig(Config):
    run: SkillCConfig = SkillCConfig()
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    variants: Annotated[list[str], Field(min_length=1)] = list(VARIANTS)
    prefix: str = "compare"
    results_dir: str = "docs/results/skillc"
    output: str = "docs/results/skillc.md"
    block: str = "skillc-compare"


def variant_config(cfg: CompareConfig, variant: str, seed: int) -> SkillCConfig:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}' (known: {', '.join(VARIANTS)})")
    data = {**cfg.run.model_dump(), **VARIANTS[variant], "seed": seed, "name": f"{cfg.prefix}-{variant}-s{seed}",
            "resume": False}
    return SkillCConfig.model_validate(data)


def report(summaries: dict[str, dict[int, dict]], command: str, seconds: float) -> str:
    """The results block: per test split, skill-free success and score per method (mean over
    seeds), the paired difference from SkillC with 95% CIs, skill-free success per task type, and
    the cost per update."""
    first = next(iter(next(iter(summaries.values())).values()))
    key = environment(first["env"]).headline
    runs = [r for by_seed in summaries.values() for r in by_seed.values()]
    total = sum((r["cost"]["step_seconds"] + r["cost"].get("validation_seconds_per_update", 0.0)) * r["steps"]
                for r in runs)
    lines = [f"Command: `{command}`. {len(runs)} runs; their updates and validations took {total / 60:.0f} min "
             f"in all (this command trained {seconds / 60:.1f} min of it, reusing the rest).", ""]
    splits = list(first["test"])
    if len(splits) > 1:  # one more table over every test game: half the standard error of two splits
        summaries = {v: {s: {**r, "test": {**r["test"], POOLED: _pooled(r["test"])}} for s, r in by_seed.items()}
                     for v, by_seed in summaries.items()}
        splits.append(POOLED)
    for split in splits:
        heading = ("All test splits pooled (each run's rate over every test game)" if split == POOLED
                   else f"Test split `{split}`")
        lines += [f"### {heading} ({first['env']})", "",
                  "| method | seeds | success, no skills | score, no skills | success, skills | "
                  "no-skills success - SkillC [95% CI] | no-skills score - SkillC [95% CI] |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        ref = summaries.get("skillc", {})
        for variant, by_seed in summaries.items():
            seeds = sorted(by_seed)
            off = [by_seed[s]["test"][split]["skills_off"] for s in seeds]
            on = [by_seed[s]["test"][split]["skills_on"] for s in seeds]
            cells = []
            for metric in ("success", "score"):
                paired = [by_seed[s]["test"][split]["skills_off"][metric] - ref[s]["test"][split]["skills_off"][metric]
                          for s in seeds if s in ref]
                if variant == "skillc" or not paired:
                    cells.append("")
                elif len(paired) == 1:  # a t interval needs two seeds
                    cells.append(f"{paired[0]:+.3f} (one seed)")
                else:
                    mean, half = paired_t_interval(paired)
                    cells.append(f"{mean:+.3f} [{mean - half:+.3f}, {mean + half:+.3f}]")
            lines.append(f"| {variant} | {len(seeds)} | {_mean(o['success'] for o in off):.3f} | "
                         f"{_mean(o['score'] for o in off):.3f} | {_mean(o['success'] for o in on):.3f} | "
                         f"{cells[0]} | {cells[1]} |")
        seeds = sorted({s for by_seed in summaries.values() for s in by_seed})
        lines += ["", f"Skill-free {key} per seed (with skills in brackets):", "",
                  "| method | " + " | ".join(f"seed {s}" for s in seeds) + " |", "| --- |" + " ---: |" * len(seeds)]
        for variant, by_seed in summaries.items():
            tests = {s: by_seed[s]["test"][split] for s in by_seed}
            cells = [f"{tests[s]['skills_off'][key]:.3f} ({tests[s]['skills_on'][key]:.3f})" if s in tests else ""
                     for s in seeds]
            lines.append(f"| {variant} | " + " | ".join(cells) + " |")
        types = sorted({t for by_seed in summaries.values() for s in by_seed.values()
                        for t in s["test"][split]["skills_off"][f"{key}_per_type"]})
        lines += ["", f"Skill-free {key} per task type (mean over seeds):", "",
                  "| method | " + " | ".join(types) + " |", "| --- |" + " ---: |" * len(types)]
        for variant, by_seed in summaries.items():
            cells = [_mean(s["test"][split]["skills_off"][f"{key}_per_type"].get(t, float("nan"))
                           for s in by_seed.values()) for t in types]
            lines.append(f"| {variant} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
        lines.append("")
    lines += ["### Cost per update (seconds, mean over updates and seeds)", "",
              "`vs grpo`: the update's time over plain GRPO's in the same seed (what pairing and the longer "
              "skill prompts cost at the same budget of rollouts).", "",
              "| method | update total | vs grpo | rollout | of which env | of which model | policy step | "
              "validation | share of rollout time on skill-injected rollouts |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    grpo = summaries.get("grpo", {})
    for variant, by_seed in summaries.items():
        c = {k: _mean(s["cost"].get(k, float("nan")) for s in by_seed.values())
             for k in next(iter(by_seed.values()))["cost"]}
        ratios = [by_seed[s]["cost"]["step_seconds"] / grpo[s]["cost"]["step_seconds"] for s in by_seed if s in grpo]
        lines.append(f"| {variant} | {c['step_seconds']:.1f} | {_mean(ratios):.2f} | {c['rollout_seconds']:.1f} | "
                     f"{c['env_seconds']:.1f} | {c['model_seconds']:.1f} | {c['update_seconds']:.1f} | "
                     f"{c.get('validation_seconds_per_update', float('nan')):.1f} | {c['skill_rollout_share']:.2f} |")
    return "\n".join(lines) + "\n"


POOLED = "pooled"


def _pooled(test: dict[str, dict]) -> dict:
    """One run's test conditions over all its splits: every rate weighted by the split's episodes."""
    out = {}
    for cond in ("skills_off", "skills_on"):
        parts = [split[cond] for split in test.values()]
        weights = [p.get("episodes", 1) for p in parts]
        rate = lambda values: sum(w * v for w, v in zip(weights, values)) / sum(weights)
        out[cond] = {m: rate([p[m] for p in parts]) for m in ("success", "score")}
        for m in ("success_per_type", "score_per_type"):
            types = sorted({t for p in parts for t in p[m]})
            out[cond][m] = {t: sum(w * p[m][t] for w, p in zip(weights, parts) if t in p[m])
                            / sum(w for w, p in zip(weights, parts) if t in p[m]) for t in types}
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else float("nan")


def compare(cfg: CompareConfig, command: str) -> Path:
    import time

    if not cfg.seeds or not cfg.variants:
        raise UserError("compare needs at least one seed and one variant")
    configs = {v: {s: variant_config(cfg, v, s) for s in cfg.seeds} for v in cfg.variants}
    results_dir = Path(cfg.results_dir)
    start = time.perf_counter()
    summaries = {v: {s: committed_summary("skillc", c, results_dir, train) for s, c in by_seed.items()}
                 for v, by_seed in configs.items()}
    text = report(summaries, command, time.perf_counter() - start)
    return write_marked_block(cfg.output, cfg.block, text, title="# SkillC results")
