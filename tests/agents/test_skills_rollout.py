import functools

import pytest

from tetrad.agents.alfworld_env import AlfworldEnv
from tetrad.agents.alfworld_games import TASK_TYPES
from tetrad.agents.pool import EnvPool
from tetrad.agents.alfworld_env import take_grounded
from tetrad.agents.environments import environment
from tetrad.agents.rollout import (Episode, ExpertPolicy, LocalEnvs, RandomPolicy, Turn, parse_action, prompt_sections,
                                   rollout, summarize)
from tetrad.agents.shop import option_grounded, shop_notes
from tetrad.agents.shop import CATEGORIES, ShopEnv, make_catalogue
from tetrad.agents.skills import SkillLibrary
from tetrad.core.errors import UserError


@pytest.fixture(scope="module")
def library():
    return SkillLibrary.load()


def test_builtin_library_covers_every_task_type_and_category(library):
    assert set(library.task_sets("alfworld")) == set(TASK_TYPES)
    assert set(library.task_sets("shop")) == set(CATEGORIES)
    text = library.render("alfworld", "pick_heat_then_place_in_recep")
    assert "Heat with the microwave" in text and "Clean at the sink basin" not in text  # heat set, not clean
    assert "Act only with listed actions" in text  # the general set comes along
    assert "Heat with the microwave" not in library.render("alfworld", "pick_heat_then_place_in_recep",
                                             active={"general", "alfworld-general"})  # withdrawn


def test_object_sets_come_with_the_object_the_task_names(library):
    text = library.render("alfworld", "pick_and_place_simple", instruction="put some alarmclock on desk")
    where = "Where to find alarmclock: Look for alarmclock in or on: coffeetable, countertop, desk"
    assert where in text and "Where to find apple" not in text
    assert text.index("Search likely places first") < text.index(where) < text.index("Find, take, carry, place")
    assert "Where to find" not in library.render("alfworld", "pick_and_place_simple")  # no instruction, no object


def test_shipped_object_sets_are_the_generators_placements():
    import yaml

    from tetrad.agents.alfworld_games import where_objects_are_skills
    from tetrad.agents.skills import BUILTIN

    shipped = yaml.safe_load((BUILTIN / "alfworld" / "where_objects_are.yaml").read_text())
    assert shipped == where_objects_are_skills(), "regenerate where_objects_are.yaml from where_objects_are_skills()"
    mug = next(s for s in shipped if s["task_object"] == "mug")["skills"][0]["principle"]
    assert "cabinet" in mug and "toilet" not in mug


def test_skill_files_are_validated(tmp_path):
    (tmp_path / "a.yaml").write_text("name: x\nenvironment: alfworld\nskills:\n  - title: t\n    principle: p\n")
    with pytest.raises(UserError, match=r"a.yaml: field 'skills.0.when_to_apply' is required"):
        SkillLibrary.load(tmp_path)
    (tmp_path / "a.yaml").write_text("name: x\nenvironment: alfworld\ntask_type: juggle\nskills:\n"
                                     "  - {title: t, principle: p, when_to_apply: w}\n")
    with pytest.raises(UserError, match="unknown task type 'juggle'"):
        SkillLibrary.load(tmp_path)
    (tmp_path / "a.yaml").write_text("name: x\nenvironment: mars\nskills: []\n")
    with pytest.raises(UserError, match="environment"):
        SkillLibrary.load(tmp_path)
    (tmp_path / "a.yaml").write_text("- name: x\n  environment: alfworld\n  task_object: mug\n  skills:\n"
                                     "  - {title: t, principle: p, when_to_apply: w}\n- 3\n")
    with pytest.raises(UserError, match="a mapping or a list of mappings"):
        SkillLibrary.load(tmp_path)
    (tmp_path / "a.yaml").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no skill files"):
        SkillLibrary.load(tmp_path / "empty")


def test_prompt_has_skill_slot_history_window_and_actions(library):
    history = [(f"obs {i}", f"act {i}") for i in range(5)]
    ctx = library.render("alfworld", "pick_and_place_simple")
    alfworld = environment("alfworld")
    with_skills = alfworld.build_prompt("put a mug in shelf", "now", history, ["look", "go to shelf 1"], ctx, 2)
    without = alfworld.build_prompt("put a mug in shelf", "now", history, ["look", "go to shelf 1"], "", 2)
    assert ctx in with_skills and "Skills" not in without
    assert with_skills.index("put a mug in shelf") < with_skills.index(ctx) < with_skills.index("Prior to this step")
    assert "obs 3" in without and "obs 4" in without and "obs 2" not in without  # a window of two
    assert "taken 5 step(s)" in without and "step 6" in without and "'go to shelf 1'" in without
    assert without.replace(ctx + "\n", "") == without and with_skills.replace(ctx + "\n", "") == without
    # ALFWorld's prompt also lists every action taken so far, inside the history part the match
    # features read; the shop's does not (docs/results/agents.md: with it, the shop policy no
    # longer needs its skills)
    assert "All actions you took so far: act 0; act 1; act 2; act 3; act 4\n" in without
    assert "act 0" in prompt_sections(without)["history"]
    assert "act 0" not in environment("shop").build_prompt("find shoes", "now", history, ["search[<query>]"])


