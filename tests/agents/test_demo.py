import pytest

from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig


@pytest.mark.slow
def test_demo_part(tmp_path):
    from tetrad.agents.demo import demo_part

    cfg = DemoConfig(root=str(tmp_path), name="d")
    section = demo_part(RunDir("demo", cfg, tensorboard=False), cfg)
    n = section.numbers
    assert n["shop_expert_success"] == 1.0 and n["shop_random_score"] < n["shop_expert_score"]
    assert n["alfworld_expert_success_skills_off"] >= 5 / 6
    assert n["alfworld_random_success"] < n["alfworld_expert_success_skills_off"]
