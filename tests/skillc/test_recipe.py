import json
import shutil

import pytest
import torch

from tetrad.agents.bc import BCConfig, train_bc
from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.llm.models import ModelSpec, load_policy
from tetrad.skillc.recipe import SkillCConfig, skill_flags, train
from tetrad.skillc.curriculum import Curriculum


@pytest.fixture(scope="module")
def shop_policy(tmp_path_factory):
    root = tmp_path_factory.mktemp("skillc")
    train_bc(BCConfig(root=str(root), name="base", env="shop", n_games=6, n_products=200, hidden=16, layers=1,
                      heads=2, steps=2, batch_size=2, eval_examples=4, holdout=0.2))
    return root, root / "agents" / "base"


def untimed(d):
    """`d` without wall-clock measurements."""
    if isinstance(d, dict):
        return {k: untimed(v) for k, v in d.items() if "seconds" not in k}
    return d


def small(root, base, **kw):
    settings = dict(root=str(root), base_policy=str(base), n_products=200, n_train=8, n_val=4, n_test=4, steps=4,
                    max_steps=6, tasks_per_step=2, group_size=2, checkpoint_every=2, n_envs=4, lr=1e-3,
                    curriculum={"validate_every": 2})
    return SkillCConfig(**{**settings, **kw})


def test_skillc_trains_validates_checkpoints_and_resumes_bit_exactly(shop_policy, tmp_path):
    _, base = shop_policy
    full = train(small(tmp_path, base, name="full"))
    assert set(full["test"]) == {"test"} and {"skills_on", "skills_off"} <= set(full["test"]["test"])
    metrics = [json.loads(line) for line in (tmp_path / "skillc/full/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "val/skills_off_score" in m] == [0, 2, 4]
    assert all("loss" in m and "train/reward_off" in m for m in metrics if m["step"] > 0)
    assert "train/reward_on" in metrics[1]  # paired rollouts while every skill type is active
    assert {"learning_curves.png", "curriculum.png"} <= {p.name for p in (tmp_path / "skillc/full/plots").iterdir()}
    assert 0.0 < full["cost"]["skill_rollout_share"] < 1.0 and full["cost"]["update_seconds"] > 0
    # an interruption after step 2: the copy loses its last checkpoint, model and summary
    shutil.copytree(tmp_path / "skillc/full", tmp_path / "skillc/cut")
    for stale in ("checkpoints/step_000000004.pt", "summary.json"):
        (tmp_path / "skillc/cut" / stale).unlink()
    shutil.rmtree(tmp_path / "skillc/cut/model")
    resumed = train(small(tmp_path, base, name="cut", resume=True))
    assert untimed(resumed["test"]) == untimed(full["test"]) and resumed["curriculum"] == full["curriculum"]
    a, _ = load_policy(ModelSpec(kind="hf", path=str(tmp_path / "skillc/full/model")))
    b, _ = load_policy(ModelSpec(kind="hf", path=str(tmp_path / "skillc/cut/model")))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    cut = [json.loads(line) for line in (tmp_path / "skillc/cut/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in cut] == [m["step"] for m in metrics]


@pytest.mark.parametrize("method", ["grpo", "grpo_skills", "skill0", "d2skill"])
def test_every_baseline_trains_from_the_same_base_policy(shop_policy, tmp_path, method):
    _, base = shop_policy
    summary = train(small(tmp_path, base, name=method, method=method, steps=2))
    assert summary["method"] == method and summary["test"]["test"]["skills_off"]["episodes"] == 4
    metrics = [json.loads(line) for line in (tmp_path / f"skillc/{method}/metrics.jsonl").read_text().splitlines()]
    shares = [m["skill_episode_share"] for m in metrics if "skill_episode_share" in m]
    expected = {"grpo": 0.0, "grpo_skills": 1.0, "d2skill": 0.5, "skill0": 1.0}[method]
    assert shares and shares[0] == expected


def test_who_gets_skills_per_method_and_ablation():
    import random

    c = Curriculum(["shoes", "home"], smoothing=0.5, min_share=0.25, max_share=0.75)
    cfg = SkillCConfig(group_size=8)
    rng = random.Random(0)
    assert skill_flags(cfg, "shoes", c, rng) == [True] * 6 + [False] * 2  # share 0.75, paired
    extra = cfg.model_copy(update={"pairing_budget": "extra"})
    assert skill_flags(extra, "shoes", c, rng) == [True] * 6 + [False] * 8  # the whole group stays skill-free
    c.update({"shoes": 0.4, "home": 0.4})
    c.update({"shoes": 0.0, "home": 0.4})  # shoes' gap has half closed: share 0.5
    assert sum(skill_flags(cfg, "shoes", c, rng)) == 4
    unpaired = cfg.model_copy(update={"pairing": False})
    groups = [skill_flags(unpaired, "home", c, rng) for _ in range(50)]
    assert all(len(set(g)) == 1 for g in groups) and 0 < sum(g[0] for g in groups) < 50
    c.active.remove("home")
    assert skill_flags(cfg, "home", c, rng) == [False] * 8
    assert skill_flags(cfg.model_copy(update={"method": "d2skill"}), "home", c, rng) == [True] * 4 + [False] * 4


@pytest.mark.parametrize("override, message", [
    (["method=ppo"], "config key 'method'"),
    (["curriculum.strength=-1"], "curriculum.strength"),
    (["curriculum.mix=1.5"], "curriculum.mix"),
    (["curriculum.smoothing=1"], "curriculum.smoothing"),
    (["curriculum.min_share=0.9"], "min_share"),
    (["fixed_share=2"], "fixed_share"),
    (["group_size=1"], "group_size"),
    (["steps=0"], "steps"),
    (["temperature=0"], "temperature"),
    (["history_length=-7"], "history_length"),
])
def test_bad_settings_are_one_line_errors(override, message):
    with pytest.raises(UserError, match=message):
        load_config(SkillCConfig, None, override)


def test_bad_inputs_to_the_recipe(shop_policy, tmp_path):
    _, base = shop_policy
    with pytest.raises(UserError, match="unknown skill type 'juggling'"):
        train(small(tmp_path, base, name="a", skill_types=["juggling"]))
    with pytest.raises(UserError, match="trained on env=shop"):
        train(small(tmp_path, base, name="b", env="alfworld", test_games={"valid_seen": str(tmp_path)},
                    train_games=str(tmp_path), val_games=str(tmp_path)))
    with pytest.raises(UserError, match="no trained BC policy"):
        train(small(tmp_path, tmp_path / "missing", name="c"))
    general_only = tmp_path / "skills"
    general_only.mkdir()
    (general_only / "general.yaml").write_text(
        "name: g\nenvironment: shop\nskills:\n  - {title: t, principle: p, when_to_apply: w}\n")
    with pytest.raises(UserError, match="no skill type to start from"):
        train(small(tmp_path, base, name="d", skills_dir=str(general_only)))


def test_the_same_recipe_runs_a_generating_llm_with_lora(tmp_path):
    """decode=generate: free generation of <action>...</action>, token log-probs, LoRA (peft)."""
    import string

    from tetrad.llm.models import save_policy

    model, tok = load_policy(ModelSpec(kind="tiny", chars=string.printable, hidden=32, layers=1, heads=2,
                                       max_positions=4096))
    save_policy(model, tok, tmp_path / "llm")
    summary = train(small(tmp_path, tmp_path / "llm", name="llm", decode="generate", lora_rank=4, max_new_tokens=6,
                          steps=2, max_steps=2, n_val=2, n_test=2))
    metrics = [json.loads(line) for line in (tmp_path / "skillc/llm/metrics.jsonl").read_text().splitlines()]
    assert [m["clip_frac"] for m in metrics if "clip_frac" in m] == [0.0, 0.0]  # on-policy: every ratio is 1
    # an untrained model writes no <action>: every turn is invalid and penalised
    assert summary["test"]["test"]["skills_off"]["invalid_rate"] == 1.0
    trained, _ = load_policy(ModelSpec(kind="hf", path=str(tmp_path / "skillc/llm/model")))  # LoRA merged
    assert not any("lora" in k for k in trained.state_dict())
