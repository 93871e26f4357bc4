"""The skill library: text guidance per environment and task type, rendered into prompts.

Skill files are YAML (one skill set per file), validated on load:

    name: heat-then-place                      # unique
    environment: alfworld                      # alfworld | shop | any
    task_type: pick_heat_then_place_in_recep   # an ALFWorld task type or a shop category; absent = general
    skills:
      - title: Heat with the microwave
        principle: Take the object, go to the microwave and ...
        when_to_apply: Tasks that ask for a hot object ...

Items follow SkillRL's `{title, principle, when_to_apply}`; sets follow SKILL0's layout (general
rules plus one set per task type). A set may instead be keyed by the object a task names
(`task_object: mug`): it comes along when that word is in the instruction. A file may hold a list
of sets. The library shipped in `tetrad/agents/skills/` has a general set, an ALFWorld set, one
per ALFWorld task type, one per shop category, and where each kind of ALFWorld object is kept
(`alfworld/where_objects_are.yaml`, the receptacles the game generator places it in:
knowledge a policy needs to search well and cannot read off the screen). `render` gives the
text for a prompt's `{skill_context}` slot; with skills off, the slot is empty. A set can be
withdrawn by name (`active=`), which is how a curriculum prunes skills.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from tetrad.agents.environments import EnvName
from tetrad.core.config import Config, describe_validation_error
from tetrad.core.errors import UserError

BUILTIN = Path(__file__).parent / "skills"


class Skill(Config):
    title: str = Field(min_length=1)
    principle: str = Field(min_length=1)
    when_to_apply: str = Field(min_length=1)


class SkillSet(Config):
    name: str = Field(min_length=1)
    environment: Literal[EnvName, "any"]
    task_type: str | None = None
    task_object: str | None = None  # the set applies to tasks whose instruction names this word
    skills: list[Skill] = Field(min_length=1)


def known_task_types(name: str) -> set[str]:
    from tetrad.agents.environments import environment

    return set() if name == "any" else set(environment(name).task_types())


def load_skill_file(path: Path) -> list[SkillSet]:
    """The skill sets of one file: a mapping (one set) or a list of them."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        raise UserError(f"skill file {path} is not valid YAML") from None
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise UserError(f"skill file {path} must hold a mapping or a list of mappings")
    sets = []
    for item in items:
        try:
            skill_set = SkillSet.model_validate(item)
        except ValidationError as e:
            raise UserError(f"skill file {path}: {describe_validation_error(e).replace('config key', 'field')}") from None
        if skill_set.task_type is not None and skill_set.task_type not in known_task_types(skill_set.environment):
            raise UserError(f"skill file {path}: unknown task type '{skill_set.task_type}' "
                            f"for environment {skill_set.environment}")
        sets.append(skill_set)
    return sets


class SkillLibrary:
    def __init__(self, sets: list[SkillSet]):
        names = [s.name for s in sets]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise UserError(f"two skill sets are named '{dup}'")
        self.sets = {s.name: s for s in sets}

    @classmethod
    def load(cls, root: str | Path | None = None) -> "SkillLibrary":
        """Every `*.yaml` under `root` (default: the library shipped with tetrad)."""
        root = Path(root) if root is not None else BUILTIN
        if not root.is_dir():
            raise UserError(f"skill folder not found: {root}")
        files = sorted(root.rglob("*.yaml"))
        if not files:
            raise UserError(f"no skill files (*.yaml) under {root}")
        return cls([skill_set for f in files for skill_set in load_skill_file(f)])

    def for_task(self, environment: str, task_type: str, active: set[str] | None = None,
                 instruction: str = "") -> list[SkillSet]:
        """General sets first (any environment, then this one), then the sets of the objects the
        instruction names, then the task type's sets."""
        words = set(re.findall(r"[a-z0-9]+", instruction.lower()))
        chosen = [s for s in self.sets.values()
                  if (active is None or s.name in active)
                  and (s.environment in ("any", environment))
                  and (s.task_type is None or s.task_type == task_type)
                  and (s.task_object is None or s.task_object in words)]
        return sorted(chosen, key=lambda s: (s.task_type is not None, s.task_object is not None,
                                             s.environment != "any", s.name))

    def task_sets(self, environment: str) -> dict[str, str]:
        """task type -> name of its skill set (what a curriculum withdraws one by one)."""
        return {s.task_type: s.name for s in self.sets.values()
                if s.environment == environment and s.task_type is not None}

    def render(self, environment: str, task_type: str, active: set[str] | None = None, instruction: str = "") -> str:
        sets = self.for_task(environment, task_type, active, instruction)
        if not sets:
            return ""
        lines = ["Skills that help with this task:"]
        for s in sets:
            lines += [f"- {k.title}: {k.principle} (When: {k.when_to_apply})" for k in s.skills]
        return "\n".join(lines)
