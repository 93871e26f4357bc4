import functools
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tetrad.agents.alfworld_env import AlfworldEnv, read_traj, run_expert
from tetrad.agents.bc import BCConfig, train_bc
from tetrad.agents.bc_data import bc_examples, encode_examples, expert_episodes, load_trajectories, split_episodes
from tetrad.agents.bc_model import action_accuracy, action_logprobs, bc_model_dir, read_policy_file
from tetrad.agents.dagger import ExpertLabelled
from tetrad.agents.environments import TaskSet, environment
from tetrad.agents.evaluate import EvalConfig, evaluate, make_policy
from tetrad.agents.llm_policy import ActionScoringPolicy, action_response
from tetrad.agents.handoff import scored_turns
from tetrad.agents.rollout import LocalEnvs, RandomPolicy, parse_action, rollout
from tetrad.agents.skills import SkillLibrary
from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.core.seeding import seed_everything
from tetrad.llm.logprobs import token_logprobs
from tetrad.llm.models import ModelSpec, load_policy, tiny_llama
from tetrad.llm.tokenizers import word_tokenizer

ADMISSIBLE = ["go to countertop 1", "go to countertop 2", "take mug 1 from countertop 1", "look", "inventory"]


@pytest.fixture(scope="module")
def scorer():
    seed_everything(0)
    prompt = environment("alfworld").build_prompt("put a mug in cabinet", "You see a mug 1.", [], ADMISSIBLE)
    tok = word_tokenizer([prompt] + [action_response(a) for a in ADMISSIBLE])
    return ActionScoringPolicy(tiny_llama(tok, 32, 2, 2, 1024), tok), prompt


def test_scoring_decoder_returns_an_admissible_action_with_the_engine_log_probs(scorer):
    policy, prompt = scorer
    info = {"admissible_commands": ADMISSIBLE}
    [response] = policy.act([prompt], [info])
    assert parse_action(response) in ADMISSIBLE
    scores = policy.last_scores[0]
    assert response == action_response(ADMISSIBLE[max(range(len(scores)), key=scores.__getitem__)])  # greedy
    # the chosen response's token log-probs are what tetrad.llm computes for the same tokens
    p = torch.tensor([policy.encode_prompt(prompt)])
    r = torch.tensor([policy.encode_response(response)])
    reference = token_logprobs(policy.model, p, torch.ones_like(p), r, torch.ones_like(r))[0]
    assert torch.allclose(torch.tensor(policy.last_token_logprobs[0]), reference, atol=1e-5)
    # the shared prompt cache gives the same scores whatever the candidate batch
    policy.candidate_batch = 2
    in_pairs = policy.score(prompt, ADMISSIBLE)
    policy.candidate_batch = 16
    assert torch.allclose(torch.tensor([sum(t) for t in in_pairs]), torch.tensor(scores), atol=1e-5)


def test_sampling_from_the_scores_follows_their_softmax(scorer):
    policy, prompt = scorer
    sampler = ActionScoringPolicy(policy.model, policy.tokenizer, temperature=2.0, seed=1)
    [response] = sampler.act([prompt], [{"admissible_commands": ADMISSIBLE}])
    assert parse_action(response) in ADMISSIBLE
    scores = [-1.0, -2.0, -3.0, -1.5]
    picks = [sampler._choose(scores) for _ in range(4000)]
    probs = torch.softmax(torch.tensor(scores) / 2.0, 0)
    freq = torch.tensor([picks.count(i) / len(picks) for i in range(4)])
    assert (freq - probs).abs().max() < 0.03


def test_mean_action_score_is_the_length_normalised_log_likelihood(scorer):
    policy, prompt = scorer
    mean = ActionScoringPolicy(policy.model, policy.tokenizer, action_score="mean")
    [response] = mean.act([prompt], [{"admissible_commands": ADMISSIBLE}])
    token_logps = policy.score(prompt, ADMISSIBLE)
    assert mean.last_scores[0] == pytest.approx([sum(t) / len(t) for t in token_logps])
    best = max(range(len(ADMISSIBLE)), key=mean.last_scores[0].__getitem__)
    assert response == action_response(ADMISSIBLE[best])
    with pytest.raises(UserError, match="action_score must be 'sum' or 'mean'"):
        ActionScoringPolicy(policy.model, policy.tokenizer, action_score="max")


