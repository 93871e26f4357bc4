"""Run under torchrun: the TTRL run whose config (JSON) is argv[1]; rank 0 saves its final parameters,
summary and visits to argv[2]."""

import os
import sys
from pathlib import Path

import pandas as pd
import torch

from tetrad.ttrl.recipe import TTRLConfig, run_ttrl

cfg = TTRLConfig.model_validate_json(Path(sys.argv[1]).read_text())
summary = run_ttrl(cfg)
if os.environ.get("RANK", "0") == "0":  # run_ttrl has left the process group by now
    run = Path(cfg.root) / "ttrl" / cfg.name
    ckpt = sorted((run / "checkpoints").iterdir())[-1]
    torch.save({"model": torch.load(ckpt, weights_only=True)["model"], "summary": summary,
                "visits": pd.read_parquet(run / "visits.parquet").to_dict("list")}, sys.argv[2])
