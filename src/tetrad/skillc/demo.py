"""The SkillC part of `tetrad demo`: a small shop policy behaviour-cloned with skills always in
its prompt (exact-match features on), its skills gap on validation goals, and a few SkillC
updates from it: how the paired rollouts and the curriculum move. Minutes on 2 cores, so the
policy and the run are far smaller than `configs/skillc/` (docs/results/skillc.md has those)."""

from __future__ import annotations

import json

from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig, Section


def demo_part(run: RunDir, cfg: DemoConfig) -> Section:
    from tetrad.agents.bc import BCConfig, train_bc
    from tetrad.skillc.recipe import SkillCConfig, train

    root = str(run.path)
    train_bc(BCConfig(root=root, name="skillc-base", env="shop", seed=cfg.seed, n_games=200, n_products=600,
                      match_features=True, hidden=64, layers=1, heads=4, steps=150, batch_size=8, lr=3e-3,
                      eval_every=150, eval_examples=64, checkpoint_every=150, log_every=50))
    skillc = SkillCConfig(root=root, name="skillc", seed=cfg.seed, base_policy=f"{root}/agents/skillc-base",
                          n_products=600, n_train=200, n_val=12, n_test=12, max_steps=10, steps=4, tasks_per_step=2,
                          group_size=4, lr=3e-4, checkpoint_every=4, curriculum={"validate_every": 2, "patience": 1})
    summary = train(skillc)
    metrics = [json.loads(line) for line in (run.path / "skillc" / "skillc" / "metrics.jsonl").read_text().splitlines()]
    vals = [m for m in metrics if "val/skills_on_score" in m]
    first, last = vals[0], vals[-1]  # before any update, after the last
    test = summary["test"]["test"]
    numbers = {
        "base_val_score_skills_on": first["val/skills_on_score"],
        "base_val_score_skills_off": first["val/skills_off_score"],
        "final_val_score_skills_on": last["val/skills_on_score"],
        "final_val_score_skills_off": last["val/skills_off_score"],
        "test_score_skills_off": test["skills_off"]["score"], "test_success_skills_off": test["skills_off"]["success"],
        "active_skill_types_start": float(len(summary["curriculum"]["active"]) + len(summary["curriculum"]["pruned"])),
        "active_skill_types_end": last["active_skills"],
        "seconds_per_update": summary["cost"]["step_seconds"],
        "skill_rollout_share": summary["cost"]["skill_rollout_share"],
    }
    pruned = summary["curriculum"]["pruned"]
    body = (f"A 1 x 64 shop policy behaviour-cloned for 150 steps with skills always in its prompt scores "
            f"{numbers['base_val_score_skills_on']:.2f} with skills and {numbers['base_val_score_skills_off']:.2f} "
            f"without on 12 validation goals (a skills gap of "
            f"{numbers['base_val_score_skills_on'] - numbers['base_val_score_skills_off']:+.2f}). Four SkillC updates "
            f"(2 goals x 4 paired rollouts each) move it to {numbers['final_val_score_skills_on']:.2f} / "
            f"{numbers['final_val_score_skills_off']:.2f}; the curriculum, validating every 2 updates, went from "
            f"{int(numbers['active_skill_types_start'])} to {int(numbers['active_skill_types_end'])} active skill "
            f"types (pruned: {', '.join(pruned) or 'none'}). Skill-injected rollouts took "
            f"{numbers['skill_rollout_share']:.0%} of rollout time. The full comparison: docs/results/skillc.md.")
    plots = [str(p.relative_to(run.path)) for p in sorted((run.path / "skillc" / "skillc" / "plots").glob("*.png"))]
    return Section("SkillC (shop, tiny)", body, numbers, plots)