@pytest.fixture(scope="module")
def expert_jsonl(alfworld_games, tmp_path_factory):
    _, folders, _ = alfworld_games
    out = tmp_path_factory.mktemp("bc") / "expert.jsonl"
    tasks = TaskSet(functools.partial(AlfworldEnv, folders[:2], max_steps=50, expert=True),
                    [read_traj(f)["task_type"] for f in folders[:2]])
    expert_episodes("alfworld", tasks, out, seed=0)
    return folders, out


def test_examples_are_the_rollout_prompts_with_the_expert_action(expert_jsonl):
    _, path = expert_jsonl
    episodes = load_trajectories(path)
    library = SkillLibrary.load()
    with_skills = bc_examples(episodes, [True, False], library, history_length=2)
    ep = episodes[0]
    assert len(with_skills) == sum(len(e["steps"]) for e in episodes)
    second = ep["steps"][1]
    assert with_skills[1].prompt == environment("alfworld").build_prompt(ep["instruction"], second["observation"],
                                                 [(ep["steps"][0]["observation"], ep["steps"][0]["action"])],
                                                 second["admissible_commands"],
                                                 library.render("alfworld", ep["task_type"], instruction=ep["instruction"]))
    assert with_skills[1].response == f"<action>{second['action']}</action>"
    assert with_skills[1].candidates == second["admissible_commands"]
    assert "Skills that help" in with_skills[0].prompt and "Skills that help" not in with_skills[-1].prompt
    bad = [{**ep, "steps": [{**second, "action": "fly away"}]}]
    with pytest.raises(UserError, match="'fly away' .* not among its admissible commands"):
        bc_examples(bad, [False], library, history_length=2)


def test_action_loss_is_the_scoring_policys_log_likelihood_of_the_expert_action(expert_jsonl):
    _, path = expert_jsonl
    examples = bc_examples(load_trajectories(path), [True, False], SkillLibrary.load(), history_length=2)[:5]
    tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)])
    seed_everything(0)
    model = tiny_llama(tok, 32, 2, 2, 4096)
    encoded = encode_examples(examples, tok)
    # a batch of prompts of different lengths (left-padded) gives each example what the policy
    # computes for it alone: log softmax over its candidates' summed response log-probs
    logps, correct = action_logprobs(model, encoded, tok.pad_token_id)
    policy = ActionScoringPolicy(model, tok)
    for ex, e, lp, ok in zip(examples, encoded, logps, correct):
        scores = torch.tensor([sum(t) for t in policy.score(ex.prompt, ex.candidates)])
        assert torch.allclose(lp, torch.log_softmax(scores, 0)[e.target], atol=1e-4)
        assert bool(ok) == (int(scores.argmax()) == e.target)
    # gradient steps on the action loss raise the expert action's probability
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = -action_logprobs(model, encoded, tok.pad_token_id)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = action_accuracy(model, encoded, tok.pad_token_id, batch_size=2, by_verb=True)
    assert after["nll"] < float(-logps.detach().mean()) / 4 and after["accuracy"] >= 0.8
    by_verb = after["accuracy_by_verb"]
    verbs = [e.action.split()[0] for e in encoded]
    assert sum(by_verb[v] * verbs.count(v) for v in by_verb) / len(verbs) == pytest.approx(after["accuracy"])


def test_bc_encodes_prompts_as_the_scoring_policy_does_also_with_a_chat_template(expert_jsonl):
    _, path = expert_jsonl
    examples = bc_examples(load_trajectories(path), [True, False], SkillLibrary.load(), history_length=2)[:3]
    tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)] + ["user :"])
    tok.chat_template = "{% for m in messages %}<s> user : {{ m['content'] }}</s>{% endfor %}"
    policy = ActionScoringPolicy(tiny_llama(tok, 32, 1, 2, 4096), tok)
    for ex, enc in zip(examples, encode_examples(examples, tok)):
        assert enc.prompt == policy.encode_prompt(ex.prompt) and enc.prompt[0] == tok.bos_token_id
        assert enc.candidates == [policy.encode_response(action_response(c)) for c in ex.candidates]


