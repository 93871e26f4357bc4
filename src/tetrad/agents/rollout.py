"""Multi-turn rollouts: prompts, action parsing, episode rewards, timing, token samples.

A policy is any object with

    act(prompts: list[str], infos: list[dict]) -> list[str]

mapping a batch of prompts (and the environments' info dicts, for policies that read them, such
as the expert) to raw text responses. An LLM policy returns its generations; `ExpertPolicy`
wraps the environment's expert action; `RandomPolicy` draws an admissible action.

Each turn's prompt is the environment's (`tetrad.agents.environments`: verl-agent's templates,
with SKILL0's skill slot right after the task line): task, `{skill_context}` (the rendered skill
sets, or nothing), the last `history_length` (observation, action) pairs (ALFWorld's also lists
every action taken so far), the current observation and the admissible actions. The response's
action is the text inside its last `<action>...</action>`; a response without one, or with an
action that is not admissible, costs `invalid_penalty` (0.1, as verl-agent) and the episode
continues: the text still goes to the environment, which answers "Nothing happens." (ALFWorld)
or leaves the page as it was (shop).

Episode reward (`Environment.episode_reward`): ALFWorld 10 x won, shop the task score (WebShop's
reward in [0, 1]); minus the invalid-action penalties. `tetrad.agents.handoff` turns episodes into
what a policy-gradient update needs.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tetrad.agents.environments import Environment, environment
from tetrad.agents.skills import SkillLibrary
from tetrad.core.errors import UserError

# where each part of a prompt begins and ends: every environment's template has these markers
SECTION_MARKERS = {
    "task": ("Your task is to: ", "\n"),
    "skills": ("Skills that help with this task:", "\nPrior to this step"),
    "history": ("the corresponding actions you took:\n", "\nYou are now at step"),
    "observation": ("your current observation is: ", "\nYour admissible actions"),
    "record": ("All actions you took so far: ", "\n"),  # inside the history; only ALFWorld's template has it
}


def prompt_sections(prompt: str) -> dict[str, str]:
    """The text of each part of a turn prompt (`Environment.build_prompt`): task line, skill
    block, history, current observation ("" for a part the prompt lacks)."""
    out = {}
    for name, (start, end) in SECTION_MARKERS.items():
        i = prompt.find(start)
        j = prompt.find(end, i + len(start)) if i >= 0 else -1
        out[name] = prompt[i + len(start):j] if j >= 0 else ""
    return out


class Policy(Protocol):
    def act(self, prompts: list[str], infos: list[dict]) -> list[str]: ...


def parse_action(response: str) -> str | None:
    """The action inside the response's last `<action>...</action>`, whitespace-normalised and
    lower-cased (both environments' commands are lower case); None if there is none."""
    found = re.findall(r"<action>(.*?)</action>", response, flags=re.IGNORECASE | re.DOTALL)
    if not found:
        return None
    action = " ".join(found[-1].split()).lower()
    return action or None


@dataclass
class Turn:
    prompt: str
    response: str
    action: str | None
    valid: bool
    observation: str  # what the environment answered
    reward: float
    env_seconds: float
    model_seconds: float
    # per-token log-probs of the response under the policy that chose it, when the policy
    # reports them (`last_token_logprobs`, as `ActionScoringPolicy` does)
    token_logprobs: list[float] | None = None
    # a scoring policy's log-probability of the action it took (at its temperature) and the
    # actions it chose among (`last_action_logprobs`, `last_candidates`): the RL ratio's old side
    action_logprob: float | None = None
    candidates: list[str] | None = None
    # a generating policy's sampled response token ids (`last_response_ids`)
    response_ids: list[int] | None = None


@dataclass
class Episode:
    env_kind: str
    game: Any
    seed: int | None
    task_type: str
    instruction: str
    skills: bool
    turns: list[Turn] = field(default_factory=list)
    won: bool = False
    score: float = 0.0
    n_invalid: int = 0
    crashed: bool = False
    reward: float = 0.0
    # the shop's reward parts of what was bought (WebShop's r_type, r_att, r_option, r_price)
    score_parts: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Episode:
        return cls(**{**d, "turns": [Turn(**t) for t in d["turns"]]})


class LocalEnvs:
    """Environments in this process, behind the batched `reset`/`step` API of `EnvPool`."""

    def __init__(self, envs: list[Any]):
        self.envs = envs
        self.n_envs = len(envs)

    def reset(self, kwargs: list[dict | None]) -> list:
        return [None if kw is None else env.reset(**kw) for env, kw in zip(self.envs, kwargs)]

    def step(self, actions: list[str | None]) -> list:
        return [None if a is None else env.step(a) for env, a in zip(self.envs, actions)]


def rollout(envs, policy: Policy, tasks: list[dict], env: str | Environment, use_skills: list[bool] | bool = False,
            skills: SkillLibrary | None = None, active: set[str] | None = None, max_steps: int = 50,
            history_length: int = 2, invalid_penalty: float = 0.1, game_types: list[str] | None = None
            ) -> list[Episode]:
    """Play `tasks` (each `{"game": ..., "seed": ...}`) in waves of `envs.n_envs` episodes.

    `use_skills[i]` says whether task i's prompts carry the skills (rendered from `skills`,
    restricted to the `active` set names); the same game with and without skills is how SkillC
    pairs rollouts. Each info a policy sees carries `candidates`: the admissible commands with the
    free-text one completed (`Environment.candidates`), what a policy that ranks actions chooses among.
    `game_types[game]` (the `TaskSet`'s types) names the task type of an episode whose environment
    crashed at reset, before it could say.
    """
    env = environment(env)
    max_steps = env.step_limit(max_steps)
    flags = [use_skills] * len(tasks) if isinstance(use_skills, bool) else list(use_skills)
    if len(flags) != len(tasks):
        raise ValueError("use_skills needs one flag per task")
    if any(flags) and skills is None:
        raise ValueError("use_skills needs a SkillLibrary")
    episodes: list[Episode] = []
    n = envs.n_envs
    for start in range(0, len(tasks), n):
        wave = tasks[start:start + n]
        episodes += _play_wave(envs, policy, wave, flags[start:start + n], env, skills, active, max_steps,
                               history_length, invalid_penalty, game_types)
    return episodes


def _play_wave(envs, policy, wave, flags, env: Environment, skills, active, max_steps, history_length,
               invalid_penalty, game_types) -> list[Episode]:
    n = envs.n_envs
    resets = envs.reset([wave[i] if i < len(wave) else None for i in range(n)])
    eps, obs, infos, histories, live = [], [], [], [], []
    for i, task in enumerate(wave):
        o, info = resets[i]
        task_type = info.get("task_type") or (game_types[task["game"]] if game_types and "game" in task else "")
        ep = Episode(env.name, task.get("game"), task.get("seed"), task_type,
                     info.get("instruction", ""), flags[i], crashed=bool(info.get("crashed")))
        eps.append(ep)
        obs.append(o)
        infos.append(info)
        histories.append([])
        live.append(not ep.crashed)
    while any(live):
        idx = [i for i in range(len(wave)) if live[i]]
        prompts = []
        for i in idx:
            ctx = skills.render(env.name, eps[i].task_type, active, eps[i].instruction) if flags[i] else ""
            prompts.append(env.build_prompt(eps[i].instruction, obs[i], histories[i],
                                            infos[i]["admissible_commands"], ctx, history_length))
        t0 = time.perf_counter()
        responses = policy.act(prompts, [{**infos[i], "candidates": env.candidates(infos[i])} for i in idx])
        model_seconds = (time.perf_counter() - t0) / len(idx)
        logprobs = getattr(policy, "last_token_logprobs", None) or [None] * len(idx)
        action_logps = getattr(policy, "last_action_logprobs", None) or [None] * len(idx)
        candidates = getattr(policy, "last_candidates", None) or [None] * len(idx)
        response_ids = getattr(policy, "last_response_ids", None) or [None] * len(idx)
        actions: list[str | None] = [None] * n
        parsed = {}
        for i, response in zip(idx, responses):
            parsed[i] = parse_action(response)
            actions[i] = parsed[i] if parsed[i] is not None else response.strip()[-200:]
        t0 = time.perf_counter()
        results = envs.step(actions)
        env_seconds = (time.perf_counter() - t0) / len(idx)
        for i, prompt, response, logp, action_logp, cands, ids in zip(idx, prompts, responses, logprobs,
                                                                      action_logps, candidates, response_ids):
            o, r, done, info = results[i]
            valid = env.is_admissible(parsed[i], infos[i]["admissible_commands"])
            ep = eps[i]
            ep.turns.append(Turn(prompt, response, parsed[i], valid, o, float(r), env_seconds, model_seconds, logp,
                                 action_logp, cands, ids))
            ep.n_invalid += not valid
            histories[i].append((obs[i], parsed[i] or response.strip()[-200:]))
            obs[i], infos[i] = o, info
            if info.get("crashed"):
                ep.crashed = True
            if done or info.get("crashed") or len(ep.turns) >= max_steps:
                live[i] = False
                ep.won = bool(info.get("won"))
                ep.score = float(info.get("score", float(ep.won)))
                ep.score_parts = {k: float(info[k]) for k in env.score_parts if k in info}
    for ep in eps:
        ep.reward = env.episode_reward(ep.won, ep.score, ep.n_invalid, invalid_penalty)
    return eps


class ExpertPolicy:
    """The environment's expert (ALFWorld's handcoded expert, the shop's goal-aware expert);
    needs environments built with `expert=True`."""

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        out = []
        for info in infos:
            action = info.get("expert_action") or info["admissible_commands"][0]
            out.append(f"<action>{action}</action>")
        return out


class RandomPolicy:
    """A uniformly random admissible action (`Environment.random_action`: the shop's search box
    gets some of the instruction's words)."""

    def __init__(self, env: str | Environment, seed: int = 0):
        self.env = environment(env)
        self.rng = random.Random(seed)

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        return [f"<action>{self.env.random_action(info, self.rng)}</action>" for info in infos]


def command_word(action: str | None) -> str:
    """The command of an action: its first word, or what precedes `[` ("go", "take", "search",
    "click"); "(none)" for a response without an action."""
    return re.split(r"[\s\[]", action, maxsplit=1)[0] if action else "(none)"


def load_episodes(path: Path) -> list[Episode]:
    """The episodes an evaluation wrote to its `episodes.jsonl`."""
    if not path.is_file():
        raise UserError(f"no episodes to summarise: {path} not found")
    try:
        episodes = [Episode.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        raise UserError(f"{path} is not an episodes file ({type(e).__name__}: {e})") from None
    if not episodes:
        raise UserError(f"{path} has no episodes")
    return episodes


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """Success and score per task type (the shop's: per category), with and without skills;
    invalid rate; seconds per step; the share of turns per command word (where a policy's steps
    go: a looping policy shows up here); and the environment's own metrics
    (`Environment.metrics`: ALFWorld's `take_grounded`, the shop's `option_grounded` and reward
    parts)."""
    out: dict[str, Any] = {}
    for flag, label in ((True, "skills_on"), (False, "skills_off")):
        eps = [e for e in episodes if e.skills == flag]
        if not eps:
            continue
        groups = {t: [e for e in eps if e.task_type == t] for t in sorted({e.task_type for e in eps})}
        turns = [t for e in eps for t in e.turns]
        out[label] = {
            "episodes": len(eps), "success": sum(e.won for e in eps) / len(eps),
            "score": sum(e.score for e in eps) / len(eps), "reward": sum(e.reward for e in eps) / len(eps),
            "success_per_type": {t: sum(e.won for e in g) / len(g) for t, g in groups.items()},
            "score_per_type": {t: sum(e.score for e in g) / len(g) for t, g in groups.items()},
            "invalid_rate": sum(not t.valid for t in turns) / max(len(turns), 1),
            "steps_per_episode": len(turns) / len(eps), "crashed": sum(e.crashed for e in eps),
            "env_seconds_per_step": sum(t.env_seconds for t in turns) / max(len(turns), 1),
            "model_seconds_per_step": sum(t.model_seconds for t in turns) / max(len(turns), 1),
            "action_share": {w: n / len(turns) for w, n in
                             Counter(command_word(t.action) for t in turns).most_common()} if turns else {}}
        out[label].update(environment(eps[0].env_kind).metrics(eps))
    return out