def test_action_parsing_and_admissibility():
    assert parse_action("<think>x</think><action> Go to  shelf 1 </action>") == "go to shelf 1"
    assert parse_action("<action>look</action> then <action>inventory</action>") == "inventory"
    assert parse_action("go to shelf 1") is None and parse_action("<action> </action>") is None
    alfworld, shop = environment("alfworld"), environment("shop")
    assert alfworld.is_admissible("look", ["look"]) and not alfworld.is_admissible("jump", ["look"])
    assert not alfworld.is_admissible(None, ["look"])
    assert shop.is_admissible("search[red shoes]", ["search[<query>]"])
    assert not shop.is_admissible("search[ ]", ["search[<query>]"])
    assert not alfworld.is_admissible("search[red shoes]", ["search[<query>]"])  # ALFWorld has no free-text command


class Scripted:
    """Answers from a fixed list: an unparsable reply, then an inadmissible action, then the expert's."""

    def __init__(self):
        self.calls = 0

    def act(self, prompts, infos):
        self.calls += 1
        if self.calls == 1:
            return ["I will look around." for _ in infos]
        if self.calls == 2:
            return ["<action>dance</action>" for _ in infos]
        return ExpertPolicy().act(prompts, infos)


def test_invalid_actions_cost_the_penalty_and_the_episode_continues(alfworld_games):
    _, folders, _ = alfworld_games
    envs = LocalEnvs([AlfworldEnv(folders, max_steps=150, expert=True)])
    [ep] = rollout(envs, Scripted(), [{"game": 0, "seed": 0}], "alfworld", max_steps=150)
    assert [t.valid for t in ep.turns[:3]] == [False, False, True]
    assert ep.turns[1].observation == "Nothing happens."
    assert ep.won and ep.n_invalid == 2 and ep.reward == pytest.approx(10 - 0.2)


def test_expert_rollout_over_the_pool_solves_every_type(alfworld_games, library):
    _, folders, _ = alfworld_games
    tasks = [{"game": i, "seed": 0} for i in range(len(folders))]
    flags = [i % 2 == 0 for i in range(len(folders))]  # half the types with skills, half without
    with EnvPool(functools.partial(AlfworldEnv, folders, max_steps=150, expert=True), n_envs=4, n_workers=2) as pool:
        eps = rollout(pool, ExpertPolicy(), tasks, "alfworld", flags, library, max_steps=150)
    summary = summarize(eps)
    for label in ("skills_on", "skills_off"):
        assert summary[label]["success"] == 1.0 and summary[label]["invalid_rate"] == 0.0
        assert summary[label]["env_seconds_per_step"] > 0 and summary[label]["model_seconds_per_step"] >= 0
    assert set(summary["skills_on"]["success_per_type"]) | set(summary["skills_off"]["success_per_type"]) == set(TASK_TYPES)
    turns = [t for e in eps if e.skills for t in e.turns]
    share = summary["skills_on"]["action_share"]
    assert share["go"] == pytest.approx(sum(t.action.startswith("go to ") for t in turns) / len(turns))
    assert sum(share.values()) == pytest.approx(1.0) and "take" in share
    on = [e for e in eps if e.skills]
    assert all("Skills that help" in t.prompt for e in on for t in e.turns)
    assert all("Skills that help" not in t.prompt for e in eps if not e.skills for t in e.turns)
    assert all(e.reward == 10.0 for e in eps)
    assert summary["skills_on"]["take_grounded"] == 1.0  # the expert takes only what its task names


def test_take_grounded_counts_takes_of_the_tasks_object():
    def turn(action):
        return Turn(prompt="", response="", action=action, valid=action is not None, observation="", reward=0.0,
                    env_seconds=0.0, model_seconds=0.0)

    ep = Episode("alfworld", 0, 0, "pick_and_place_simple", "put a pen in drawer", False,
                 [turn("take pencil 1 from desk 1"), turn("take pen 2 from desk 1"), turn("go to desk 1"), turn(None)])
    assert take_grounded([ep]) == 0.5
    assert take_grounded([Episode("alfworld", 0, 0, "x", "put a pen in drawer", False, [turn("look")])]) is None
    assert summarize([ep])["skills_off"]["take_grounded"] == 0.5