def test_held_out_episodes_are_whole_seeded_and_never_all():
    episodes = list(range(10))
    train, held = split_episodes(episodes, 0.2, seed=3)
    assert len(held) == 2 and sorted(train + held) == episodes
    assert split_episodes(episodes, 0.2, seed=3) == (train, held)
    assert split_episodes(episodes, 0.0, seed=3) == (episodes, [])
    assert len(split_episodes([1, 2], 0.9, seed=0)[0]) == 1


def test_bc_recipe_trains_checkpoints_and_resumes_bit_exactly(expert_jsonl, tmp_path):
    _, path = expert_jsonl
    common = dict(root=str(tmp_path), trajectories=str(path), hidden=32, layers=1, heads=2, steps=4,
                  batch_size=2, checkpoint_every=2, log_every=1, eval_every=2, eval_examples=8, lr=3e-3)
    full = train_bc(BCConfig(name="full", **common))
    assert full["examples"] > 5 and full["episodes_with_skills"] == 2 and full["heldout_episodes"] == 1
    records = [json.loads(line) for line in (tmp_path / "agents/full/metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records]
    assert len(losses) == 4 and all(x == x for x in losses)
    assert [r["step"] for r in records if "heldout_action_accuracy" in r] == [2, 4]
    assert 0.0 <= full["heldout_action_accuracy"] <= 1.0 and full["train_action_nll"] > 0
    assert set(full["heldout_action_accuracy_by_verb"]) <= {"go", "take", "open", "close", "move", "use", "heat",
                                                             "cool", "clean", "look", "examine", "inventory"}
    # an interruption after step 2: the copy loses its step-4 checkpoint, model and summary
    shutil.copytree(tmp_path / "agents/full", tmp_path / "agents/cut")
    for stale in ("checkpoints/step_000000004.pt", "summary.json"):
        (tmp_path / "agents/cut" / stale).unlink()
    shutil.rmtree(tmp_path / "agents/cut/model")
    resumed = train_bc(BCConfig(name="cut", resume=True, **common))
    assert resumed["final_loss"] == full["final_loss"]
    a, _ = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(tmp_path / "agents/full"))))
    b, _ = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(tmp_path / "agents/cut"))))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(UserError, match="already holds a run"):
        train_bc(BCConfig(name="full", **common))


def test_trained_policy_plays_and_its_turns_carry_action_log_probs(expert_jsonl, tmp_path):
    folders, path = expert_jsonl
    train_bc(BCConfig(root=str(tmp_path), trajectories=str(path), hidden=32, layers=1, heads=2, steps=2,
                      batch_size=2, history_length=3))
    model_dir = bc_model_dir(tmp_path / "agents/bc")
    assert read_policy_file(model_dir) == {"env": "alfworld", "history_length": 3, "skills": "always"}
    policy = ActionScoringPolicy.load(ModelSpec(kind="hf", path=str(model_dir)))
    envs = LocalEnvs([AlfworldEnv(folders[:2], max_steps=3)])
    eps = rollout(envs, policy, [{"game": 0, "seed": 0}], "alfworld", True, SkillLibrary.load(), max_steps=3)
    assert len(eps[0].turns) == 3 and eps[0].n_invalid == 0  # every scored action is admissible
    batch = scored_turns(eps, torch.zeros(1), policy.tokenizer)
    assert batch.old_logprobs.tolist() == pytest.approx([t.action_logprob for t in eps[0].turns])
    # the evaluation prompts with the history window the policy trained with, unless told otherwise
    common = dict(root=str(tmp_path), policy="bc", bc_run=str(tmp_path / "agents/bc"), games=str(folders[0]),
                  skills="off", max_steps=4, n_envs=1, workers=0)
    summary = evaluate(EvalConfig(name="own-window", **common))
    assert summary["history_length"] == 3
    turns = [json.loads(line) for line in (tmp_path / "agents/own-window/episodes.jsonl").read_text().splitlines()][0]["turns"]
    assert "the most recent 3 observations" in turns[-1]["prompt"]
    assert evaluate(EvalConfig(name="set-window", history_length=1, **common))["history_length"] == 1
    assert make_policy(EvalConfig(**common)).action_score == "sum"
    assert make_policy(EvalConfig(action_score="mean", **common)).action_score == "mean"


