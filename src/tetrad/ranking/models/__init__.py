"""Every ranking model: the shared front end, one backbone, the shared multi-task heads.

`build_model(cfg, features)` is the one entry point. `ModelConfig` is one config shape for
all models (FuxiCTR-style): each backbone reads the knobs it needs. Named presets set the
shape ("tiny", "15m", "1b"); for baselines a size knob (`SIZE_KNOB`) is then searched so
their *backbone* parameter count matches MTmixAtt's at the same preset on the same features.
Fields set explicitly in the config win over the preset.

Every backbone's output is reduced by a linear map to one common width (`out_width`) before
the heads, so the heads are the same size for every model and the models differ only in the
backbone. Parameter counts: `backbone_parameter_count` (the backbone and its reduction),
`head_parameter_count` (the CTR and CVR towers) and `dense_parameter_count` (everything but
the embedding tables, the usual way ranking papers size their models).
"""

from __future__ import annotations

import math
from typing import Annotated, Callable, Literal

import torch
from pydantic import Field
from torch import nn

from tetrad.core.config import Config, NonNegativeFloat, NonNegativeInt, Parallel, ParallelOrZero, PositiveInt, Seed
from tetrad.core.errors import UserError
from tetrad.ranking.data import FeatureSet
from tetrad.ranking.heads import MultiTaskHeads
from tetrad.ranking.models.dnn import DNN
from tetrad.ranking.models.hiformer import HiFormer
from tetrad.ranking.models.mlp_mixer import MLPMixer
from tetrad.ranking.models.mtmixatt import MTmixAtt
from tetrad.ranking.models.multitask import MMoE, PLE
from tetrad.ranking.models.rankmixer import RankMixer
from tetrad.ranking.models.transformer import Transformer
from tetrad.ranking.models.wukong import WuKong
from tetrad.ranking.tokenizers import FeatureEmbedding


class ModelConfig(Config):
    name: str = "mtmixatt"
    preset: str = "tiny"
    embedding_dim: PositiveInt = 16
    hash_buckets: PositiveInt = 50_000
    tokens: PositiveInt = 12
    width: PositiveInt = 48
    # the blocks are built one by one, so an absurd depth would run for hours before memory ran out
    layers: Annotated[int, Field(ge=1, le=1024)] = 2
    heads: PositiveInt = 4
    ffn_hidden: NonNegativeInt = 16  # expert / FFN hidden width (0: 2 x width, for feature-token models)
    experts: Parallel = 3
    shared_experts: ParallelOrZero = 1
    # MTmixAtt
    topk_features: NonNegativeInt = 0  # 0: max(2, ceil(n_features / tokens)); learned grouping needs >= 2
    grouping: Literal["auto", "manual", "random"] = "auto"
    groups: list[list[str]] = []  # manual grouping; empty: contiguous groups of the same field family
    grouping_seed: Seed = 0
    mixing: Literal["orthogonal", "zero", "transpose", "none"] = "orthogonal"
    dense_gate: Literal["sigmoid", "relu", "none"] = "sigmoid"
    sparse_moe: bool = True
    scenario_shared_experts: ParallelOrZero = 2
    scenario_top_k: NonNegativeInt = 1  # 0: only the own scenario's expert (and the shared ones)
    gamma: NonNegativeFloat = 1.0
    norm: Literal["postnorm_r", "postnorm", "prenorm"] = "postnorm_r"
    # baselines
    compression: PositiveInt = 40  # WuKong
    lowrank: PositiveInt = 64  # HiFormer
    moe_experts: Parallel = 4  # RankMixer sparse-MoE variant
    # heads and loss
    out_width: PositiveInt = 64  # every backbone's output is reduced to this width before the heads
    head_hidden: Annotated[list[PositiveInt], Field(min_length=1)] = [64, 32]
    adapter_rank: NonNegativeInt = 4
    l1_coef: NonNegativeFloat = 1e-3  # ReLU-gate L1 penalty (RankMixer MoE, relu dense-gate ablation)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "mtmixatt": MTmixAtt,
    "rankmixer": RankMixer,
    "rankmixer_moe": lambda n, e, s, cfg: RankMixer(n, e, s, cfg, moe_experts=cfg.moe_experts),
    "dnn": DNN,
    "transformer": Transformer,
    "mlp_mixer": MLPMixer,
    "hiformer": HiFormer,
    "wukong": WuKong,
    "mmoe": MMoE,
    "ple": PLE,
}