def test_shop_notes_name_the_products_within_the_price_limit():
    head = "WebShop [SEP] Instruction: [SEP] i need black sandals, and price lower than 28.00 dollars"
    results = (f"{head} [SEP] Back to Search [SEP] Page 1 (Total results: 3) [SEP] B0AAA [SEP] Sandals [SEP] $81.48 "
               "[SEP] B0BBB [SEP] Black Sandals [SEP] $16.14 [SEP] B0CCC [SEP] Sandals [SEP] $28.00")
    assert shop_notes(results) == "price limit 28.00 dollars; within it on this page: b0bbb, b0ccc"
    assert shop_notes(f"{head} [SEP] Search") == "price limit 28.00 dollars"
    assert shop_notes(results.replace("$16.14", "$30.00").replace("$28.00", "$28.01")).endswith("on this page: none")
    assert shop_notes("WebShop [SEP] Instruction: [SEP] i need sandals [SEP] Search") == "no price limit"
    prompt = environment("shop").build_prompt("i need black sandals", results, [("page", "search[x]")],
                                              ["click[b0bbb]"])
    # inside the history part, where the match features mark the ids the notes name
    assert "Your notes: price limit 28.00 dollars; within it on this page: b0bbb, b0ccc\n" in prompt
    assert "b0bbb" in prompt_sections(prompt)["history"]


def test_option_grounded_counts_option_clicks_the_instruction_names():
    def turn(action):
        return Turn(prompt="", response="", action=action, valid=True, observation="", reward=0.0,
                    env_seconds=0.0, model_seconds=0.0)

    task = "i need protein bars with vanilla, pack of 12, and price lower than 128.00 dollars"
    # "pack of 1" is not "pack of 12", and the shoe size "8" is not in the price; products and
    # page controls are not option clicks
    actions = ["click[vanilla]", "click[pack of 12]", "click[pack of 1]", "click[8]", "click[b0abcdefgh]",
               "click[buy now]", "search[protein bars]", None]
    ep = Episode("shop", 0, 0, "grocery", task, True, [turn(a) for a in actions])
    assert option_grounded([ep]) == 0.5
    # "large" is not named by an instruction that asks for "x-large"
    sized = Episode("shop", 0, 0, "fashion", "i need a hoodie with x-large, black, and price lower than 9.00 dollars",
                    True, [turn("click[large]"), turn("click[x-large]"), turn("click[black]")])
    assert option_grounded([sized]) == pytest.approx(2 / 3)
    summary = summarize([ep])["skills_on"]
    assert summary["option_grounded"] == 0.5 and "take_grounded" not in summary
    assert option_grounded([Episode("shop", 0, 0, "grocery", task, True, [turn("click[buy now]")])]) is None


def test_shop_rollouts_expert_beats_random():
    products = make_catalogue(600, seed=0)
    envs = LocalEnvs([ShopEnv(products, split="valid", n_goals=20, expert=True) for _ in range(2)])
    tasks = [{"game": g} for g in range(20)]
    expert = summarize(rollout(envs, ExpertPolicy(), tasks, "shop", max_steps=15))["skills_off"]
    random_eps = rollout(envs, RandomPolicy("shop", 0), tasks, "shop")
    rand = summarize(random_eps)["skills_off"]
    assert expert["success"] == 1.0 and expert["score"] == 1.0
    assert rand["score"] < expert["score"] and rand["success"] < 0.5
    assert expert["option_grounded"] == 1.0  # it clicks exactly the options the goal names
    assert expert["bought"] == 1.0 and expert["score_parts"] == {"r_type": 1.0, "r_att": 1.0, "r_option": 1.0,
                                                                 "r_price": 1.0}
    bought = [e for e in random_eps if e.score_parts]
    assert rand["bought"] == len(bought) / len(random_eps) < 1.0  # most random episodes run out of steps
    mean_option = sum(e.score_parts["r_option"] for e in bought) / len(bought)
    assert rand["score_parts"]["r_option"] == pytest.approx(mean_option)
    assert set(expert["score_per_type"]) <= set(CATEGORIES) and set(expert["score_per_type"].values()) == {1.0}
    by_category = {c: [e.score for e in random_eps if e.task_type == c] for c in rand["score_per_type"]}
    assert rand["score_per_type"] == {c: pytest.approx(sum(s) / len(s)) for c, s in by_category.items()}
