"""`tetrad agents eval`: play a policy on ALFWorld games or the shop, with skills on, off or both.

Writes `runs/agents/<name>/`: `config.yaml`, `episodes.jsonl` (every turn's prompt, response,
action, validity and timings), `metrics.jsonl` (one record per skills condition) and
`summary.json` (success per task type, score, invalid-action rate, seconds per step for the
environment and the model). ALFWorld games come from `games=<folder>` (generated or a real
ALFWorld data folder) or, when that is empty, are generated into the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import field_validator

from tetrad.agents.environments import EnvName, environment
from tetrad.core.config import (NonNegativeFloat, NonNegativeInt, Parallel, ParallelOrZero, PositiveFloat,
                                PositiveInt, RunConfig, validate_section)
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_text
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything

POLICIES = ("expert", "random", "bc", "llm", "smollm")


class EvalConfig(RunConfig):
    env: EnvName = "alfworld"
    policy: str = "expert"
    skills: Literal["on", "off", "both"] = "both"
    skills_dir: str = ""  # empty: the library shipped with tetrad
    games: str = ""  # ALFWorld game folder; empty: generate `n_games` of `split` into the run directory
    split: str = "valid_seen"
    n_games: PositiveInt = 12  # games generated, or goals drawn from the shop
    episodes: NonNegativeInt = 0  # 0: one per game
    task_types: list[str] = []  # empty: all six
    max_steps: PositiveInt = 50  # the step limit; an environment with its own (the shop's 15) keeps the lower
    # the prompt's (observation, action) window; policy=bc: unless set, the one the policy trained with
    history_length: NonNegativeInt = 2
    invalid_penalty: NonNegativeFloat = 0.1
    n_envs: Parallel = 4
    workers: ParallelOrZero = 2  # 0: environments in this process
    worker_timeout: PositiveFloat = 120.0  # seconds a worker may take to answer before it is restarted
    n_products: PositiveInt = 2000
    catalogue: str = ""  # a catalogue JSON from `tetrad agents make-catalogue`; empty: generate
    # policy=llm: the model to load (tetrad.llm.models.ModelSpec fields); policy=smollm is kind=smollm2
    model: dict = {"kind": "smollm2"}
    bc_run: str = "runs/agents/bc"  # policy=bc: a `tetrad agents bc` run directory (or its model/ folder)
    # bc, llm, smollm: `score` ranks the admissible actions by the model's log-likelihood
    # (ActionScoringPolicy), `generate` samples free text and parses its <action> tag (LLMPolicy)
    decode: Literal["score", "generate"] = "score"
    temperature: NonNegativeFloat = 0.0  # 0: greedy (the best-scoring action, or greedy generation)
    # decode=score: an action's score is the `sum` of its response tokens' log-probs (what BC
    # trains) or their `mean` (length-normalised: an untrained model's sum favours short commands)
    action_score: Literal["sum", "mean"] = "sum"
    max_new_tokens: PositiveInt = 48

    @field_validator("skills", mode="before")
    @classmethod
    def _yaml_booleans(cls, v):  # YAML reads on/off as true/false
        return {True: "on", False: "off"}.get(v, v) if isinstance(v, bool) else v


def make_policy(cfg: EvalConfig):
    from tetrad.agents.rollout import ExpertPolicy, RandomPolicy

    if cfg.policy == "expert":
        return ExpertPolicy()
    if cfg.policy == "random":
        return RandomPolicy(cfg.env, cfg.seed)
    if cfg.policy in ("bc", "llm", "smollm"):
        from tetrad.agents.bc_model import bc_model_dir
        from tetrad.agents.llm_policy import ActionScoringPolicy, LLMPolicy
        from tetrad.llm.models import ModelSpec
        from tetrad.llm.sampling import SamplingParams

        if cfg.policy == "bc":
            spec = ModelSpec(kind="hf", path=str(bc_model_dir(cfg.bc_run)))
        elif cfg.policy == "smollm":
            spec = ModelSpec(kind="smollm2")
        else:
            spec = validate_section(ModelSpec, cfg.model, "model")
        if cfg.decode == "score":
            return ActionScoringPolicy.load(spec, temperature=cfg.temperature, chat=True, seed=cfg.seed,
                                            action_score=cfg.action_score)
        params = SamplingParams(temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, stop=["</action>"])
        return LLMPolicy.load(spec, params, keep_rollouts=False)
    raise UserError(f"unknown policy '{cfg.policy}' (known: {', '.join(POLICIES)})")


def task_set(cfg: EvalConfig, run_path: Path):
    """The games (or goals) to play: ALFWorld's from `games` or generated into the run directory."""
    return environment(cfg.env).tasks(cfg.split, cfg.n_games, games=cfg.games, catalogue=cfg.catalogue,
                                      n_products=cfg.n_products, seed=cfg.seed, task_types=cfg.task_types or None,
                                      expert=cfg.policy == "expert", max_steps=cfg.max_steps,
                                      generate_into=run_path / "games")


def evaluate(cfg: EvalConfig) -> dict:
    from tetrad.agents.pool import EnvPool
    from tetrad.agents.rollout import LocalEnvs, rollout, summarize
    from tetrad.agents.skills import SkillLibrary

    seed_everything(cfg.seed)
    policy = make_policy(cfg)
    library = SkillLibrary.load(cfg.skills_dir or None)
    history_length = cfg.history_length
    if cfg.policy == "bc":
        from tetrad.agents.bc_model import bc_model_dir, read_policy_file

        recorded = read_policy_file(bc_model_dir(cfg.bc_run))
        if recorded.get("env", cfg.env) != cfg.env:
            raise UserError(f"bc_run={cfg.bc_run} was trained on env={recorded['env']}: evaluate it with "
                            f"env={recorded['env']}")
        if "history_length" not in cfg.model_fields_set:
            history_length = recorded.get("history_length", history_length)
    run = RunDir("agents", cfg, tensorboard=False)
    tasks_of_split = task_set(cfg, run.path)
    make_env, n_games = tasks_of_split.make_env, len(tasks_of_split)
    n_episodes = cfg.episodes or n_games
    tasks = [{"game": i % n_games, "seed": cfg.seed + i} for i in range(n_episodes)]
    conditions = {"on": [True], "off": [False], "both": [True, False]}[cfg.skills]
    envs = (EnvPool(make_env, cfg.n_envs, cfg.workers, timeout=cfg.worker_timeout) if cfg.workers > 0
            else LocalEnvs([make_env() for _ in range(cfg.n_envs)]))
    episodes = []
    try:
        for flag in conditions:
            episodes += rollout(envs, policy, tasks, cfg.env, flag, library, max_steps=cfg.max_steps,
                                history_length=history_length, invalid_penalty=cfg.invalid_penalty,
                                game_types=tasks_of_split.types)
    finally:
        if isinstance(envs, EnvPool):
            envs.close()
    summary = summarize(episodes)
    atomic_write_text(run.path / "episodes.jsonl", "".join(json.dumps(e.to_dict()) + "\n" for e in episodes))
    for step, label in enumerate(summary, start=1):
        flat = {k: v for k, v in summary[label].items() if not isinstance(v, dict)}
        run.log(step, {"condition": label, **flat})
    summary = {"env": cfg.env, "policy": cfg.policy, "history_length": history_length, **summary}
    run.write_summary(summary)
    run.close()
    return summary
