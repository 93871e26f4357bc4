"""Run under torchrun: a tiny TTRL-Guard run; rank 0 saves the final parameters to argv[2]."""

import sys
from pathlib import Path

import torch

from tetrad.core.distributed import is_main
from tetrad.llm.models import ModelSpec
from tetrad.ttrl.guard import GuardConfig
from tetrad.ttrl.recipe import TTRLConfig, run_ttrl
from tetrad.ttrl.tasks import TaskConfig

cfg = TTRLConfig(root=sys.argv[1], name="ddp", model=ModelSpec(kind="tiny", hidden=32, layers=1, heads=2),
                 tasks=TaskConfig(size=8, seed=5, knobs={"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                                         "max_digits": 1}),
                 n_samples=4, n_train=2, batch_prompts=4, epochs=2, eval_samples=2, checkpoint_every=2,
                 update={"lr": 3e-3, "micro_batch": 2, "warmup_ratio": 0.0}, guard=GuardConfig(frs=True, mps=True))
summary = run_ttrl(cfg)
if is_main():
    ckpt = sorted((Path(sys.argv[1]) / "ttrl" / "ddp" / "checkpoints").iterdir())[-1]
    torch.save({"model": torch.load(ckpt, weights_only=True)["model"], "summary": summary}, sys.argv[2])
