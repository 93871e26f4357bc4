"""One object per environment kind: everything the rollout loop, behaviour cloning, evaluation
and SkillC need to know about an environment, so none of them branches on its name.

An `Environment` knows its turn prompt, its free-text command (the shop's search box) and how
candidates complete it, its reward scale and step cap, the metric its methods are ranked by, its
task types, how to build the games or goals of a split (`tasks`), how its expert plays a game
(`run_expert`) and the metrics of its own it adds to an evaluation's summary (`metrics`).

Adding an environment is one module that defines a subclass, plus its line in `KINDS` below:

    environment("shop").tasks("valid", 48, n_products=600).make_env()   # a ShopEnv over 48 goals
"""

from __future__ import annotations

import random
import re
from importlib import import_module
from typing import Any, ClassVar, Literal

from tetrad.core.errors import UserError

# the record of every past action, in the templates that show one ({action_record})
RECORD_SEPARATOR, NO_RECORD = "; ", "(none)"
# the registry: name -> "module:class", imported on first use (the engines are slow to import)
KINDS = {"alfworld": "tetrad.agents.alfworld_env:Alfworld", "shop": "tetrad.agents.shop:Shop"}
EnvName = Literal["alfworld", "shop"]


class TaskSet:
    """The games (or goals) of one split: a picklable constructor of an environment over all of
    them (`make_env`, for worker processes), and each game's task type."""

    def __init__(self, make_env, types: list[str]):
        self.make_env, self.types = make_env, types
        self._envs = None

    def __len__(self) -> int:
        return len(self.types)

    def envs(self, n: int):
        """`n` environments side by side (at most one per game), built once and reused: a shop
        environment indexes its catalogue when it is made."""
        from tetrad.agents.rollout import LocalEnvs

        if self._envs is None:
            self._envs = LocalEnvs([self.make_env() for _ in range(max(1, min(n, len(self))))])
        return self._envs


class Environment:
    name: ClassVar[str]
    prompt: ClassVar[str]  # the turn template (fields: see `build_prompt`)
    reward_scale: ClassVar[float]  # episode reward: scale x (won or score) - invalid-action penalties
    rewarded: ClassVar[Literal["won", "score"]]
    headline: ClassVar[Literal["success", "score"]]  # what validation gaps and comparisons rank by
    step_cap: ClassVar[int | None] = None  # the environment's own step limit (WebShop's 15)
    # an admissible command that takes free text ("search[<query>]"); a policy that ranks
    # candidates fills it with the instruction, one that writes text fills it with anything
    query_command: ClassVar[str | None] = None
    score_parts: ClassVar[tuple[str, ...]] = ()  # parts of the final score an episode keeps (the shop's r_type, ...)

    # ---- what every caller shares --------------------------------------------------------------
    def step_limit(self, requested: int) -> int:
        return min(requested, self.step_cap) if self.step_cap else requested

    def episode_reward(self, won: bool, score: float, n_invalid: int, invalid_penalty: float) -> float:
        base = float(won) if self.rewarded == "won" else score
        return self.reward_scale * base - invalid_penalty * n_invalid

    def build_prompt(self, task: str, observation: str, history: list[tuple[str, str]], admissible: list[str],
                     skill_context: str = "", history_length: int = 2) -> str:
        """The turn prompt: task, skills, the last `history_length` (observation, action) pairs,
        every action taken so far and the environment's notes (for the templates that show
        them), the observation and the admissible actions."""
        recent = history[-history_length:] if history_length > 0 else []
        start = len(history) - len(recent)
        lines = [f"[Observation {start + i + 1}: '{obs}', Action {start + i + 1}: '{act}']"
                 for i, (obs, act) in enumerate(recent)]
        return self.prompt.format(
            task=task, skill_context=f"{skill_context}\n" if skill_context else "", step_count=len(history),
            history_count=len(recent), action_history="\n".join(lines) if lines else "(none)",
            action_record=RECORD_SEPARATOR.join(act for _, act in history) if history else NO_RECORD,
            notes=self.notes(observation), current_step=len(history) + 1, current_observation=observation,
            admissible_actions=", ".join(f"'{a}'" for a in admissible))

    def _query_pattern(self) -> str:
        head, _, tail = self.query_command.partition("<query>")
        return re.escape(head) + r".*\S.*" + re.escape(tail)

    def is_admissible(self, action: str | None, admissible: list[str]) -> bool:
        if action is None:
            return False
        if action in admissible:
            return True
        return (self.query_command is not None and self.query_command in admissible
                and re.fullmatch(self._query_pattern(), action) is not None)

    def fill_query(self, text: str) -> str:
        return self.query_command.replace("<query>", text)

    def candidates(self, info: dict) -> list[str]:
        """The actions a policy that ranks candidates chooses among: the admissible commands,
        the free-text one filled with the instruction."""
        return [self.fill_query(info.get("instruction", "")) if a == self.query_command else a
                for a in info["admissible_commands"]]

    def as_candidate(self, action: str, info: dict) -> str:
        """An expert's action as such a policy can take it (the shop's expert searches with the
        goal's own words, the policy only with the instruction)."""
        if self.query_command and self.query_command in info["admissible_commands"] \
                and re.fullmatch(self._query_pattern(), action):
            return self.fill_query(info.get("instruction", ""))
        return action

    def random_action(self, info: dict, rng: random.Random) -> str:
        """A uniformly random admissible command; the free-text one gets up to 4 of the
        instruction's words."""
        action = rng.choice(info["admissible_commands"])
        if action == self.query_command:
            words = info["instruction"].split()
            action = self.fill_query(" ".join(rng.sample(words, min(4, len(words)))))
        return action

    # ---- what each environment defines ---------------------------------------------------------
    def task_types(self) -> list[str]:
        raise NotImplementedError

    def tasks(self, split: str, n: int, *, games: str = "", catalogue: str = "", n_products: int = 2000,
              seed: int = 0, task_types: list[str] | None = None, expert: bool = False, max_steps: int = 50,
              generate_into=None) -> TaskSet:
        """The games of `split`: ALFWorld's from the folder `games` (or `n` generated into
        `generate_into`), the shop's as `n` goals of the catalogue (`catalogue`, or `n_products`
        generated from `seed`)."""
        raise NotImplementedError

    def run_expert(self, env, game: int, seed: int = 0) -> dict[str, Any]:
        """One expert episode as `{game, task_type, instruction, won, steps: [{observation,
        admissible_commands, action}], ...}` (the behaviour-cloning format); `env` built with
        `expert=True`."""
        raise NotImplementedError

    def metrics(self, episodes: list) -> dict[str, Any]:
        """What an evaluation's summary adds for this environment (grounding, reward parts)."""
        return {}

    def notes(self, observation: str) -> str:
        """A line of notes on the current observation (for the templates that show `{notes}`)."""
        return ""


def environment(kind: str | Environment) -> Environment:
    """The environment object of a kind name (or the object itself)."""
    if isinstance(kind, Environment):
        return kind
    if kind not in KINDS:
        raise UserError(f"unknown environment '{kind}' (known: {', '.join(KINDS)})")
    module, _, cls = KINDS[kind].partition(":")
    return getattr(import_module(module), cls)()