def test_expert_labels_the_states_the_policy_reaches(alfworld_games):
    _, folders, _ = alfworld_games
    envs = LocalEnvs([AlfworldEnv(folders[:2], max_steps=50, expert=True)])
    library = SkillLibrary.load()
    # beta=1 executes every label: the episode is the expert's own, label for label
    labelled = ExpertLabelled(RandomPolicy("alfworld", 0), "alfworld", beta=1.0)
    [ep] = rollout(envs, labelled, [{"game": 0, "seed": 4}], "alfworld", False, library, max_steps=50)
    expert = run_expert(AlfworldEnv(folders[:2], max_steps=50, expert=True), 0, seed=4)
    assert ep.won and [ex.action for ex in labelled.examples] == [s["action"] for s in expert["steps"]]
    assert [ex.prompt for ex in labelled.examples] == [t.prompt for t in ep.turns]
    # beta=0: the random policy acts, the expert labels the states it leads to from its own memory
    labelled = ExpertLabelled(RandomPolicy("alfworld", 1), "alfworld", beta=0.0)
    [ep] = rollout(envs, labelled, [{"game": 1, "seed": 4}], "alfworld", False, library, max_steps=12)
    taken = [t.action for t in ep.turns]
    labels = [ex.action for ex in labelled.examples]
    assert len(labels) == 12 and taken != labels
    assert labelled.agreed == sum(a == b for a, b in zip(taken, labels))
    assert all(ex.action in ex.candidates for ex in labelled.examples)
    assert labels[0] == "look" and any(a.startswith("go to ") for a in labels[1:])


