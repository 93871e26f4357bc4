"""Every shipped config refuses out-of-range settings at load time, with one line naming the key.

The rules below are written from what a setting *is* (a size, a learning rate, a seed, a
probability), not read from the types, so a new field without its bounds fails here. An int
field may be 0 only where 0 has a documented meaning, listed in ZERO_MEANS.
"""

import importlib
import pkgutil
import re
import types
from pathlib import Path
from typing import Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

import tetrad
from tetrad.core.config import Config, RunConfig, load_config
from tetrad.core.errors import UserError

CONFIGS = Path(__file__).parents[2] / "configs"

# int fields where 0 means something ("none", "all", "the default"), per class (or a base class)
ZERO_MEANS = {
    "agents.bc.BCConfig": {"history_length", "steps", "dagger_rounds"},
    "agents.evaluate.EvalConfig": {"episodes", "history_length", "workers"},
    "ranking.models.ModelConfig": {"ffn_hidden", "shared_experts", "topk_features", "scenario_shared_experts",
                                   "scenario_top_k", "adapter_rank"},
    "ranking.train.DataConfig": {"movielens_negatives"},
    "ranking.train.TrainConfig": {"steps", "eval_rows", "threads", "valid_rows", "bootstrap"},
    "ranking.compare.CompareConfig": {"lr_trial_steps"},
    "ttrl.tasks.TaskConfig": {"size"},
    "ttrl.recipe.TTRLConfig": {"sample_chunk", "eval_every"},
    "ttrl.pretrain.PretrainConfig": {"eval_every"},
    "ttrl.tracking.StopConfig": {"window"},
    "ttrl.guard.GuardConfig": {"mps_steady"},
    "skillc.recipe.SkillCConfig": {"history_length", "lora_rank", "skill0_stages"},
    "semantic_ids.train.QuantizerConfig": {"dead_code_window"},
    "semantic_ids.train.EvalConfig": {"valid_users"},
    "semantic_ids.train.TrainConfig": {"patience"},
    "semantic_ids.train.SasrecConfig": {"patience"},
}
PROBABILITY = re.compile(r"share|ratio|fraction|holdout|_beta$|^target_|^tau_mr$|^lambda\d$|theta|p_skip|^flip_rate$"
                         r"|^mix$|smoothing|^stay$|entropy_target|dropout")
SIDE_BY_SIDE = {"experts", "shared_experts", "moe_experts", "scenario_shared_experts", "n_envs", "workers",
                "dagger_envs", "threads"}
NON_EMPTY = {"ks", "seeds", "variants", "methods", "datasets", "head_hidden"}

# which class reads each shipped YAML
YAML_CLASSES = [
    ("agents/bc*.yaml", "tetrad.agents.bc.BCConfig"),
    ("agents/eval_*.yaml", "tetrad.agents.evaluate.EvalConfig"),
    ("ranking/compare*.yaml", "tetrad.ranking.compare.CompareConfig"),
    ("ranking/mtmixatt_*.yaml", "tetrad.ranking.train.TrainConfig"),
    ("sid/study*.yaml", "tetrad.semantic_ids.study.StudyConfig"),
    ("sid/*.yaml", "tetrad.semantic_ids.train.SidConfig"),
    ("skillc/compare*.yaml", "tetrad.skillc.compare.CompareConfig"),
    ("skillc/*.yaml", "tetrad.skillc.recipe.SkillCConfig"),
    ("ttrl/compare*.yaml", "tetrad.ttrl.compare.CompareConfig"),
    ("ttrl/pretrain.yaml", "tetrad.ttrl.pretrain.PretrainConfig"),
    ("ttrl/*.yaml", "tetrad.ttrl.recipe.TTRLConfig"),
]


