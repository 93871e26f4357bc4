"""`tetrad skillc train`: SkillC and the methods it is measured against, on one engine.

One update (CleanRL-style, top to bottom in `train`):

1. Draw `tasks_per_step` training games (seeded by the run's seed and the step, so a resumed run
   draws the same ones). Each task gets `group_size` rollouts of the same game instance (same
   seed): verl-agent's GRPO group.
2. Decide which rollouts carry the skills (`skill_flags`, per method below) and play them all
   with the acting policy at `temperature` (`tetrad.agents.rollout`). Episode reward: ALFWorld
   10 x won, the shop its score, minus `invalid_penalty` per invalid action.
3. Advantages per episode (`tetrad.skillc.advantages`), handed to every turn of the episode
   (`tetrad.agents.handoff`), one clipped-ratio policy step (`tetrad.skillc.learners`).
4. Every `validate_every` updates (the paper's d): greedy validation on the validation games with
   skills and without; the per-type gaps drive the curriculum (SkillC, SKILL0) and the learning
   curves of every method.

Methods (`method=`), all with the same budget of `tasks_per_step x group_size` rollouts per update:

- `grpo`: GRPO, skills never in the prompt.
- `grpo_skills`: GRPO with skills always (skill-augmented RL; its test reports both conditions).
- `skill0`: SKILL0-style internalization: one prompt condition per task (skills for the types in
  the active set), GRPO advantages, the active set shrunk at each validation by gap and by the
  `skill0_stages` schedule.
- `d2skill`: half of each group with skills; GRPO on the reward plus D2Skill's bonus for
  skill-injected success over the skill-free mean.
- `skillc`: paired rollouts (a `share` of each active task's group with skills, the rest without,
  at least one of each), the dual-stream advantage with the curriculum's per-type strength, the
  adaptive curriculum. Its ablations: `pairing=false` (each task's group is all of one condition,
  drawn with probability `share`), `pruning=false`, `allocation=fixed` (`fixed_share`, 0.5),
  `normalisation=fixed_gate` (one stream plus a correction of fixed size `gate`).
  `pairing_budget=extra` gives an active task its `group_size` skill-free rollouts *plus* the
  skill-injected ones (`round(share x group_size)`, at least one) instead of splitting the group:
  the paper reports that pairing added about 26% training time early on, which reads as rollouts
  on top of the group; `shared` (the default) keeps every method at the same rollout budget.

A run writes `runs/skillc/<name>/` with `config.yaml`, `metrics.jsonl` and TensorBoard scalars
(train reward per condition, validation success/score with and without skills, the curriculum's
active set, strengths and shares, seconds per update split into rollout environment, rollout
model and update, and the share of rollout time spent on skill-injected rollouts), checkpoints
(model, optimizer, schedule, curriculum, RNG: `resume=true` is bit-exact), `plots/` (learning
curves with and without skills; the curriculum's trajectory), the trained policy in `model/`,
and `summary.json` with the test results per task type with skills and without.
"""

from __future__ import annotations

import random
import time
from typing import Annotated, Literal

import torch
from pydantic import Field, model_validator

from tetrad.agents.environments import EnvName, TaskSet, environment
from tetrad.core.config import (Config, NonNegativeFloat, NonNegativeInt, Parallel, PositiveFloat, PositiveInt,
                                RunConfig, Seed, Share)
from tetrad.core.errors import UserError
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything

Method = Literal["skillc", "grpo", "grpo_skills", "skill0", "d2skill"]


class CurriculumConfig(Config):
    strength: NonNegativeFloat = 1.0  # lambda: the correction's scale
    mix: Share = 0.4  # w: the weight of the contrastive stream
    smoothing: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.9  # alpha of the smoothed gap
    validate_every: PositiveInt = 10  # d: updates between validations
    min_share: Share = 0.25  # share of skill-injected rollouts once a type's gap has closed
    max_share: Share = 0.75  # ... while its gap is at its peak
    prune_below: float = 0.0  # a type is pruned once its smoothed gap is at or below this
    patience: PositiveInt = 2  # ... for this many validations in a row

    @model_validator(mode="after")
    def _shares(self):
        if self.min_share > self.max_share:
            raise ValueError(f"min_share ({self.min_share}) is above max_share ({self.max_share})")
        return self