# What every model shares at a preset: the embedding width and everything after the backbone
# (the common output width and the heads), so that heads are identical across models.
PRESET_SHARED: dict[str, dict] = {
    "tiny": {},
    "15m": {"out_width": 256, "head_hidden": [256, 128], "adapter_rank": 8},
    "1b": {"out_width": 1024, "head_hidden": [1024, 512], "adapter_rank": 16, "embedding_dim": 64},
}

# Backbone shape of each preset. MTmixAtt's "15m" and "1b" are the paper's (layers, experts,
# tokens, width); ffn_hidden is chosen so the dense count lands on the paper's size for the
# synthetic log's 43 features. Baselines take their shape from here and search their size knob
# to match MTmixAtt's backbone.
PRESETS: dict[str, dict[str, dict]] = {
    "tiny": {
        "mtmixatt": {},
        "rankmixer": {}, "rankmixer_moe": {}, "dnn": {"layers": 3}, "transformer": {"ffn_hidden": 0},
        "mlp_mixer": {"ffn_hidden": 0}, "hiformer": {"ffn_hidden": 0, "lowrank": 32}, "wukong": {"compression": 16},
        "mmoe": {"experts": 4, "width": 64}, "ple": {"experts": 1, "shared_experts": 2, "width": 64},
    },
    "15m": {
        "mtmixatt": {"layers": 4, "experts": 3, "tokens": 12, "width": 204, "heads": 4, "ffn_hidden": 78},
        "rankmixer": {"layers": 4, "tokens": 12, "width": 204},
        "rankmixer_moe": {"layers": 4, "tokens": 12, "width": 204},
        "dnn": {"layers": 4},
        "transformer": {"layers": 4, "ffn_hidden": 0, "heads": 4},
        "mlp_mixer": {"layers": 4, "ffn_hidden": 0},
        "hiformer": {"layers": 3, "ffn_hidden": 0, "heads": 4, "lowrank": 128},
        "wukong": {"layers": 4, "tokens": 32, "compression": 40},
        "mmoe": {"experts": 8, "width": 256},
        "ple": {"layers": 2, "experts": 2, "shared_experts": 2, "width": 256},
    },
    "1b": {
        "mtmixatt": {"layers": 8, "experts": 4, "tokens": 27, "width": 756, "heads": 4, "ffn_hidden": 299},
        "rankmixer": {"layers": 8, "tokens": 27, "width": 756},
        "rankmixer_moe": {"layers": 8, "tokens": 27, "width": 756},
        "dnn": {"layers": 8},
        "transformer": {"layers": 8, "ffn_hidden": 0, "heads": 8},
        "mlp_mixer": {"layers": 8, "ffn_hidden": 0},
        "hiformer": {"layers": 8, "ffn_hidden": 0, "heads": 8, "lowrank": 512},
        "wukong": {"layers": 8, "tokens": 64, "compression": 64},
        "mmoe": {"experts": 8, "width": 1024},
        "ple": {"layers": 2, "experts": 2, "shared_experts": 2, "width": 1024},
    },
}


