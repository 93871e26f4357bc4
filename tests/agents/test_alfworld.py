import json
import random

import pytest

from tetrad.agents.alfworld_env import (AlfworldEnv, find_games,
                                        memoize_textworld_parsing, run_expert)
from tetrad.agents.alfworld_games import (SPLITS, TASK_TYPES, game_files, is_unseen_combination, make_games,
                                          sample_game, split_seed)
from tetrad.cli import main
from tetrad.core.errors import UserError


def test_generator_is_seeded_and_deterministic(tmp_path):
    a = make_games(tmp_path / "a", 6, split="valid_seen", seed=3, verify_steps=0)
    b = make_games(tmp_path / "b", 6, split="valid_seen", seed=3, verify_steps=0)
    c = make_games(tmp_path / "c", 6, split="valid_seen", seed=4, verify_steps=0)
    read = lambda fs: [(f / "game.tw-pddl").read_text() + (f / "traj_data.json").read_text() for f in fs]
    assert read(a) == read(b)
    assert read(a) != read(c)


def test_games_cover_all_task_types_with_well_formed_files(alfworld_games):
    _, folders, _ = alfworld_games
    trajs = [json.loads((f / "traj_data.json").read_text()) for f in folders]
    assert sorted(t["task_type"] for t in trajs) == sorted(TASK_TYPES)
    for f, t in zip(folders, trajs):
        game = json.loads((f / "game.tw-pddl").read_text())
        assert set(game) >= {"pddl_domain", "grammar", "pddl_problem", "solvable"}
        assert "UNKNOWN GOAL" not in game["grammar"] and t["instruction"] in game["grammar"]
        assert "(:domain alfred)" in game["pddl_problem"] and "|" not in game["pddl_problem"]
        p = t["pddl_params"]
        assert p["object_sliced"] is False
        look = t["task_type"] == "look_at_obj_in_light"
        assert bool(p["toggle_target"]) == look and bool(p["parent_target"]) != look


def test_valid_unseen_pairs_are_never_drawn_for_train():
    def combos(split, n):
        rng = random.Random(split_seed(0, split))
        out = set()
        for i in range(n):
            s = sample_game(rng, TASK_TYPES[i % 6], split)
            out.add((s.task_type, s.object_target, s.parent_target or s.toggle_target))
        return out

    train, unseen = combos("train", 120), combos("valid_unseen", 60)
    assert train and unseen and not train & unseen
    assert all(is_unseen_combination(*c) for c in unseen)
    assert not any(is_unseen_combination(*c) for c in train)


def test_split_seed_streams_differ():
    assert len({split_seed(0, s) for s in SPLITS}) == 3


def test_handcoded_expert_solves_a_game_of_every_type(alfworld_games):
    _, folders, stats = alfworld_games
    env = AlfworldEnv(folders, max_steps=150, expert=True)
    solved = {}
    for i in range(len(folders)):
        traj = run_expert(env, i, seed=1000 + i)  # another seed than the generator's check used
        solved[traj["task_type"]] = traj["won"]
        for step in traj["steps"]:
            assert step["action"] in step["admissible_commands"]
    assert solved == {t: True for t in TASK_TYPES}
    # the generator's check rejected no sample of the five single-object types for this seed
    assert all(stats.get(t, 0) == 0 for t in TASK_TYPES if t != "pick_two_obj_and_place")


def test_env_api_and_real_engine_semantics(alfworld_games):
    _, folders, _ = alfworld_games
    env = AlfworldEnv(folders, max_steps=3)
    obs, info = env.reset(game=0)
    assert obs.startswith("-= Welcome to TextWorld, ALFRED! =-") and "Your task is to:" in obs
    assert info["task_type"] in TASK_TYPES and info["won"] is False
    assert "look" in info["admissible_commands"] and any(c.startswith("go to ") for c in info["admissible_commands"])
    obs, reward, done, info = env.step("fly to the moon")  # not a command: nothing happens, episode goes on
    assert obs == "Nothing happens." and reward == 0.0 and not done
    go = next(c for c in info["admissible_commands"] if c.startswith("go to "))
    obs, _, done, info = env.step(go)
    assert obs.startswith("You arrive at") and not done
    _, _, done, _ = env.step("look")
    assert done and env.steps == 3  # the step limit ends the episode


def test_episodes_keep_their_own_expert_randomness(alfworld_games):
    _, folders, _ = alfworld_games
    env = AlfworldEnv(folders, max_steps=150, expert=True)
    random.seed(123)
    outside = random.getstate()
    a = run_expert(env, 5, seed=7)
    assert random.getstate() == outside  # the episode did not touch the caller's generator
    random.random()  # and the caller's draws do not change a replay
    b = run_expert(env, 5, seed=7)
    assert [s["action"] for s in a["steps"]] == [s["action"] for s in b["steps"]]


