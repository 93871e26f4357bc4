"""Typed configs: YAML files plus `key=value` command-line overrides.

Every recipe declares its config as a subclass of `Config` (a pydantic model that
forbids unknown keys) and loads it with `load_config`. Override values are parsed as
YAML, so `lr=3e-4`, `resume=true` and `layers=[64,32]` arrive typed; nested keys use
dots (`model.width=128`). Any mistake raises `UserError` with one line naming the key.

Bounds live in the field types, from the aliases below, so every recipe refuses the same nonsense
(a zero batch size, a NaN learning rate, a negative seed) at load time, in the same words, before
it reaches `%`, `//` or torch. Every float must be finite, and numbers and booleans are not
interchangeable: YAML reads `on`/`yes`/`true` as True, which pydantic alone would take as 1.
"""

from __future__ import annotations

import os
import types
from typing import Annotated, Any, Iterable, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from tetrad.core.errors import UserError


# Processes, threads or environments side by side, or experts built side by side: far beyond any
# machine this runs on, low enough that a typo fails at load instead of exhausting the machine.
MAX_PARALLEL = 1024

PositiveInt = Annotated[int, Field(ge=1)]  # sizes, counts, intervals (`%` and `//` take them)
NonNegativeInt = Annotated[int, Field(ge=0)]  # counts where 0 has a documented meaning ("none", "all")
Parallel = Annotated[int, Field(ge=1, le=MAX_PARALLEL)]
ParallelOrZero = Annotated[int, Field(ge=0, le=MAX_PARALLEL)]  # 0: in this process, or the library's default
PositiveFloat = Annotated[float, Field(gt=0.0)]  # learning rates, clipping, scales
NonNegativeFloat = Annotated[float, Field(ge=0.0)]  # temperatures (0: greedy), coefficients, penalties
Share = Annotated[float, Field(ge=0.0, le=1.0)]  # probabilities, ratios, fractions
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what NumPy's seeding takes


# a folder name may have 255 bytes; recipes name files and sub-runs after their run (`<name>-valid`,
# `<name>-pretrain`), so a run name keeps room for that
MAX_NAME_LENGTH = 128


def plain_name(name: str) -> str:
    """A run's name is one folder below `<root>/<system>/`, so its files cannot land elsewhere."""
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError("a run name must be a plain folder name (no '/', not '..', not absolute)")
    if len(name.encode()) > MAX_NAME_LENGTH:
        raise ValueError(f"a run name may have at most {MAX_NAME_LENGTH} bytes (got {len(name.encode())})")
    return name


class Config(BaseModel):
    """Base of every config: unknown keys are errors, assignments are validated, floats are finite,
    and numbers and booleans are kept apart."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=(), allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        _check_scalar(cls.model_fields[info.field_name].annotation, value)
        return value


def _check_scalar(annotation: Any, value: Any) -> None:
    """Refuse a boolean for an int or float (and in lists of them), and anything but a boolean for a bool."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        _check_scalar(args[0], value)
    elif origin in (Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if value is not None and len(others) == 1:
            _check_scalar(others[0], value)
    elif origin is list and isinstance(value, list):
        for item in value:
            _check_scalar(args[0], item)
    elif annotation is bool and not isinstance(value, bool):
        raise ValueError("expected true or false")
    elif annotation in (int, float) and isinstance(value, bool):
        raise ValueError("expected a number, not true/false")


class RunConfig(Config):
    """Fields every recipe that writes a run directory shares."""

    name: str = "default"
    seed: Seed = 0
    root: str = "runs"
    resume: bool = False

    @field_validator("name")  # also where a subclass gives `name` its own default
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return plain_name(name)


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
    except UnicodeDecodeError:
        raise UserError(f"config file {path} is not text (UTF-8)") from None
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


def validate_section(cls: type[C], data: Any, key: str) -> C:
    """A `cls` from a section a config holds as a plain mapping (checked where it is used, as
    `model` of `tetrad agents eval`); a mistake is a `UserError` naming `key.<field>`."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise UserError(describe_validation_error(e, prefix=f"{key}.")) from None


def describe_validation_error(e: ValidationError, prefix: str = "") -> str:
    """One line for the first problem in a pydantic error, naming the dotted key (after `prefix`)."""
    errors = e.errors()
    first = errors[0]
    key = prefix + ".".join(str(p) for p in first["loc"]) if first["loc"] else prefix.rstrip(".") or "<root>"
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
