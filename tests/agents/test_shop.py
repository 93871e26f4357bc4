import dataclasses

import pytest

from tetrad.agents.shop import (CATEGORIES, Goal, ShopEnv, WebShopAdapter, goal_split, load_catalogue,
                                make_catalogue, make_goals, save_catalogue, shop_reward)
from tetrad.core.errors import UserError


@pytest.fixture(scope="module")
def products():
    return make_catalogue(2000, seed=0)


@pytest.fixture(scope="module")
def env(products):
    return ShopEnv(products, split="test", n_goals=60, expert=True)


def test_catalogue_is_seeded_varied_and_round_trips(products, tmp_path):
    assert products == make_catalogue(2000, seed=0) and products != make_catalogue(2000, seed=1)
    assert len({p.asin for p in products}) == 2000
    assert {p.category for p in products} == set(CATEGORIES)
    assert all(p.product_type.lower() in p.title.lower() and p.options for p in products)
    save_catalogue(products[:5], tmp_path / "c.json")
    assert load_catalogue(tmp_path / "c.json") == products[:5]
    (tmp_path / "bad.json").write_text('[{"asin": 1}]')
    with pytest.raises(UserError, match="malformed shop catalogue"):
        load_catalogue(tmp_path / "bad.json")
    for text, message in (("[]", "holds no products"), ('{"products": []}', "a JSON list of products"),
                          ("[1, 2", "not JSON")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(UserError, match=message):
            load_catalogue(tmp_path / "bad.json")


def test_goal_splits_are_disjoint_by_target(products):
    train = {g.asin for g in make_goals(products, "train", 300)}
    test = {g.asin for g in make_goals(products, "test", 300)}
    assert train and test and not train & test
    assert all(goal_split(a) == "test" for a in test)
    with pytest.raises(UserError, match="unknown shop split"):
        make_goals(products, "dev", 1)


def test_reward_follows_webshop(products):
    p = products[0]
    options = [vals[0] for vals in p.options.values()]
    goal = Goal(p.asin, p.category, p.product_type, p.attributes[:2], options, p.price + 1, "x")
    n = len(goal.attributes) + len(goal.options) + 1
    assert shop_reward(p, options, goal)["reward"] == 1.0
    assert shop_reward(p, options[1:], goal)["reward"] == pytest.approx((n - 1) / n)  # one option missed
    cheap = dataclasses.replace(goal, price_upper=p.price - 1)
    assert shop_reward(p, options, cheap)["reward"] == pytest.approx((n - 1) / n)  # over the price bound
    other = next(q for q in products if q.category != p.category
                 and not set(p.product_type.split()) & set(q.title.lower().split()))
    assert shop_reward(other, options, goal)["r_type"] == 0.0 and shop_reward(other, options, goal)["reward"] == 0.0


def test_page_flow_search_and_invalid_actions(env):
    obs, info = env.reset(game=0)
    assert obs.endswith("[SEP] Search") and info["admissible_commands"] == ["search[<query>]"]
    obs2, reward, done, info = env.step("click[buy now]")  # nothing to click on the search page
    assert obs2 == obs and not info["valid"] and reward == 0.0 and not done
    goal = env.goal
    obs, _, _, info = env.step(f"search[{goal.product_type}]")
    assert info["valid"] and "Page 1" in obs and "click[next >]" in info["admissible_commands"]
    first = env.page.results[0]
    assert goal.product_type in first.product_type  # BM25 ranks products of the searched type first
    obs, _, _, info = env.step(f"click[{first.asin.lower()}]")
    assert first.title in obs and "click[buy now]" in info["admissible_commands"]
    obs, _, _, info = env.step("click[description]")
    assert first.description in obs
    env.step("click[< prev]")
    _, reward, done, info = env.step("click[buy now]")
    assert done and 0.0 <= reward <= 1.0 and info["score"] == reward


def test_expert_succeeds(env):
    won = 0
    for g in range(len(env.goals)):
        _, info = env.reset(game=g)
        done = False
        while not done:
            _, reward, done, info = env.step(info["expert_action"])
        won += info["won"]
    assert won == len(env.goals)


def test_step_limit_ends_the_episode(products):
    env = ShopEnv(products, split="valid", n_goals=5, max_steps=2)
    env.reset(game=0)
    env.step("search[shoes]")
    _, reward, done, info = env.step("click[next >]")
    assert done and reward == 0.0 and not info["won"]


class FakeWebShop:
    """A stand-in for WebShop's WebAgentTextEnv (which cannot be installed here)."""

    instruction_text = "i need red shoes"

    def reset(self, session=None):
        self.clicked = False
        return "WebShop [SEP] Search", None

    def get_available_actions(self):
        return {"has_search_bar": not self.clicked, "clickables": [] if not self.clicked else ["Buy Now"]}

    def step(self, action):
        if action.startswith("search["):
            self.clicked = True
            return "Item [SEP] Buy Now", 0.0, False, None
        return "Thank you", 1.0, True, None


def test_webshop_adapter_speaks_the_shop_api():
    env = WebShopAdapter(FakeWebShop())
    obs, info = env.reset(game=3)
    assert info["admissible_commands"] == ["search[<query>]"] and info["instruction"] == "i need red shoes"
    _, _, done, info = env.step("search[red shoes]")
    assert not done and info["admissible_commands"] == ["click[buy now]"]
    _, reward, done, info = env.step("click[buy now]")
    assert done and reward == 1.0 and info["won"]


def test_exported_expert_searches_as_the_scoring_policy_can_and_still_wins(products):
    from tetrad.agents.shop import Shop
    from tetrad.agents.shop import run_expert

    env = ShopEnv(products, split="train", n_goals=20, expert=True)
    trajectories = [run_expert(env, g) for g in range(20)]
    assert all(t["won"] and t["score"] == 1.0 for t in trajectories)
    for t in trajectories:
        assert t["steps"][0]["action"] == f"search[{t['instruction']}]"  # not the expert's own query
        assert all(s["action"] in Shop().candidates({**s, "instruction": t["instruction"]}) for s in t["steps"])
        assert t["steps"][-1]["action"] == "click[buy now]" and t["n_steps"] == len(t["steps"])
    with pytest.raises(ValueError, match="expert=True"):
        run_expert(ShopEnv(products, split="train", n_goals=2), 0)
