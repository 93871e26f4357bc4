import json

import pytest

from tetrad.demo import run_demo


@pytest.mark.slow
def test_skillc_demo_part_shows_the_skills_gap_and_the_curriculum(tmp_path):
    run = run_demo([f"root={tmp_path}", "name=t", "parts=[skillc]"])
    numbers = json.loads((run.path / "summary.json").read_text())["SkillC (shop, tiny)"]
    # the base policy cloned with skills always does clearly worse without them
    assert numbers["base_val_score_skills_on"] - numbers["base_val_score_skills_off"] > 0.2
    assert numbers["active_skill_types_end"] <= numbers["active_skill_types_start"]
    assert 0 < numbers["skill_rollout_share"] < 1
    report = (run.path / "report.md").read_text()
    assert "skillc/skillc/plots/curriculum.png" in report and "skillc/skillc/plots/learning_curves.png" in report
