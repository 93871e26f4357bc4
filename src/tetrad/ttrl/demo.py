"""The TTRL part of `tetrad demo`: the quick config end to end — the cached tiny base policy (trained
on first use), base evaluation, plain TTRL and TTRL-Guard on the same seed.

The config is `tetrad/ttrl/quick.yaml`, package data read through `importlib.resources`, so the
demo runs the same from a checkout and from an installed wheel (configs/ttrl/quick.yaml links to it).
"""

from __future__ import annotations

from importlib import resources

from tetrad.core.config import load_config
from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig, Section
from tetrad.ttrl.recipe import TTRLConfig, run_ttrl


def quick_config(overrides: list[str]) -> TTRLConfig:
    """The packaged quick config with `overrides` applied."""
    with resources.as_file(resources.files("tetrad.ttrl") / "quick.yaml") as path:
        return load_config(TTRLConfig, path, overrides)


def demo_part(run: RunDir, cfg: DemoConfig) -> Section:
    overrides = [f"seed={cfg.seed}", f"root={run.path}", f"pretrain.root={cfg.root}"]
    plain_cfg = quick_config(overrides + ["name=ttrl"])
    plain = run_ttrl(plain_cfg)
    guarded = run_ttrl(quick_config(overrides + ["name=ttrl_guard", "guard.frs=true", "guard.mps=true",
                                                 "guard.rcsu=true"]))
    k = plain_cfg.eval_samples
    numbers = {"base_pass@1": plain["base_pass@1"], "ttrl_pass@1": plain["pass@1"], "guard_pass@1": guarded["pass@1"],
               f"base_maj@{k}": plain[f"base_maj@{k}"], f"ttrl_maj@{k}": plain[f"maj@{k}"],
               f"guard_maj@{k}": guarded[f"maj@{k}"], "ttrl_learned": plain["n_learned"],
               "ttrl_degraded": plain["n_degraded"], "guard_learned": guarded["n_learned"],
               "guard_degraded": guarded["n_degraded"], "ttrl_flip_rate_peak": plain.get("flip_rate_peak", float("nan")),
               "base_share_above_50": plain["share_above_50"], "base_share_10_to_50": plain["share_10_to_50"],
               "base_share_below_10": plain["share_below_10"]}
    body = (f"A tiny Llama trained from scratch on reasoning-gym chain sums (cached under {cfg.root}/ttrl/), then "
            f"test-time RL on {plain['problems']} unlabeled test problems for {plain['steps']} steps. Base per-problem "
            f"accuracy: {plain['share_above_50']:.0%} of problems above 50%, {plain['share_10_to_50']:.0%} between 10% "
            f"and 50%, {plain['share_below_10']:.0%} below 10%. pass@1 base {plain['base_pass@1']:.3f} -> TTRL "
            f"{plain['pass@1']:.3f} / TTRL-Guard {guarded['pass@1']:.3f}; problems learned vs degraded: TTRL "
            f"{plain['n_learned']} vs {plain['n_degraded']}, guard {guarded['n_learned']} vs {guarded['n_degraded']}. "
            f"One seed: see docs/results/ttrl.md for the 3-seed comparison.")
    plots = [str(p.relative_to(run.path)) for p in sorted((run.path / "ttrl" / "ttrl" / "plots").glob("*.png"))]
    return Section("TTRL and TTRL-Guard (quick)", body, numbers, plots)
