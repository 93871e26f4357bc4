"""Behaviour-cloning data: the expert's episodes, and the examples the scoring policy learns from.

An expert episode is `{game, task_type, instruction, won, steps: [{observation,
admissible_commands, action}]}` (`Environment.run_expert`; `tetrad agents expert-trajectories`
writes ALFWorld's). Each step becomes one example: the prompt exactly as the rollout loop builds
it (`Environment.build_prompt`), the expert's action and the candidates the scoring policy ranks
(`Environment.candidates`); `encode_examples` turns them into token ids (and exact-match codes)
as `ActionScoringPolicy` encodes them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tetrad.agents.environments import Environment, TaskSet, environment
from tetrad.agents.llm_policy import action_response, encode_prompt, encode_response
from tetrad.agents.match import match_codes
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_text
from tetrad.core.progress import progress


def load_trajectories(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"expert trajectories not found: {path}")
    episodes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ep = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {n} is not JSON") from None
        missing = [k for k in ("task_type", "instruction", "steps") if k not in ep]
        if missing:
            raise UserError(f"{path} line {n}: an expert episode needs '{missing[0]}'")
        if not isinstance(ep["steps"], list) or not all(isinstance(step, dict) for step in ep["steps"]):
            raise UserError(f"{path} line {n}: an episode's 'steps' must be a list of mappings")
        for k, step in enumerate(ep["steps"]):
            missing = [key for key in ("observation", "admissible_commands", "action") if key not in step]
            if missing:
                raise UserError(f"{path} line {n}: step {k} of the episode needs '{missing[0]}'")
        episodes.append(ep)
    if not episodes:
        raise UserError(f"no expert episodes in {path}")
    return episodes


def play_expert(env: str | Environment, tasks: TaskSet, seed: int) -> list[dict]:
    """Every game of `tasks` (built with `expert=True`) played once by the expert, game `g` with
    seed `seed + g`, won or not."""
    env, instance = environment(env), tasks.make_env()
    return [env.run_expert(instance, game, seed=seed + game)
            for game in progress(range(len(tasks)), desc="expert episodes")]


def write_episodes(episodes: list[dict], out: str | Path) -> None:
    atomic_write_text(out, "".join(json.dumps(ep) + "\n" for ep in episodes))


def expert_episodes(env: str | Environment, tasks: TaskSet, out: Path, seed: int) -> list[dict]:
    """The expert's won episodes of `tasks` (`play_expert`), written to `out` as JSON lines (and
    read back from it when it exists: a resumed run reuses them)."""
    if not out.is_file():
        write_episodes([ep for ep in play_expert(env, tasks, seed) if ep["won"]], out)
    return load_trajectories(out)


def split_episodes(episodes: list, holdout: float, seed: int) -> tuple[list, list]:
    """(train, held out): `holdout` of the episodes, drawn by the seed; at least one of each when
    holdout > 0 and there are two episodes or more."""
    order = list(range(len(episodes)))
    random.Random(seed).shuffle(order)
    n_held = min(max(round(holdout * len(episodes)), int(holdout > 0)), len(episodes) - 1)
    held = set(order[:n_held])
    return ([e for i, e in enumerate(episodes) if i not in held], [e for i, e in enumerate(episodes) if i in held])


@dataclass
class BCExample:
    prompt: str
    action: str  # the expert's
    candidates: list[str]  # the admissible commands, as the scoring policy ranks them

    @property
    def response(self) -> str:
        return action_response(self.action)


def bc_examples(episodes: list[dict], skill_flags: list[bool], library, history_length: int,
                env: str | Environment = "alfworld") -> list[BCExample]:
    """One example per expert step, the prompt as the rollout loop builds it."""
    env = environment(env)
    examples = []
    for ep, flag in zip(episodes, skill_flags):
        context = library.render(env.name, ep["task_type"], instruction=ep["instruction"]) if flag else ""
        history: list[tuple[str, str]] = []
        for step in ep["steps"]:
            prompt = env.build_prompt(ep["instruction"], step["observation"], history,
                                      step["admissible_commands"], context, history_length)
            candidates = env.candidates({**step, "instruction": ep["instruction"]})
            if step["action"] not in candidates:
                raise UserError(f"expert action '{step['action']}' of {ep.get('game', 'an episode')} is not "
                                "among its admissible commands")
            examples.append(BCExample(prompt, step["action"], candidates))
            history.append((step["observation"], step["action"]))
    return examples


@dataclass
class EncodedExample:
    action: str
    prompt: list[int]
    response: list[int]
    candidates: list[list[int]]
    target: int  # index of the expert's action among the candidates
    # per candidate, per token: exact-match codes (`tetrad.agents.match`), for a model with features
    features: list[list[int]] | None = None


def encode_examples(examples: list[BCExample], tok, features: bool = False) -> list[EncodedExample]:
    """Token ids as `ActionScoringPolicy` (chat=True, as the evaluation runs it) encodes them, and
    with `features` the candidates' exact-match codes as it computes them."""
    responses: dict[str, list[int]] = {}

    def response_ids(action: str) -> list[int]:
        if action not in responses:
            responses[action] = encode_response(tok, action_response(action))
        return responses[action]

    out = []
    for ex in examples:
        candidates = [response_ids(c) for c in ex.candidates]
        out.append(EncodedExample(ex.action, encode_prompt(tok, ex.prompt), response_ids(ex.action), candidates,
                                  ex.candidates.index(ex.action),
                                  match_codes(ex.prompt, ex.candidates, candidates, tok) if features else None))
    return out


