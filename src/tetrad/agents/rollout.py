"""Multi-turn rollouts: prompts, action parsing, episode rewards, timing, token samples.

A policy is any object with

    act(prompts: list[str], infos: list[dict]) -> list[str]

mapping a batch of prompts (and the environments' info dicts, for policies that read them, such
as the expert) to raw text responses. An LLM policy returns its generations; `ExpertPolicy`
wraps the environment's expert action; `RandomPolicy` draws an admissible action.

Each turn's prompt (verl-agent's templates, with SKILL0's skill slot right after the task line):
task, `{skill_context}` (the rendered skill sets, or nothing), the last `history_length`
(observation, action) pairs, the current observation and the admissible actions. The response's
action is the text inside its last `<action>...</action>`; a response without one, or with an
action that is not admissible, costs `invalid_penalty` (0.1, as verl-agent) and the episode
continues: the text still goes to the environment, which answers "Nothing happens." (ALFWorld)
or leaves the page as it was (shop).

Episode reward: ALFWorld 10 x won, shop the task score (WebShop's reward in [0, 1]); minus the
invalid-action penalties. `tetrad.agents.handoff` turns episodes into what a policy-gradient
update needs.
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

from tetrad.agents.skills import SkillLibrary
from tetrad.core.errors import UserError

ALFWORLD_PROMPT = """You are an expert agent operating in the ALFRED embodied environment.
Your task is to: {task}
{skill_context}Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_count} observations and the corresponding actions you took:
{action_history}
You are now at step {current_step} and your current observation is: {current_observation}
Your admissible actions of the current situation are: [{admissible_actions}].

Now it's your turn to take an action. Think briefly inside <think> </think>, then give exactly one admissible action inside <action> </action>."""

SHOP_PROMPT = """You are an expert autonomous agent operating in the WebShop e-commerce platform.
Your task is to: {task}
{skill_context}Prior to this step, you have already taken {step_count} step(s). Below are the most recent {history_count} observations and the corresponding actions you took:
{action_history}
You are now at step {current_step} and your current observation is: {current_observation}
Your admissible actions of the current situation are: [{admissible_actions}].

Now it's your turn to take an action. Think briefly inside <think> </think>, then give exactly one admissible action inside <action> </action>, e.g. <action>search[red running shoes]</action> or <action>click[buy now]</action>."""

PROMPTS = {"alfworld": ALFWORLD_PROMPT, "shop": SHOP_PROMPT}
SCORE_PARTS = ("r_type", "r_att", "r_option", "r_price")
EPISODE_REWARD_SCALE = {"alfworld": 10.0, "shop": 1.0}


# where each part of a prompt begins and ends: the templates above share these markers
SECTION_MARKERS = {
    "task": ("Your task is to: ", "\n"),
    "skills": ("Skills that help with this task:", "\nPrior to this step"),
    "history": ("the corresponding actions you took:\n", "\nYou are now at step"),
    "observation": ("your current observation is: ", "\nYour admissible actions"),
}


def prompt_sections(prompt: str) -> dict[str, str]:
    """The text of each part of a prompt `build_prompt` wrote: task line, skill block, history,
    current observation ("" for a part the prompt lacks)."""
    out = {}
    for name, (start, end) in SECTION_MARKERS.items():
        i = prompt.find(start)
        j = prompt.find(end, i + len(start)) if i >= 0 else -1
        out[name] = prompt[i + len(start):j] if j >= 0 else ""
    return out


class Policy(Protocol):
    def act(self, prompts: list[str], infos: list[dict]) -> list[str]: ...


def build_prompt(env_kind: str, task: str, observation: str, history: list[tuple[str, str]],
                 admissible: list[str], skill_context: str = "", history_length: int = 2) -> str:
    recent = history[-history_length:] if history_length > 0 else []
    start = len(history) - len(recent)
    lines = [f"[Observation {start + i + 1}: '{obs}', Action {start + i + 1}: '{act}']"
             for i, (obs, act) in enumerate(recent)]
    return PROMPTS[env_kind].format(
        task=task, skill_context=f"{skill_context}\n" if skill_context else "", step_count=len(history), history_count=len(recent),
        action_history="\n".join(lines) if lines else "(none)", current_step=len(history) + 1,
        current_observation=observation, admissible_actions=", ".join(f"'{a}'" for a in admissible))


def parse_action(response: str) -> str | None:
    """The action inside the response's last `<action>...</action>`, whitespace-normalised and
    lower-cased (both environments' commands are lower case); None if there is none."""
    found = re.findall(r"<action>(.*?)</action>", response, flags=re.IGNORECASE | re.DOTALL)
    if not found:
        return None
    action = " ".join(found[-1].split()).lower()
    return action or None


def is_admissible(action: str | None, admissible: list[str]) -> bool:
    if action is None:
        return False
    if action in admissible:
        return True
    # the shop's search box takes any non-empty query
    return "search[<query>]" in admissible and re.fullmatch(r"search\[.*\S.*\]", action) is not None


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