class SkillCConfig(RunConfig):
    name: str = "skillc"
    method: Method = "skillc"
    env: EnvName = "shop"
    base_policy: str = "runs/agents/bc-shop-match"  # a `tetrad agents bc` run, or a Hugging Face model folder
    decode: Literal["score", "generate"] = "score"
    skills_dir: str = ""  # empty: the library shipped with tetrad
    skill_types: list[str] = []  # the task types whose skills the curriculum manages; empty: all
    # data: the shop's generated catalogue, or ALFWorld game folders
    n_products: PositiveInt = 2000
    catalogue: str = ""
    # the shop's catalogue and goals are drawn from data_seed, not the run's seed, so every seed
    # plays the same games (and the catalogue the base policy was cloned on: its `seed`)
    data_seed: Seed = 0
    train_games: str = ""  # ALFWorld: train game folder; the shop: empty (train goals of the catalogue)
    val_games: str = ""  # ALFWorld: validation game folder
    test_games: dict[str, str] = {}  # ALFWorld: split name -> folder, e.g. valid_seen / valid_unseen
    n_train: PositiveInt = 1000  # shop: train goals drawn from
    n_val: PositiveInt = 48  # shop: validation goals (ALFWorld: all of val_games)
    n_test: PositiveInt = 100  # shop: test goals (ALFWorld: all of each test folder)
    max_steps: PositiveInt = 50  # ALFWorld's step limit; the shop caps it at 15
    history_length: Annotated[int, Field(ge=-1)] = -1  # -1: the one the base policy trained with
    invalid_penalty: NonNegativeFloat = 0.1
    # the update
    steps: PositiveInt = 40
    tasks_per_step: PositiveInt = 4
    group_size: Annotated[int, Field(ge=2)] = 4
    temperature: PositiveFloat = 1.0
    lr: PositiveFloat = 3e-4
    weight_decay: NonNegativeFloat = 0.0
    warmup_ratio: Share = 0.05
    clip_eps: PositiveFloat = 0.2
    max_grad_norm: PositiveFloat = 1.0
    micro_batch: PositiveInt = 16
    max_new_tokens: PositiveInt = 48  # decode=generate
    lora_rank: NonNegativeInt = 0  # decode=generate: LoRA adapters of this rank (0: full)
    device: str = "auto"
    # SkillC and its ablations
    curriculum: CurriculumConfig = CurriculumConfig()
    pairing: bool = True
    pairing_budget: Literal["shared", "extra"] = "shared"  # the skill-injected rollouts: within the group or added
    pruning: bool = True
    allocation: Literal["adaptive", "fixed"] = "adaptive"
    fixed_share: Share = 0.5
    normalisation: Literal["dual_stream", "fixed_gate"] = "dual_stream"
    gate: NonNegativeFloat = 0.5
    # baselines
    d2skill_coef: NonNegativeFloat = 1.0
    skill0_stages: list[NonNegativeInt] = [6, 3, 0]
    checkpoint_every: PositiveInt = 5
    log_every: PositiveInt = 1
    n_envs: Parallel = 8


# ----------------------------------------------------------------------------------------------
# environments


def task_sets(cfg: SkillCConfig) -> tuple[TaskSet, TaskSet, dict[str, TaskSet]]:
    """(train, validation, {test split: games}): ALFWorld's from the game folders, the shop's
    goals drawn from `data_seed`."""
    env = environment(cfg.env)

    def split(name: str, n: int, games: str) -> TaskSet:
        return env.tasks(name, n, games=games, catalogue=cfg.catalogue, n_products=cfg.n_products,
                         seed=cfg.data_seed, max_steps=cfg.max_steps)

    return (split("train", cfg.n_train, cfg.train_games), split("valid", cfg.n_val, cfg.val_games),
            {name: split(name, cfg.n_test, folder) for name, folder in (cfg.test_games or {"test": ""}).items()})


