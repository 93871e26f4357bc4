from pathlib import Path

import pytest
import torch
import yaml

from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.data.ctr_synthetic import SyntheticCTRConfig, synthetic_schema
from tetrad.ranking.compare import DEFAULT_ABLATIONS
from tetrad.ranking.data import iter_batches, select_features
from tetrad.ranking.heads import multitask_loss
from tetrad.ranking.models import (BACKBONES, ModelConfig, backbone_parameter_count, build_model, dense_parameter_count,
                                   head_parameter_count, resolve_config)
from tetrad.ranking.train import TrainConfig

REPO = Path(__file__).resolve().parents[2]
SYNTHETIC_FEATURES = select_features(synthetic_schema(SyntheticCTRConfig()))


def test_15m_preset_matches_the_paper_and_1b_builds_on_meta():
    m15 = build_model(ModelConfig(preset="15m"), SYNTHETIC_FEATURES, device="meta")
    cfg = resolve_config(ModelConfig(preset="15m"), SYNTHETIC_FEATURES)
    assert (cfg.layers, cfg.experts, cfg.tokens, cfg.width) == (4, 3, 12, 204)
    assert abs(dense_parameter_count(m15) - 15e6) / 15e6 < 0.10
    b1 = resolve_config(ModelConfig(preset="1b"), SYNTHETIC_FEATURES)
    assert (b1.layers, b1.experts, b1.tokens, b1.width) == (8, 4, 27, 756)
    n = dense_parameter_count(build_model(ModelConfig(preset="1b"), SYNTHETIC_FEATURES, device="meta"))
    assert 0.9e9 < n < 1.1e9


@pytest.mark.parametrize("preset", ["tiny", "15m", "1b"])
def test_backbones_are_matched_to_mtmixatts_and_heads_are_identical(preset):
    reference = build_model(ModelConfig(preset=preset), SYNTHETIC_FEATURES, device="meta")
    target, heads = backbone_parameter_count(reference), head_parameter_count(reference)
    for name in BACKBONES:
        model = build_model(ModelConfig(name=name, preset=preset), SYNTHETIC_FEATURES, device="meta")
        assert abs(backbone_parameter_count(model) - target) / target < 0.05, name
        assert head_parameter_count(model) == heads, name  # one common width before the heads
        assert dense_parameter_count(model) > backbone_parameter_count(model) + head_parameter_count(model)


def test_explicit_fields_win_over_the_preset_and_bad_names_are_user_errors():
    cfg = resolve_config(ModelConfig(preset="15m", layers=2), SYNTHETIC_FEATURES)
    assert cfg.layers == 2 and cfg.width == 204
    with pytest.raises(UserError, match="unknown model"):
        build_model(ModelConfig(name="dcn"), SYNTHETIC_FEATURES)
    with pytest.raises(UserError, match="unknown preset"):
        build_model(ModelConfig(preset="huge"), SYNTHETIC_FEATURES)
    with pytest.raises(UserError, match="unknown feature"):
        build_model(ModelConfig(grouping="manual", groups=[["nope"]] * 12), SYNTHETIC_FEATURES)


def test_command_line_overrides_apply_the_preset_and_the_size_matching():
    # `tetrad ranking train model.preset=15m` must build what ModelConfig(preset="15m") builds:
    # only the fields given on the command line count as set by the user
    for overrides, api in ((["model.preset=15m"], ModelConfig(preset="15m")),
                           (["model.name=rankmixer", "model.layers=3"], ModelConfig(name="rankmixer", layers=3))):
        from_cli = load_config(TrainConfig, None, overrides).model
        assert resolve_config(from_cli, SYNTHETIC_FEATURES) == resolve_config(api, SYNTHETIC_FEATURES), overrides
    assert resolve_config(load_config(TrainConfig, None, ["model.preset=15m"]).model, SYNTHETIC_FEATURES).layers == 4


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_model_fits_a_batch(name, small_log):
    path, _, features = small_log
    batch = next(iter_batches(path / "train", features, 64))
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hash_buckets=2_000), features)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        ctr, cvr = model(*batch.inputs())
        loss = multitask_loss(ctr, cvr, batch.click, batch.conversion) + model.aux_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert ctr.shape == cvr.shape == (64,)
    assert losses[-1] < 0.7 * losses[0], (name, losses[0], losses[-1])


def shipped_ablations() -> dict[str, dict]:
    """Every ablation `compare` runs by default or a shipped config asks for."""
    found = dict(DEFAULT_ABLATIONS)
    for path in (REPO / "configs" / "ranking").glob("*.yaml"):
        found.update(yaml.safe_load(path.read_text()).get("ablations") or {})
    return found


def test_every_ablation_switch_changes_the_models_outputs(small_log):
    path, _, features = small_log
    batch = next(iter_batches(path / "train", features, 32))
    variants = {**shipped_ablations(), "mixing=none": {"mixing": "none"}}
    assert {"sparse_moe=off", "norm=prenorm", "norm=postnorm", "shared_experts=0", "dense_gate=relu"} <= set(variants)
    torch.manual_seed(0)
    default = build_model(ModelConfig(), features).eval()
    base, reference = dense_parameter_count(default), default(*batch.inputs())[0]
    for name, v in variants.items():
        torch.manual_seed(0)  # same seed as the default: an ignored switch would give the same outputs
        model = build_model(ModelConfig(**v), features).eval()
        out = model(*batch.inputs())[0]
        assert out.shape == (32,) and not torch.allclose(out, reference), name
        if "shared_experts" in v or "sparse_moe" in v:
            assert dense_parameter_count(model) < base


def test_scenario_changes_mtmixatt_predictions(small_log):
    path, _, features = small_log
    batch = next(iter_batches(path / "train", features, 16))
    model = build_model(ModelConfig(), features).eval()
    cat, num, mh, scen = batch.inputs()
    with torch.no_grad():
        a = model(cat, num, mh, torch.zeros_like(scen))[0]
        b = model(cat, num, mh, torch.full_like(scen, 2))[0]
    assert not torch.allclose(a, b)