def test_dagger_rounds_add_labelled_policy_states_and_resume_bit_exactly(expert_jsonl, tmp_path):
    folders, path = expert_jsonl
    with pytest.raises(UserError, match="ALFWorld needs a game folder"):  # DAgger replays the expert's games
        train_bc(BCConfig(root=str(tmp_path), name="no-games", trajectories=str(path), steps=0, dagger_rounds=1,
                          dagger_steps=1, hidden=32, layers=1, heads=2, holdout=0.0))
    common = dict(root=str(tmp_path), trajectories=str(path), games=str(Path(folders[0]).parent), hidden=32, layers=1, heads=2, steps=2, batch_size=2,
                  checkpoint_every=2, log_every=1, eval_every=2, eval_examples=4, holdout=0.0, max_expert_steps=5,
                  dagger_rounds=2, dagger_games=2, dagger_steps=2, dagger_envs=2)
    full = train_bc(BCConfig(name="full", **common))
    assert full["steps"] == 6 and [d["round"] for d in full["dagger"]] == [0, 1]
    assert all(d["episodes"] == 2 and d["examples"] == 10 and 0 <= d["agreement"] <= 1 for d in full["dagger"])
    assert full["training_examples"] == full["examples"] + 20  # the expert's steps and both rounds' states
    records = [json.loads(line) for line in (tmp_path / "agents/full/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "dagger_success" in r] == [3, 5]  # trained on from the next step
    rounds = {r: json.loads((tmp_path / f"agents/full/dagger/round_{r}.json").read_text()) for r in (0, 1)}
    assert all(len(rounds[r]["examples"]) == 10 for r in rounds)
    # interrupted after step 4, before round 1's file was written: resuming re-plays it identically
    shutil.copytree(tmp_path / "agents/full", tmp_path / "agents/cut")
    for stale in ("checkpoints/step_000000006.pt", "summary.json", "dagger/round_1.json"):
        (tmp_path / "agents/cut" / stale).unlink()
    resumed = train_bc(BCConfig(name="cut", resume=True, **common))
    assert resumed["final_loss"] == full["final_loss"]
    assert json.loads((tmp_path / "agents/cut/dagger/round_1.json").read_text()) == rounds[1]
    # more rounds on top of a finished policy, which must keep its history window
    more = train_bc(BCConfig(name="more", init=str(tmp_path / "agents/full"), **{**common, "steps": 0, "dagger_rounds": 1}))
    assert more["steps"] == 2 and more["vocab_size"] == full["vocab_size"] and more["dagger"][0]["examples"] == 10
    with pytest.raises(UserError, match="trained with history_length=2, not 3"):
        train_bc(BCConfig(name="other", init=str(tmp_path / "agents/full"), history_length=3, **common))
    for bad in ("dagger_beta=2", "batch_size=0", "holdout=1", "steps=-5", "lr=0", "eval_every=0"):
        with pytest.raises(UserError, match=f"config key '{bad.split('=')[0]}'"):
            load_config(BCConfig, None, [bad])
    with pytest.raises(UserError, match="at least one step"):
        train_bc(BCConfig(name="none", **{**common, "steps": 0, "dagger_rounds": 0}))


@pytest.mark.parametrize("name", ["bc.yaml", "bc_smollm2.yaml", "bc_shop.yaml", "bc_shop_small.yaml"])
def test_shipped_bc_configs_load(name):
    cfg = load_config(BCConfig, Path(__file__).parents[2] / "configs/agents" / name, [])
    assert cfg.steps > 0 and (cfg.env == "shop") == ("shop" in name)


def test_bad_trajectory_files_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_trajectories(tmp_path / "none.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"task_type": "x"}\n')
    with pytest.raises(UserError, match="needs 'instruction'"):
        load_trajectories(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"task_type": "x", "instruction": "y", "steps": [{"observation": "o", '
                                        '"action": "look"}]}\n')
    with pytest.raises(UserError, match="step 0 of the episode needs 'admissible_commands'"):
        load_trajectories(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"task_type": "x", "instruction": "y", "steps": "look"}\n')
    with pytest.raises(UserError, match="a list of mappings"):
        load_trajectories(tmp_path / "bad.jsonl")
    with pytest.raises(UserError, match="no trained BC policy"):
        bc_model_dir(tmp_path)


@pytest.mark.slow
def test_bc_fine_tunes_smollm2_and_saves_a_folder_that_loads_back(expert_jsonl, tmp_path):
    _, path = expert_jsonl
    summary = train_bc(BCConfig(root=str(tmp_path), trajectories=str(path), init="smollm2", history_length=0,
                                skills="never", steps=2, batch_size=1, eval_examples=2, lr=1e-5))
    assert math.isfinite(summary["final_loss"]) and summary["parameters"] > 100e6
    model, tok = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(tmp_path / "agents/bc"))))
    assert tok.chat_template and len(tok) == summary["vocab_size"] > 40_000
    fresh, _ = load_policy(ModelSpec(kind="smollm2"))
    trained = dict(model.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in fresh.named_parameters())


@pytest.mark.slow
def test_trained_policy_beats_random_on_its_training_games(alfworld_games, tmp_path):
    from tetrad.agents.rollout import RandomPolicy

    _, folders, _ = alfworld_games
    summary = train_bc(BCConfig(root=str(tmp_path), games=str(alfworld_games[0]), hidden=128, layers=2, heads=4,
                                steps=600, batch_size=4, lr=3e-3, holdout=0.0, match_features=True))
    assert summary["episodes"] == 6
    policy = ActionScoringPolicy.load(ModelSpec(kind="hf", path=str(bc_model_dir(tmp_path / "agents/bc"))))
    envs = LocalEnvs([AlfworldEnv(folders, max_steps=30)])
    tasks = [{"game": i, "seed": 0} for i in range(len(folders))]
    library = SkillLibrary.load()
    bc_won = sum(e.won for e in rollout(envs, policy, tasks, "alfworld", True, library, max_steps=30))
    random_won = sum(e.won for e in rollout(envs, RandomPolicy("alfworld", 0), tasks, "alfworld", True, library,
                                            max_steps=30))
    assert bc_won > random_won and bc_won >= 3


def test_shop_bc_clones_the_shop_expert_runs_dagger_and_is_evaluated_on_the_shop(tmp_path):
    common = dict(root=str(tmp_path), env="shop", n_products=300, n_games=6, hidden=32, layers=1, heads=2,
                  batch_size=2, eval_examples=4, holdout=0.2)
    summary = train_bc(BCConfig(name="shop", steps=2, dagger_rounds=1, dagger_games=2, dagger_steps=1,
                                dagger_envs=2, **common))
    expert = [json.loads(line) for line in (tmp_path / "agents/shop/expert.jsonl").read_text().splitlines()]
    assert len(expert) == 6 and all(e["won"] for e in expert)
    assert summary["examples"] + summary["heldout_examples"] == sum(e["n_steps"] for e in expert)
    assert set(summary["heldout_action_accuracy_by_verb"]) <= {"search", "click"}
    assert set(summary["episodes_per_type"]) <= {"beauty", "electronics", "fashion", "grocery", "home", "shoes"}
    # the roll-in's states are labelled with the expert's action as the policy could take it
    labelled = json.loads((tmp_path / "agents/shop/dagger/round_0.json").read_text())["examples"]
    assert summary["dagger"][0]["examples"] == len(labelled) > 2
    assert all(ex["action"] in ex["candidates"] for ex in labelled)
    # every roll-in starts at the search page, where the expert's own query becomes the instruction search
    searches = [ex for ex in labelled if ex["action"].startswith("search[")]
    assert len(searches) == 2 and all(ex["candidates"] == [ex["action"]] for ex in searches)
    assert "WebShop e-commerce platform" in labelled[0]["prompt"]
    run = tmp_path / "agents/shop"
    assert read_policy_file(bc_model_dir(run))["env"] == "shop"
    # the expert's steps were prompted with the shop's template (the vocabulary is built from them)
    _, tok = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(run))))
    assert " autonomous" in tok.get_vocab() and " ALFRED" not in tok.get_vocab()
    evaluated = evaluate(EvalConfig(root=str(tmp_path), name="shop-eval", env="shop", policy="bc", bc_run=str(run),
                                    n_products=300, n_games=2, split="valid", skills="both", n_envs=2, workers=0))
    assert evaluated["skills_on"]["episodes"] == evaluated["skills_off"]["episodes"] == 2
    assert evaluated["skills_on"]["invalid_rate"] == 0.0  # the scoring policy only takes admissible actions
    with pytest.raises(UserError, match="trained on env=shop"):
        evaluate(EvalConfig(root=str(tmp_path), name="wrong-env", policy="bc", bc_run=str(run), n_games=1))
    with pytest.raises(UserError, match="trained on env=shop, not env=alfworld"):
        train_bc(BCConfig(root=str(tmp_path), name="wrong-init", init=str(run), steps=1))
    with pytest.raises(UserError, match="games= names ALFWorld game folders"):
        train_bc(BCConfig(name="games", games="runs/agents/games", steps=1, **common))
    with pytest.raises(UserError, match="catalogue= is the shop's"):
        train_bc(BCConfig(root=str(tmp_path), name="catalogue", catalogue="catalogue.json", steps=1))