def shipped_config_classes() -> list[type[Config]]:
    for module in pkgutil.walk_packages(tetrad.__path__, "tetrad."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    found, todo = set(), [Config]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return sorted((c for c in found if c.__module__.startswith("tetrad.")), key=lambda c: c.__module__ + c.__name__)


def _qualname(cls: type) -> str:
    return f"{cls.__module__.removeprefix('tetrad.')}.{cls.__name__}"


def _kind(annotation):
    """The annotation without `| None`."""
    if get_origin(annotation) in (Union, types.UnionType):
        others = [a for a in get_args(annotation) if a is not type(None)]
        return others[0] if len(others) == 1 else annotation
    return annotation


def bad_values(cls: type[Config], name: str) -> list[str]:
    """Override values (YAML text) that field `name` of `cls` must refuse."""
    kind = _kind(cls.model_fields[name].annotation)
    zero_ok = any(name in ZERO_MEANS.get(_qualname(base), ()) for base in cls.__mro__)
    bad = []
    if name == "seed" or name.endswith("_seed"):
        bad += ["-1", str(2**32), "true"]
    elif kind is int:
        bad += ["-2", "true", "on"] + ([] if zero_ok else ["0"])
    elif kind is float:
        bad += [".nan", ".inf", "-.inf", "true"]
        if name == "lr" or name.endswith("_lr"):
            bad += ["0", "-1e-3"]
        if "temperature" in name:
            bad += ["-1"]
        if name == "top_p":
            bad += ["0", "1.5"]
        if PROBABILITY.search(name):
            bad += ["-0.1", "1.5"]
    elif kind is bool:
        bad += ["1", "maybe"]
    elif get_origin(kind) is list and _kind(get_args(kind)[0]) is int:
        bad += ["[true]", "[-2]"] + ([] if zero_ok or name.endswith("seeds") else ["[0]"])
        if name.endswith("seeds"):
            bad += ["[-1]", f"[{2**32}]"]
    if name in SIDE_BY_SIDE:
        bad += ["1000000"]
    if name in NON_EMPTY:
        bad += ["{}" if get_origin(kind) is dict else "[]"]
    if name == "name" and issubclass(cls, RunConfig):
        bad += ["../escape", "/tmp", "a/b", ".."]
    return bad


def _refusals(cls: type[Config], path: Path | None, key: str, section: type[Config], name: str) -> list[str]:
    problems = []
    for value in bad_values(section, name):
        try:
            load_config(cls, path, [f"{key}={value}"])
        except UserError as e:
            if f"config key '{key}" not in str(e) or "\n" in str(e):
                problems.append(f"{cls.__name__} {path and path.name} {key}={value}: {e}")
        else:
            problems.append(f"{cls.__name__} {path and path.name} {key}={value}: accepted")
    return problems


def _yaml_fields(cls: type[Config], data: dict, prefix: str = ""):
    """(dotted key, section class, field name) of each setting a YAML file sets in a typed section."""
    for name, value in data.items():
        field = cls.model_fields.get(name)
        if field is None:
            continue
        kind = _kind(field.annotation)
        if isinstance(value, dict) and isinstance(kind, type) and issubclass(kind, BaseModel):
            yield from _yaml_fields(kind, value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", cls, name


def test_every_shipped_config_refuses_out_of_range_settings_in_one_line():
    classes = shipped_config_classes()
    assert len(classes) > 30
    problems = []
    for cls in classes:
        try:
            defaults = cls()
        except ValidationError:  # needs its own data (a skill file's schema): no defaults to start from
            continue
        try:
            cls.model_validate(defaults.model_dump())  # pydantic does not check defaults by itself
        except ValidationError as e:
            problems.append(f"{cls.__name__} defaults: {e}")
        for name in cls.model_fields:
            problems += _refusals(cls, None, name, cls, name)
    by_name = {f"{c.__module__}.{c.__name__}": c for c in classes}
    yamls = sorted(CONFIGS.rglob("*.yaml"))
    assert len(yamls) > 30
    for path in yamls:
        rel = path.relative_to(CONFIGS)
        cls = by_name[next(name for pattern, name in YAML_CLASSES if rel.match(pattern))]
        load_config(cls, path)  # every shipped value is in range
        for key, section, name in _yaml_fields(cls, yaml.safe_load(path.read_text())):
            problems += _refusals(cls, path, key, section, name)
    assert not problems, f"{len(problems)} settings not refused in one line:\n" + "\n".join(problems[:40])
