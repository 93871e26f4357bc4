import pytest

from tetrad.core.config import Config, RunConfig, apply_overrides, load_config
from tetrad.core.errors import UserError


class Model(Config):
    width: int = 64
    layers: list[int] = [32, 16]
    norm: str = "post"


class Recipe(RunConfig):
    lr: float = 1e-3
    model: Model = Model()


def test_yaml_then_overrides_nested_and_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.1\nmodel:\n  width: 8\n")
    cfg = load_config(Recipe, path, ["model.layers=[4, 2]", "resume=true", "lr=3e-4", "name=x"])
    assert cfg.lr == 3e-4 and cfg.model.width == 8 and cfg.model.layers == [4, 2]
    assert cfg.resume is True and cfg.name == "x" and cfg.model.norm == "post"


@pytest.mark.parametrize("override,fragment", [
    ("lrr=1", "unknown config key 'lrr'"),
    ("model.depth=3", "unknown config key 'model.depth'"),
    ("model.width=wide", "config key 'model.width'"),
    ("seed=1.5", "config key 'seed'"),
    ("model.layers=[a]", "config key 'model.layers.0'"),
    ("lr", "not of the form key=value"),
    ("lr.x=1", "config key 'lr'"),
])
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(UserError, match=fragment) as e:
        load_config(Recipe, None, [override])
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(Recipe, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [1, 2\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(Recipe, bad)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x97 lr")
    with pytest.raises(UserError, match="is not text"):
        load_config(Recipe, binary)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="mapping"):
        load_config(Recipe, listy)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("model:\n  heads: 4\n")
    with pytest.raises(UserError, match="unknown config key 'model.heads'"):
        load_config(Recipe, unknown)


def test_overrides_do_not_mutate_input():
    data = {"model": {"width": 1}}
    apply_overrides(data, ["model.width=2"])
    assert data == {"model": {"width": 1}}


class Tuned(RunConfig):
    model: Model = Model(width=8, norm="pre")


def test_partial_section_override_keeps_the_default_instance(tmp_path):
    cfg = load_config(Tuned, None, ["model.layers=[2]"])
    assert (cfg.model.width, cfg.model.norm, cfg.model.layers) == (8, "pre", [2])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  norm: post\n")
    assert load_config(Tuned, path).model.width == 8
    with pytest.raises(UserError, match="unknown config key 'model.depth'"):
        load_config(Tuned, None, ["model.depth=1"])


def test_partial_section_override_marks_only_chosen_fields_as_set():
    # Recipes let explicit fields win over presets by reading model_fields_set: a field neither the
    # user nor the default instance chose must stay unset.
    cfg = load_config(Tuned, None, ["model.layers=[2]"])
    assert cfg.model.model_fields_set == {"width", "norm", "layers"}
    assert load_config(Recipe, None, ["model.norm=pre"]).model.model_fields_set == {"norm"}
