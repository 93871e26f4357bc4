"""`tetrad ranking export`: a trained run's model to ONNX.

Inputs: `categorical` [B, n_cat] int64, `numeric` [B, n_num] float32, one
`multihot_<name>` [B, max_len] int64 per multi-hot feature (ids + 1, 0 = padding, as
`tetrad.ranking.data` builds them), `scenario` [B] int64. Outputs: `p_ctr`, `p_ctcvr`.
The batch axis is dynamic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from tetrad.core.checkpoint import Checkpointer
from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.ranking.data import FeatureSet
from tetrad.ranking.heads import probabilities
from tetrad.ranking.models import ModelConfig, RankingModel, build_model


class ProbabilityModel(torch.nn.Module):
    """(categorical, numeric, *multihot, scenario) -> (pCTR, pCTCVR): the flat signature ONNX needs."""

    def __init__(self, model: RankingModel, n_multihot: int):
        super().__init__()
        self.model, self.n_multihot = model, n_multihot

    def forward(self, categorical, numeric, *rest):
        multihot, scenario = list(rest[: self.n_multihot]), rest[self.n_multihot]
        return probabilities(*self.model(categorical, numeric, multihot, scenario))


def load_trained(run_dir: str | Path) -> tuple[RankingModel, FeatureSet]:
    """The model of a finished `tetrad ranking train` run, at its latest checkpoint."""
    from tetrad.ranking.train import MODEL_FILE, TrainConfig, load_features

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a ranking run directory (no config.yaml)")
    if not (run_dir / MODEL_FILE).is_file():
        raise UserError(f"{run_dir} has no {MODEL_FILE} (the model as trained): re-run its training")
    cfg = load_config(TrainConfig, run_dir / "config.yaml")
    _, features = load_features(cfg.data, Path(cfg.data.path))
    # every field of the resolved model is set, so building it applies no preset and no size search
    model = build_model(ModelConfig.model_validate_json((run_dir / MODEL_FILE).read_text()), features)
    Checkpointer(run_dir / "checkpoints").load(model=model, restore_rng=False)
    return model.eval(), features


def export_onnx(model: RankingModel, features: FeatureSet, out: str | Path, batch: int = 4) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ProbabilityModel(model.eval(), len(features.multihot))
    gen = torch.Generator().manual_seed(0)
    example = (torch.randint(0, 2, (batch, len(features.categorical)), generator=gen),
               torch.rand(batch, len(features.numeric), generator=gen),
               *[torch.randint(0, 2, (batch, f.max_len), generator=gen) for f in features.multihot],
               torch.zeros(batch, dtype=torch.long))
    names = ["categorical", "numeric", *[f"multihot_{f.name}" for f in features.multihot], "scenario"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(wrapper, example, str(out), input_names=names, output_names=["p_ctr", "p_ctcvr"],
                          dynamic_axes={n: {0: "batch"} for n in names + ["p_ctr", "p_ctcvr"]},
                          opset_version=17, dynamo=False)
    return out