def rollout(envs, policy: Policy, tasks: list[dict], env_kind: str, use_skills: list[bool] | bool = False,
            skills: SkillLibrary | None = None, active: set[str] | None = None, max_steps: int = 50,
            history_length: int = 2, invalid_penalty: float = 0.1) -> list[Episode]:
    """Play `tasks` (each `{"game": ..., "seed": ...}`) in waves of `envs.n_envs` episodes.

    `use_skills[i]` says whether task i's prompts carry the skills (rendered from `skills`,
    restricted to the `active` set names); the same game with and without skills is how SkillC
    pairs rollouts.
    """
    if env_kind not in PROMPTS:
        raise ValueError(f"unknown environment kind {env_kind}")
    flags = [use_skills] * len(tasks) if isinstance(use_skills, bool) else list(use_skills)
    if len(flags) != len(tasks):
        raise ValueError("use_skills needs one flag per task")
    if any(flags) and skills is None:
        raise ValueError("use_skills needs a SkillLibrary")
    episodes: list[Episode] = []
    n = envs.n_envs
    for start in range(0, len(tasks), n):
        wave = tasks[start:start + n]
        episodes += _play_wave(envs, policy, wave, flags[start:start + n], env_kind, skills, active, max_steps,
                               history_length, invalid_penalty)
    return episodes


def _play_wave(envs, policy, wave, flags, env_kind, skills, active, max_steps, history_length,
               invalid_penalty) -> list[Episode]:
    n = envs.n_envs
    resets = envs.reset([wave[i] if i < len(wave) else None for i in range(n)])
    eps, obs, infos, histories, live = [], [], [], [], []
    for i, task in enumerate(wave):
        o, info = resets[i]
        ep = Episode(env_kind, task.get("game"), task.get("seed"), info.get("task_type", ""),
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
            ctx = skills.render(env_kind, eps[i].task_type, active) if flags[i] else ""
            prompts.append(build_prompt(env_kind, eps[i].instruction, obs[i], histories[i],
                                        infos[i]["admissible_commands"], ctx, history_length))
        t0 = time.perf_counter()
        responses = policy.act(prompts, [infos[i] for i in idx])
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
            valid = is_admissible(parsed[i], infos[i]["admissible_commands"])
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
                ep.score_parts = {k: float(info[k]) for k in SCORE_PARTS if k in info}
    for ep in eps:
        base = EPISODE_REWARD_SCALE[env_kind] * (float(ep.won) if env_kind == "alfworld" else ep.score)
        ep.reward = base - invalid_penalty * ep.n_invalid
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
    """A uniformly random admissible action (the shop's search box gets the instruction's words)."""

    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)

    def act(self, prompts: list[str], infos: list[dict]) -> list[str]:
        out = []
        for info in infos:
            action = self.rng.choice(info["admissible_commands"])
            if action == "search[<query>]":
                words = info["instruction"].split()
                action = f"search[{' '.join(self.rng.sample(words, min(4, len(words))))}]"
            out.append(f"<action>{action}</action>")
        return out


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


def take_grounded(episodes: list[Episode]) -> float | None:
    """The share of ALFWorld `take <object> <n> from ...` turns whose object is a word of the
    episode's task (every task type names its object): whether a policy picks up what it was
    asked for, rather than whatever lies in front of it. None without such turns."""
    takes = [(t.action.split(), e.instruction.split()) for e in episodes for t in e.turns
             if command_word(t.action) == "take" and len(t.action.split()) > 1]
    return sum(action[1] in task for action, task in takes) / len(takes) if takes else None


def option_grounded(episodes: list[Episode]) -> float | None:
    """The shop's `take_grounded`: the share of option clicks (`click[<value>]` for a value of
    the catalogue's option groups) whose value the instruction names. The goal names exactly one
    value per option group, so an expert scores 1.0. None without option clicks."""
    from tetrad.agents.shop import option_values

    values = option_values()
    clicks = [(m.group(1), e.instruction) for e in episodes for t in e.turns
              if (m := re.fullmatch(r"click\[(.+)\]", t.action or "")) and m.group(1) in values]
    return (sum(re.search(rf"(?<![\w.]){re.escape(v)}(?![\w.])", task) is not None for v, task in clicks) / len(clicks)
            if clicks else None)


def summarize(episodes: list[Episode]) -> dict[str, Any]:
    """Success and score per task type (the shop's: per category), with and without skills;
    invalid rate; seconds per step; the share of turns per command word (where a policy's steps
    go: a looping policy shows up here); `take_grounded` (ALFWorld), or for the shop
    `option_grounded`, the share of episodes that bought something and the mean reward parts of
    what they bought."""
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
        if eps[0].env_kind == "alfworld":
            out[label]["take_grounded"] = take_grounded(eps)
        elif eps[0].env_kind == "shop":
            bought = [e for e in eps if e.score_parts]
            out[label].update({
                "option_grounded": option_grounded(eps), "bought": len(bought) / len(eps),
                # what the bought products matched: type, attributes, options, price
                "score_parts": {k: sum(e.score_parts.get(k, 0.0) for e in bought) / len(bought)
                                for k in SCORE_PARTS} if bought else {}})
    return out