# ----------------------------------------------------------------------------------------------
# who gets skills, and the advantages


def skill_flags(cfg: SkillCConfig, task_type: str, curriculum, rng: random.Random) -> list[bool]:
    """The skill flag of each of a task's rollouts (`group_size` of them; more for
    `pairing_budget=extra`), per method."""
    g = cfg.group_size
    if cfg.method == "grpo":
        return [False] * g
    if cfg.method == "grpo_skills":
        return [True] * g
    if cfg.method == "d2skill":
        return [True] * (g // 2) + [False] * (g - g // 2)
    if cfg.method == "skill0":
        return [curriculum.is_active(task_type)] * g
    share = curriculum.share_of(task_type)
    if share <= 0:
        return [False] * g
    if not cfg.pairing:
        return [rng.random() < share] * g
    if cfg.pairing_budget == "extra":
        return [True] * max(round(share * g), 1) + [False] * g
    n_on = min(max(round(share * g), 1), g - 1)
    return [True] * n_on + [False] * (g - n_on)


def episode_advantages(cfg: SkillCConfig, episodes, task_ids: list[int], curriculum) -> torch.Tensor:
    from tetrad.skillc.advantages import (d2skill_advantages, dual_stream_advantages, fixed_gate_advantages,
                                          grpo_advantages)

    rewards = torch.tensor([e.reward for e in episodes], dtype=torch.float32)
    flags = torch.tensor([e.skills for e in episodes], dtype=torch.bool)
    ids = torch.tensor(task_ids, dtype=torch.long)
    if cfg.method in ("grpo", "grpo_skills", "skill0"):
        return grpo_advantages(rewards, ids)
    if cfg.method == "d2skill":
        won = torch.tensor([float(e.won) for e in episodes])
        return d2skill_advantages(rewards, flags, ids, won, cfg.d2skill_coef)
    if cfg.normalisation == "fixed_gate":
        return fixed_gate_advantages(rewards, flags, ids, cfg.gate)
    strength = torch.tensor([curriculum.strength_of(e.task_type) for e in episodes], dtype=torch.float64)
    return dual_stream_advantages(rewards, flags, ids, strength, cfg.curriculum.mix)


# ----------------------------------------------------------------------------------------------
# the recipe


def _load_learner(cfg: SkillCConfig, total_steps: int):
    from tetrad.agents.bc_model import bc_model_dir, read_policy_file
    from tetrad.core.distributed import resolve_device
    from tetrad.llm.models import ModelSpec, load_policy
    from tetrad.llm.update import UpdateConfig
    from tetrad.skillc.learners import GeneratingLearner, ScoringLearner

    model_dir = bc_model_dir(cfg.base_policy)
    recorded = read_policy_file(model_dir)
    if recorded.get("env", cfg.env) != cfg.env:
        raise UserError(f"base_policy={cfg.base_policy} was trained on env={recorded['env']}, not env={cfg.env}")
    model, tok = load_policy(ModelSpec(kind="hf", path=str(model_dir)))
    model = model.to(resolve_device(cfg.device))
    update = UpdateConfig(lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                          total_steps=total_steps, clip_eps=cfg.clip_eps, max_grad_norm=cfg.max_grad_norm,
                          micro_batch=cfg.micro_batch)
    history = cfg.history_length if cfg.history_length >= 0 else recorded.get("history_length", 2)
    if cfg.decode == "score":
        return ScoringLearner(model, tok, update, cfg.temperature), history
    return GeneratingLearner(model, tok, update, cfg.temperature, cfg.max_new_tokens, cfg.lora_rank), history


def _curriculum(cfg: SkillCConfig, types: list[str]):
    from tetrad.skillc.curriculum import Curriculum, Skill0Schedule

    c = cfg.curriculum
    if cfg.method == "skill0":
        return Skill0Schedule(types, cfg.skill0_stages)
    return Curriculum(types, c.strength, c.smoothing, c.min_share, c.max_share, c.prune_below, c.patience,
                      pruning=cfg.pruning, fixed_share=cfg.fixed_share if cfg.allocation == "fixed" else None)


def play(task_set: TaskSet, policy, games: list[int], seeds: list[int], flags: list[bool], cfg: SkillCConfig,
         library, history: int):
    from tetrad.agents.rollout import rollout

    envs = task_set.envs(cfg.n_envs)
    tasks = [{"game": g, "seed": s} for g, s in zip(games, seeds)]
    return rollout(envs, policy, tasks, cfg.env, flags, library, max_steps=cfg.max_steps, history_length=history,
                   invalid_penalty=cfg.invalid_penalty)


def evaluate_both(learner, task_set: TaskSet, cfg: SkillCConfig, library, history: int, seed: int) -> dict:
    """Greedy play of every game of `task_set` with skills and without: `summarize`'s numbers."""
    from tetrad.agents.rollout import summarize

    policy = learner.acting_policy(seed, temperature=0.0)
    games = list(range(len(task_set)))
    seeds = [seed + g for g in games]
    eps = play(task_set, policy, games * 2, seeds * 2, [True] * len(games) + [False] * len(games), cfg, library,
               history)
    return summarize(eps)


def per_type_gaps(summary: dict, key: str) -> dict[str, float]:
    """Validation gap per task type: mean `key` (success or score) with skills minus without."""
    on, off = summary["skills_on"][f"{key}_per_type"], summary["skills_off"][f"{key}_per_type"]
    return {t: on[t] - off[t] for t in on if t in off}


def train(cfg: SkillCConfig) -> dict:
    from tetrad.agents.skills import SkillLibrary
    from tetrad.skillc.plots import plot_curriculum, plot_learning_curves

    seed_everything(cfg.seed)
    library = SkillLibrary.load(cfg.skills_dir or None)
    known = sorted(library.task_sets(cfg.env))
    types = cfg.skill_types or known
    unknown = [t for t in types if t not in known]
    if unknown:
        raise UserError(f"unknown skill type '{unknown[0]}' for env={cfg.env} (known: {', '.join(known)})")
    if not types:
        raise UserError(f"no skill type to start from: the skill library has none for env={cfg.env}")
    learner, history = _load_learner(cfg, cfg.steps)
    train_set, val_set, test_sets = task_sets(cfg)
    curriculum = _curriculum(cfg, types)
    run = RunDir("skillc", cfg)
    restored = run.restore(cfg.resume, **learner.parts())
    start = restored["step"]
    if restored["state"]:
        curriculum.load_state_dict(restored["state"]["curriculum"])
    val_key = environment(cfg.env).headline

    def validate(step: int) -> dict:
        t = time.perf_counter()
        summary = evaluate_both(learner, val_set, cfg, library, history, seed=cfg.seed + 7_000_000)
        gaps = per_type_gaps(summary, val_key)
        record = {f"val/{cond}_{k}": summary[cond][k] for cond in ("skills_on", "skills_off")
                  for k in ("success", "score")}
        if cfg.method == "skillc":
            record["pruned"] = curriculum.update({t: g for t, g in gaps.items() if t in types})
        elif cfg.method == "skill0":
            record["pruned"] = curriculum.update({t: g for t, g in gaps.items() if t in types}, step / cfg.steps)
        record.update({f"val_gap/{t}": g for t, g in gaps.items()})
        record["val_seconds"] = time.perf_counter() - t
        return record

    if start == 0:
        run.log(0, {**validate(0), **_curriculum_record(curriculum)})
    for step in _progress(range(start + 1, cfg.steps + 1)):
        t0 = time.perf_counter()
        rng = random.Random(f"{cfg.seed}/{step}")
        games = [rng.randrange(len(train_set)) for _ in range(cfg.tasks_per_step)]
        flags, ids, play_games, seeds = [], [], [], []
        for k, g in enumerate(games):
            f = skill_flags(cfg, train_set.types[g], curriculum, rng)
            flags += f
            ids += [k] * len(f)
            play_games += [g] * len(f)
            seeds += [rng.randrange(2**31)] * len(f)  # one game instance per group
        policy = learner.acting_policy(seed=cfg.seed * 1_000_003 + step)
        episodes = play(train_set, policy, play_games, seeds, flags, cfg, library, history)
        t1 = time.perf_counter()
        adv = episode_advantages(cfg, episodes, ids, curriculum)
        stats = learner.step(episodes, adv)
        t2 = time.perf_counter()
        record = {**stats, **_rollout_record(episodes), "rollout_seconds": t1 - t0, "update_seconds": t2 - t1,
                  "step_seconds": t2 - t0}
        if step % cfg.curriculum.validate_every == 0 or step == cfg.steps:
            record.update(validate(step))
            record.update(_curriculum_record(curriculum))
        if step % cfg.log_every == 0 or "val_seconds" in record:
            run.log(step, record)
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            run.checkpointer.save(step, **learner.parts(), state={"curriculum": curriculum.state_dict()})
    learner.save(run.path / "model")
    test = {name: evaluate_both(learner, ts, cfg, library, history, seed=cfg.seed + 9_000_000)
            for name, ts in test_sets.items()}
    metrics = run.read_metrics()
    train_records = [m for m in metrics if "step_seconds" in m]
    cost = {k: sum(m[k] for m in train_records) / max(len(train_records), 1)
            for k in ("step_seconds", "rollout_seconds", "update_seconds", "env_seconds", "model_seconds",
                      "skill_rollout_share")}
    # validation (with and without skills, every d updates) spread over the updates
    cost["validation_seconds_per_update"] = sum(m.get("val_seconds", 0.0) for m in metrics) / cfg.steps
    summary = {"method": cfg.method, "env": cfg.env, "seed": cfg.seed, "steps": cfg.steps, "test": test,
               "curriculum": curriculum.state_dict(), "cost": cost}
    plot_learning_curves(metrics, run.plots / "learning_curves.png", cfg.method)
    plot_curriculum(metrics, types, run.plots / "curriculum.png")
    run.write_summary(summary)
    run.close()
    return summary


def _progress(it):
    from tetrad.core.progress import progress

    return progress(it, desc="skillc")


def _rollout_record(episodes) -> dict[str, float]:
    """Train reward per condition, and where the rollout time went (environment, model; the share
    spent on skill-injected rollouts, which is what pairing costs at a fixed budget)."""
    out: dict[str, float] = {}
    for flag, label in ((True, "on"), (False, "off")):
        eps = [e for e in episodes if e.skills == flag]
        if eps:
            out[f"train/reward_{label}"] = sum(e.reward for e in eps) / len(eps)
            out[f"train/success_{label}"] = sum(e.won for e in eps) / len(eps)
    turns = [(t, e.skills) for e in episodes for t in e.turns]
    env_s = sum(t.env_seconds for t, _ in turns)
    model_s = sum(t.model_seconds for t, _ in turns)
    skill_s = sum(t.env_seconds + t.model_seconds for t, z in turns if z)
    out.update({"env_seconds": env_s, "model_seconds": model_s,
                "skill_rollout_share": skill_s / max(env_s + model_s, 1e-12),
                "skill_episode_share": sum(e.skills for e in episodes) / len(episodes)})
    return out


def _curriculum_record(curriculum) -> dict[str, float]:
    if hasattr(curriculum, "snapshot"):
        return curriculum.snapshot()
    return {"active_skills": float(len(curriculum.active)),
            **{f"active/{t}": float(curriculum.is_active(t)) for t in curriculum.types}}