@pytest.mark.slow
def test_shop_bc_policy_beats_random_on_valid_goals(tmp_path):
    summary = train_bc(BCConfig(root=str(tmp_path), env="shop", n_products=300, n_games=300, hidden=64, layers=2,
                                heads=4, steps=300, batch_size=8, lr=3e-3, holdout=0.0, eval_every=300,
                                eval_examples=50))
    assert summary["examples"] > 500
    common = dict(root=str(tmp_path), env="shop", n_products=300, n_games=30, split="valid", skills="on", n_envs=4,
                  workers=0)
    bc = evaluate(EvalConfig(name="bc-eval", policy="bc", bc_run=str(tmp_path / "agents/bc"), **common))
    random_policy = evaluate(EvalConfig(name="random-eval", policy="random", **common))
    assert bc["skills_on"]["score"] > random_policy["skills_on"]["score"] + 0.2


def test_bc_clones_only_the_chosen_task_types(tmp_path):
    common = dict(root=str(tmp_path), env="shop", n_products=300, n_games=24, hidden=16, layers=1, heads=2,
                  batch_size=2, eval_examples=2, holdout=0.0, steps=1)
    summary = train_bc(BCConfig(name="two-types", task_types=["grocery", "home"], **common))
    assert set(summary["episodes_per_type"]) == {"grocery", "home"}
    with pytest.raises(UserError, match="unknown task type 'pick_and_place_simple' for env=shop"):
        train_bc(BCConfig(name="bad-type", task_types=["pick_and_place_simple"], **common))