def test_memoized_textworld_plays_exactly_as_textworld_does(alfworld_games, monkeypatch):
    import fast_downward
    import textworld.envs.pddl.textgen as textgen
    import textworld.logic as logic

    import tetrad.agents.alfworld_env as alfworld_env

    _, folders, _ = alfworld_games
    memoize_textworld_parsing()
    memoize_textworld_parsing()  # idempotent: one cache layer
    patched = {(textgen, "_parse_and_convert"), (logic, "_parse_and_convert"), (fast_downward, "pddl2sas")}
    cached = {(m, n): getattr(m, n) for m, n in patched}
    assert all(f.memoized and not getattr(f.original, "memoized", False) for f in cached.values())
    first = textgen._parse_and_convert("#look.feedback#", rule_name="symbols")
    assert first is not textgen._parse_and_convert("#look.feedback#", rule_name="symbols")  # each call its copy
    fast = run_expert(AlfworldEnv(folders[:1], max_steps=30, expert=True), 0, seed=3)
    monkeypatch.setattr(alfworld_env, "memoize_textworld_parsing", lambda: None)  # stay as installed
    for (m, n), f in cached.items():
        monkeypatch.setattr(m, n, f.original)
    slow = run_expert(AlfworldEnv(folders[:1], max_steps=30, expert=True), 0, seed=3)
    assert textgen._parse_and_convert is cached[(textgen, "_parse_and_convert")].original
    assert fast == slow and len(fast["steps"]) > 3


def test_expert_trajectories_command_writes_the_won_episodes(alfworld_games, tmp_path, capsys):
    root, folders, _ = alfworld_games
    out = tmp_path / "expert.jsonl"
    with pytest.raises(SystemExit) as exit_:
        main(["agents", "expert-trajectories", "--games", str(root), "--out", str(out), "--max-steps", "150"])
    assert exit_.value.code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len(folders) and all(t["won"] for t in lines)  # the generator kept only games it wins
    assert f"expert won {len(folders)}/{len(folders)} games" in capsys.readouterr().out
    assert all(set(s) == {"observation", "admissible_commands", "action"} for t in lines for s in t["steps"])


def test_malformed_game_folders_are_user_errors(tmp_path, alfworld_games):
    _, folders, _ = alfworld_games
    with pytest.raises(UserError, match="no ALFWorld games"):
        find_games(tmp_path)
    with pytest.raises(UserError, match="not found"):
        find_games(tmp_path / "missing")
    bad = tmp_path / "bad" / "g"
    bad.mkdir(parents=True)
    (bad / "traj_data.json").write_text(json.dumps({"task_type": "pick_and_place_simple", "pddl_params": {}}))
    with pytest.raises(UserError, match="without game.tw-pddl"):
        find_games(tmp_path / "bad")
    (bad / "traj_data.json").write_text(json.dumps({"task_type": "fly", "pddl_params": {}}))
    with pytest.raises(UserError, match="unknown task type 'fly'"):
        find_games(tmp_path / "bad")
    (bad / "traj_data.json").write_text((folders[0] / "traj_data.json").read_text())
    (bad / "game.tw-pddl").write_text(json.dumps({"pddl_domain": "", "grammar": "", "pddl_problem": "(define"}))
    with pytest.raises(UserError, match="cannot load"):
        AlfworldEnv(tmp_path / "bad").reset(0)
    with pytest.raises(UserError, match="unknown task type"):
        make_games(tmp_path / "x", 1, task_types=["juggle"])
    with pytest.raises(UserError, match="unknown split"):
        make_games(tmp_path / "x", 1, split="test")


def test_game_files_fill_the_instruction_template():
    spec = sample_game(random.Random(0), "pick_heat_then_place_in_recep", "train")
    game, traj = game_files(spec, "x")
    assert spec.object_target.lower() in traj["instruction"]
    goal = " ".join(game["pddl_problem"].split("(:goal", 1)[1].split())
    for clause in ("(heatable ?o)", f"(objectType ?o {spec.object_target}Type)",
                   f"(receptacleType ?r {spec.parent_target}Type)", "(isHot ?o)", "(inReceptacle ?o ?r)"):
        assert clause in goal, clause


def test_an_expert_that_gives_up_leaves_the_action_taken_once(alfworld_games):
    _, folders, _ = alfworld_games
    env = AlfworldEnv(folders, max_steps=50, expert=True)
    for game in range(len(folders)):
        obs, info = env.reset(game=game, seed=0)
        closed = None
        for go in [c for c in info["admissible_commands"] if c.startswith("go to ")]:
            obs, _, _, info = env.step(go)
            if "is closed" in obs:
                closed = go.removeprefix("go to ")
                break
        if closed:
            break
    assert closed, "no game with a closed receptacle"
    # the expert wrapper raises on its next action (as when a policy leads it past its plan)
    expert = env._env._handcoded_expert.policy
    expert.max_steps = expert.steps
    obs, reward, done, info = env.step(f"open {closed}")
    assert obs.startswith(f"You open the {closed}")  # taken once: a second "open" would be "Nothing happens."
    assert info["expert_action"] is None and reward == 0.0 and not done
    obs, _, _, info = env.step(f"close {closed}")  # the episode goes on without the expert
    assert obs == f"You close the {closed}." and info["expert_action"] is None