class RankingModel(nn.Module):
    """front end -> backbone -> linear reduction to `out_width` -> heads; forward returns
    (CTR logit, CVR logit)."""

    def __init__(self, front: FeatureEmbedding, backbone: nn.Module, heads: MultiTaskHeads, cfg: ModelConfig):
        super().__init__()
        self.front, self.backbone, self.heads = front, backbone, heads
        self.reduce = nn.Linear(backbone.out_dim, cfg.out_width)
        self.l1_coef = cfg.l1_coef

    def forward(self, categorical: torch.Tensor, numeric: torch.Tensor, multihot: list[torch.Tensor],
                scenario: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.front(categorical, numeric, multihot)
        return self.heads(self.reduce(self.backbone(emb, scenario)), scenario)

    def aux_loss(self) -> torch.Tensor:
        aux = getattr(self.backbone, "aux_loss", None)
        return self.l1_coef * aux() if aux is not None else torch.zeros(())


def dense_parameter_count(model: RankingModel) -> int:
    """Parameters outside the embedding tables."""
    table = {id(p) for p in model.front.table.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in table)


def backbone_parameter_count(model: RankingModel) -> int:
    """Parameters of the backbone and of its reduction to the common output width."""
    return sum(p.numel() for m in (model.backbone, model.reduce) for p in m.parameters())


def head_parameter_count(model: RankingModel) -> int:
    """Parameters of the CTR and CVR towers (the same for every model at a preset)."""
    return sum(p.numel() for p in model.heads.parameters())


def field_family_groups(features: FeatureSet, n_tokens: int, k: int) -> list[list[str]]:
    """Manual grouping by hand-written rule: features sorted by field family (the name's prefix
    before '_', e.g. user / item / ctx), cut into n_tokens contiguous groups of at most k."""
    names = sorted(features.names, key=lambda n: (n.split("_")[0], features.names.index(n)))
    per = min(k, math.ceil(len(names) / n_tokens))
    groups = [names[i * per:(i + 1) * per] for i in range(n_tokens)]
    return [g or [names[i % len(names)]] for i, g in enumerate(groups)]


def resolve_config(cfg: ModelConfig, features: FeatureSet) -> ModelConfig:
    """The config with its preset applied (explicit fields win) and, for a baseline, its size
    knob searched to match MTmixAtt's backbone parameter count at the same preset."""
    if cfg.name not in BACKBONES:
        raise UserError(f"unknown model '{cfg.name}' (available: {', '.join(BACKBONES)})")
    if cfg.preset not in PRESETS:
        raise UserError(f"unknown preset '{cfg.preset}' (available: {', '.join(PRESETS)})")
    explicit = cfg.model_dump(include=cfg.model_fields_set)
    resolved = cfg.model_copy(update={**PRESET_SHARED[cfg.preset], **PRESETS[cfg.preset][cfg.name], **explicit})
    knob, step = SIZE_KNOB.get(cfg.name, ("ffn_hidden", 1))
    if cfg.name != "mtmixatt" and knob not in cfg.model_fields_set:
        reference = ModelConfig(name="mtmixatt", preset=cfg.preset,
                                **{k: v for k, v in explicit.items() if k in ("embedding_dim", "hash_buckets")})
        target = backbone_parameter_count(build_model(reference, features, device="meta"))
        if knob == "width":  # attention needs width divisible by the heads
            step = math.lcm(step, resolved.heads)
        resolved = match_size(resolved, features, target, knob, step)
    return resolved


# The knob searched to match sizes, and its step. Models whose FFN is shared by all n_f
# feature tokens grow in width (FFN hidden = 2 x width): growing their FFN alone would
# multiply their FLOPs by n_f per added parameter.
SIZE_KNOB = {"transformer": ("width", 4), "hiformer": ("width", 4), "mlp_mixer": ("width", 4)}


def match_size(cfg: ModelConfig, features: FeatureSet, target: int, knob: str = "ffn_hidden",
               step: int = 1) -> ModelConfig:
    """`cfg` with `knob` = m x step, m chosen so the backbone parameter count is closest to `target`."""
    def with_knob(m: int) -> ModelConfig:
        return cfg.model_copy(update={knob: m * step})

    def count(m: int) -> int:
        return backbone_parameter_count(_build(with_knob(m), features, "meta"))

    lo, hi = 1, 2
    while count(hi) < target and hi < 1 << 20:
        hi *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return with_knob(min((lo, hi), key=lambda m: abs(count(m) - target)))


def build_model(cfg: ModelConfig, features: FeatureSet, device: str | torch.device = "cpu") -> RankingModel:
    return _build(resolve_config(cfg, features), features, device)


def _build(cfg: ModelConfig, features: FeatureSet, device) -> RankingModel:
    n, e, s = features.n_features, cfg.embedding_dim, features.n_scenarios
    with torch.device(device):
        front = FeatureEmbedding(features, e, cfg.hash_buckets)
        if cfg.name == "mtmixatt":
            backbone = MTmixAtt(n, e, s, cfg, groups=_manual_groups(cfg, features))
        else:
            backbone = BACKBONES[cfg.name](n, e, s, cfg)
        heads = MultiTaskHeads(cfg.out_width, cfg.head_hidden, s, cfg.adapter_rank)
        return RankingModel(front, backbone, heads, cfg)


def _manual_groups(cfg: ModelConfig, features: FeatureSet) -> list[list[int]] | None:
    if cfg.grouping != "manual":
        return None
    k = cfg.topk_features or max(2, math.ceil(features.n_features / cfg.tokens))
    groups = cfg.groups or field_family_groups(features, cfg.tokens, k)
    index = {name: i for i, name in enumerate(features.names)}
    unknown = [name for g in groups for name in g if name not in index]
    if unknown:
        raise UserError(f"manual grouping names unknown feature '{unknown[0]}'")
    return [[index[name] for name in g] for g in groups]
