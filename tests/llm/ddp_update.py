"""Run under torchrun: two GRPO steps on a fixed global batch; rank 0 saves the parameters."""

import sys

import torch

from tetrad.core.distributed import cleanup, init_distributed, is_main
from tetrad.llm.models import ModelSpec, load_policy
from tetrad.llm.sampling import SamplingParams, sample
from tetrad.llm.update import PolicyUpdater, UpdateConfig

init_distributed("cpu")
torch.manual_seed(0)
model, tok = load_policy(ModelSpec(kind="tiny", hidden=32, layers=1, heads=2))
start = torch.cat([p.detach().flatten() for p in model.parameters()])
up = PolicyUpdater(model, UpdateConfig(lr=1e-2, micro_batch=3, kl_coef=0.05, warmup_ratio=0.0))
stats = {}
for step in range(2):
    r = sample(up.policy, tok, ["1+1 =", "2+5 =", "9+9 =", "3+4 ="], 4, SamplingParams(max_new_tokens=4))
    stats = up.step(r, (torch.arange(16.0) + step) % 3)
if is_main():
    end = torch.cat([p.detach().flatten() for p in up.policy.parameters()])
    torch.save({"start": start, "end": end, "loss": stats["loss"]}, sys.argv[1])
cleanup()
