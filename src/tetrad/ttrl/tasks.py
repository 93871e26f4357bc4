"""Test problems for TTRL: reasoning-gym generators and TTRL benchmark JSON files.

A `TaskSet` keeps prompts and ground-truth answers apart: the training path reads `prompts` (and
ids) only; `truths` go to evaluation and analysis. That split is what the ground-truth test checks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Literal

from tetrad.core.config import Config, NonNegativeInt, Seed
from tetrad.core.errors import UserError


@dataclass(frozen=True)
class TaskSet:
    ids: list[str]
    prompts: list[str]
    truths: list[str]
    name: str = ""

    def __post_init__(self):
        if not self.ids:
            raise UserError(f"task set {self.name or ''} is empty".replace("  ", " "))
        if not len(self.ids) == len(self.prompts) == len(self.truths):
            raise UserError("task set: ids, prompts and truths differ in length")
        if len(set(self.ids)) != len(self.ids):
            raise UserError(f"task set {self.name}: problem ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def truth_of(self) -> dict[str, str]:
        return dict(zip(self.ids, self.truths))


class TaskConfig(Config):
    """`source`: `reasoning_gym` (generator `task` with `knobs`, `size` problems from `seed`) or
    `benchmark` (a JSON file at `path`, the first `size` problems when size > 0).
    `prompt_style` for reasoning-gym: `expression` (the bare `4 - 1 =`, what the tiny arithmetic
    policies read) or `question` (reasoning-gym's sentence, for instruction-tuned models)."""

    source: Literal["reasoning_gym", "benchmark"] = "reasoning_gym"
    task: str = "chain_sum"
    knobs: dict = {"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 2}
    size: NonNegativeInt = 64
    seed: Seed = 1234
    path: str = ""
    prompt_style: Literal["expression", "question"] = "expression"
    suffix: str = ""  # appended to every prompt (e.g. " Put the final answer in \\boxed{}.")


def load_tasks(cfg: TaskConfig) -> TaskSet:
    if cfg.source == "benchmark":
        ts = load_benchmark(cfg.path, cfg.size)
    else:
        ts = reasoning_gym_tasks(cfg.task, cfg.size, cfg.seed, cfg.knobs, cfg.prompt_style)
    if cfg.suffix:
        ts = TaskSet(ts.ids, [p + cfg.suffix for p in ts.prompts], ts.truths, ts.name)
    return ts


def reasoning_gym_tasks(task: str, size: int, seed: int, knobs: dict | None = None,
                        prompt_style: str = "expression") -> TaskSet:
    import reasoning_gym

    if size < 1:
        raise UserError(f"task set size must be at least 1 (got {size})")
    try:
        ds = reasoning_gym.create_dataset(task, size=size, seed=seed, **(knobs or {}))
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise UserError(f"reasoning-gym task '{task}' with {knobs}: {e}") from None
    rows = list(ds)
    if prompt_style == "expression":
        missing = [r for r in rows if "expression" not in r["metadata"]]
        if missing:
            raise UserError(f"reasoning-gym task '{task}' has no expression; use prompt_style=question")
        prompts = [r["metadata"]["expression"] + " =" for r in rows]
    else:
        prompts = [r["question"] for r in rows]
    return TaskSet([f"{task}/{seed}/{i}" for i in range(len(rows))], prompts, [str(r["answer"]) for r in rows],
                   name=task)


def load_benchmark(path: str, size: int = 0) -> TaskSet:
    """A JSON list of `{"prompt", "answer", "id", ...}` as in the TTRL benchmark files."""
    if not path or not os.path.isfile(path):
        raise UserError(f"benchmark file not found: {path or '<empty tasks.path>'}")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"benchmark file {path} is not valid JSON ({e.__class__.__name__})") from None
    if not isinstance(data, list) or not data:
        raise UserError(f"benchmark file {path} must hold a non-empty JSON list of problems")
    for i, item in enumerate(data):
        missing = [k for k in ("prompt", "answer") if not isinstance(item, dict) or k not in item]
        if missing:
            raise UserError(f"benchmark file {path}: problem {i} lacks the field '{missing[0]}'")
        empty = [k for k in ("prompt", "answer") if not isinstance(item[k], (str, int, float)) or str(item[k]) == ""]
        if empty:  # null, a list or "" would train on the text "None", "[...]" or nothing
            raise UserError(f"benchmark file {path}: problem {i} has no text in '{empty[0]}'")
    data = data[:size] if size > 0 else data
    ids = [str(item.get("id", f"{os.path.basename(path)}/{i}")) for i, item in enumerate(data)]
    return TaskSet(ids, [str(d["prompt"]) for d in data], [str(d["answer"]) for d in data],
                   name=os.path.basename(path))
