import random

import pytest

from tetrad.agents.environments import KINDS, environment
from tetrad.core.errors import UserError


def test_each_kind_knows_its_prompt_rewards_limits_and_free_text_command():
    alfworld, shop = environment("alfworld"), environment("shop")
    assert set(KINDS) == {"alfworld", "shop"} and environment(shop) is shop
    assert (alfworld.step_limit(50), shop.step_limit(50), shop.step_limit(10)) == (50, 15, 10)
    assert alfworld.episode_reward(True, 1.0, 2, 0.1) == pytest.approx(9.8)  # 10 x won - penalties
    assert shop.episode_reward(False, 0.5, 1, 0.1) == pytest.approx(0.4)  # the score - penalties
    assert (alfworld.headline, shop.headline) == ("success", "score")
    info = {"admissible_commands": ["search[<query>]"], "instruction": "i need red shoes"}
    assert shop.candidates(info) == ["search[i need red shoes]"]
    assert shop.as_candidate("search[red running shoes]", info) == "search[i need red shoes]"
    assert alfworld.candidates({"admissible_commands": ["look"], "instruction": "x"}) == ["look"]
    query = shop.random_action(info, random.Random(0))
    assert query.startswith("search[") and set(query[7:-1].split()) <= set(info["instruction"].split())
    assert "pick_two_obj_and_place" in alfworld.task_types() and "grocery" in shop.task_types()
    with pytest.raises(UserError, match="unknown environment 'webshop'"):
        environment("webshop")


def test_task_sets_refuse_the_other_environments_data():
    with pytest.raises(UserError, match="games= names ALFWorld game folders"):
        environment("shop").tasks("train", 4, games="some/folder")
    with pytest.raises(UserError, match="catalogue= is the shop's"):
        environment("alfworld").tasks("train", 4, catalogue="catalogue.json")
    with pytest.raises(UserError, match="ALFWorld needs a game folder for split 'valid'"):
        environment("alfworld").tasks("valid", 4)
    shop = environment("shop").tasks("valid_seen", 6, n_products=120, max_steps=40)
    assert len(shop) == 6 and set(shop.types) <= set(environment("shop").task_types())
    env = shop.make_env()
    assert env.max_steps == 15 and env.goals[0].category == shop.types[0]  # ALFWorld's split name maps to valid
