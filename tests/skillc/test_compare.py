import json

import pytest

from tetrad.core.errors import UserError
from tetrad.core.rundir import LOCATION_KEYS
from tetrad.skillc.compare import CompareConfig, compare, variant_config


def fake_summary(success: float, score: float) -> dict:
    cond = lambda s, c: {"success": s, "score": c, "success_per_type": {"home": s, "shoes": s},
                         "score_per_type": {"home": c, "shoes": c}}
    test = {"test": {"skills_on": cond(1.0, 1.0), "skills_off": cond(success, score)}}
    return {"env": "shop", "steps": 20, "test": test,
            "cost": {k: 1.0 for k in ("step_seconds", "rollout_seconds", "update_seconds", "env_seconds",
                                      "model_seconds")} | {"skill_rollout_share": 0.3}}


def test_compare_makes_its_tables_from_committed_summaries_and_refuses_other_settings(tmp_path):
    cfg = CompareConfig(seeds=[0, 1, 2], variants=["skillc", "grpo"], prefix="t", results_dir=str(tmp_path / "r"),
                        output=str(tmp_path / "skillc.md"), run={"root": str(tmp_path / "runs")})
    (tmp_path / "r").mkdir()
    for variant, base in (("skillc", 0.5), ("grpo", 0.3)):
        for seed in cfg.seeds:
            run = variant_config(cfg, variant, seed)
            s = fake_summary(base + 0.01 * seed, base)
            settings = {k: v for k, v in run.model_dump(mode="json").items() if k not in LOCATION_KEYS}
            (tmp_path / "r" / f"{run.name}.json").write_text(json.dumps({"settings": settings, "summary": s}))
    path = compare(cfg, "tetrad skillc compare (test)")  # nothing to train: every run is on file
    text = path.read_text()
    assert "tetrad skillc compare (test)" in text and "6 runs; their updates and validations took 2 min" in text
    grpo_row = next(line for line in text.splitlines() if line.startswith("| grpo |"))
    assert "| 3 | 0.310 | 0.300 | 1.000 | -0.200 [-0.200, -0.200] |" in grpo_row
    # with one seed the difference is reported without an interval
    one = compare(cfg.model_copy(update={"seeds": [2]}), "one seed").read_text()
    row = next(line for line in one.splitlines() if line.startswith("| grpo |"))
    assert "| -0.200 (one seed) |" in row and "nan" not in row
    # a file made with other settings is refused, not reported under these
    other = cfg.model_copy(update={"run": cfg.run.model_copy(update={"lr": 1.0})})
    with pytest.raises(UserError, match="other settings"):
        compare(other, "x")


def test_two_test_splits_get_a_pooled_table_weighted_by_episodes():
    from tetrad.skillc.compare import report

    def run(seen: float, unseen: float) -> dict:
        s = fake_summary(seen, seen)
        s["env"] = "alfworld"
        s["test"] = {"valid_seen": s["test"]["test"], "valid_unseen": fake_summary(unseen, unseen)["test"]["test"]}
        s["test"]["valid_seen"]["skills_off"]["episodes"] = 24
        s["test"]["valid_unseen"]["skills_off"]["episodes"] = 8
        return s

    summaries = {"skillc": {0: run(0.5, 0.25), 1: run(0.5, 0.25)}, "grpo": {0: run(0.25, 0.25), 1: run(0.0, 0.25)}}
    text = report(summaries, "c", 0.0)
    pooled = text[text.index("### All test splits pooled"):]
    skillc_row = next(line for line in pooled.splitlines() if line.startswith("| skillc |"))
    assert "| 2 | 0.438 |" in skillc_row  # (24 * 0.5 + 8 * 0.25) / 32
    grpo_row = next(line for line in pooled.splitlines() if line.startswith("| grpo |"))
    # pooled grpo: 0.25 and 0.0625; paired with skillc's 0.4375: -0.1875 and -0.375
    assert "-0.281 [" in grpo_row
    assert "### Test split `valid_seen`" in text and "### Test split `valid_unseen`" in text
