from pathlib import Path

import pytest

from tetrad.core.config import load_config
from tetrad.skillc.compare import VARIANTS, CompareConfig, variant_config
from tetrad.skillc.recipe import SkillCConfig

CONFIGS = Path(__file__).parents[2] / "configs" / "skillc"


@pytest.mark.parametrize("path", sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("compare")),
                         ids=lambda p: p.stem)
def test_every_shipped_config_loads(path):
    cfg = load_config(SkillCConfig, path)
    assert cfg.name


def test_method_configs_differ_from_skillc_only_in_their_own_keys():
    base = load_config(SkillCConfig, CONFIGS / "skillc.yaml").model_dump()
    assert base == SkillCConfig(name="skillc").model_dump()  # skillc.yaml writes the defaults out
    for variant, keys in VARIANTS.items():
        cfg = load_config(SkillCConfig, CONFIGS / f"{variant}.yaml").model_dump()
        assert {k for k in cfg if cfg[k] != base[k]} <= {"name", *keys}


def test_compare_derives_each_run_from_one_config_and_seed():
    cfg = load_config(CompareConfig, CONFIGS / "compare.yaml")
    run = variant_config(cfg, "no_pairing", 2)
    assert run.name == "shop-no_pairing-s2" and run.seed == 2 and run.pairing is False and run.method == "skillc"
    assert variant_config(cfg, "skill0", 0).method == "skill0"
    alfworld = load_config(CompareConfig, CONFIGS / "compare_alfworld.yaml")
    run = variant_config(alfworld, "grpo", 1)
    assert run.name == "alfworld-grpo-s1" and run.env == "alfworld" and set(run.test_games) == {"valid_seen",
                                                                                               "valid_unseen"}
    assert alfworld.block != cfg.block and set(alfworld.variants) == set(VARIANTS)
