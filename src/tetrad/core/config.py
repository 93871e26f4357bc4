"""Typed configs: YAML files plus `key=value` command-line overrides.

Every recipe declares its config as a subclass of `Config` (a pydantic model that
forbids unknown keys) and loads it with `load_config`. Override values are parsed as
YAML, so `lr=3e-4`, `resume=true` and `layers=[64,32]` arrive typed; nested keys use
dots (`model.width=128`). Any mistake raises `UserError` with one line naming the key.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tetrad.core.errors import UserError


class Config(BaseModel):
    """Base of every config: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class RunConfig(Config):
    """Fields every recipe that writes a run directory shares."""

    name: str = "default"
    seed: int = 0
    root: str = "runs"
    resume: bool = False


C = TypeVar("C", bound=Config)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping; a missing, unparsable or non-mapping file is a `UserError`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {path}")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of keys to values")
    return data


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of `data` with each `dotted.key=value` override set (value parsed as YAML)."""
    data = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"override '{item}' is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"config key '{'.'.join(parts[: i + 1])}' is not a section, cannot set '{key}'")
            node = child
        node[parts[-1]] = value
    return data


def load_config(cls: type[C], path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> C:
    """Build a `cls` from an optional YAML file and `key=value` overrides, validated."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, overrides)
    for name, field in cls.model_fields.items():
        if isinstance(field.default, BaseModel) and isinstance(data.get(name), dict):
            data[name] = _fill_section(data[name], field.default)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise UserError(describe_validation_error(e)) from None


def _fill_section(partial: dict[str, Any], default: BaseModel) -> dict[str, Any]:
    """A section the user set only partly keeps the rest of its *default instance*.

    Without this, `train.steps=10` against a default `Train(steps=5, lr=0.1)` would rebuild the
    section from `Train`'s class defaults and silently drop `lr=0.1`. Only the fields the default
    instance set explicitly are carried over, so `model_fields_set` of the result still says which
    fields were chosen (by the user or the default instance) and which are class defaults — recipes
    read it to let explicit fields win over presets.
    """
    full = {name: getattr(default, name) for name in default.model_fields_set}
    for key, value in partial.items():
        current = getattr(default, key) if key in type(default).model_fields else None
        full[key] = _fill_section(value, current) if isinstance(current, BaseModel) and isinstance(value, dict) else value
    return full


def describe_validation_error(e: ValidationError) -> str:
    """One line for the first problem in a pydantic error, naming the dotted key."""
    errors = e.errors()
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    if first["type"] == "extra_forbidden":
        line = f"unknown config key '{key}'"
    elif first["type"] == "missing":
        line = f"config key '{key}' is required"
    else:
        line = f"config key '{key}': {first['msg']} (got {first.get('input')!r})"
    if len(errors) > 1:
        line += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return line


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}
