"""The behaviour-cloned scoring policy: its action log-probabilities (what BC trains and the RL
update's ratio uses), its accuracy against the expert, and where a trained one is kept.

The policy is `ActionScoringPolicy`: the softmax over the admissible commands of their summed
response log-probs. `action_logprobs` computes exactly that probability of a chosen action, with
gradients, for a batch of `EncodedExample`s: the expert's action in behaviour cloning, the action
taken in RL (`tetrad.agents.handoff`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tetrad.agents.bc_data import EncodedExample
from tetrad.agents.rollout import command_word
from tetrad.core.errors import UserError
from tetrad.llm.logprobs import packed_continuation_logprobs

# written beside the weights: the prompt settings an evaluation must use to see what training saw
POLICY_FILE = "tetrad_policy.json"


def action_logprobs(model, batch: list[EncodedExample], pad: int, temperature: float = 1.0):
    """log pi(target action | prompt) under the scoring policy (softmax over each example's
    candidates of their summed response log-probs, divided by `temperature`) [B], and whether its
    greedy choice is the target [B]. The target is the expert's action in BC and the action taken
    in RL (`tetrad.agents.handoff`)."""
    device = model.device
    features = [e.features for e in batch] if all(e.features is not None for e in batch) else None
    logp, _ = packed_continuation_logprobs(model, [e.prompt for e in batch], [e.candidates for e in batch], pad,
                                           features=features)
    scores = logp.sum(1) / temperature
    # the candidates of each example as one row of a [B, most candidates] grid, -inf beyond its own,
    # so the per-example softmax is one batched call
    counts = torch.tensor([len(e.candidates) for e in batch], device=device)
    grid = torch.full((len(batch), int(counts.max())), float("-inf"), device=device)
    grid[torch.arange(grid.shape[1], device=device) < counts[:, None]] = scores
    targets = torch.tensor([e.target for e in batch], device=device)
    logps = torch.log_softmax(grid, 1).gather(1, targets[:, None]).squeeze(1)
    return logps, (grid.argmax(1) == targets).cpu()


@torch.no_grad()
def action_accuracy(model, examples: list[EncodedExample], pad: int, batch_size: int,
                    by_verb: bool = False) -> dict:
    """Greedy action accuracy and mean action NLL of the scoring policy on `examples`; with
    `by_verb`, also the accuracy per command word of the expert's action."""
    was_training = model.training
    model.eval()
    logps, correct = [], []
    for start in range(0, len(examples), batch_size):
        lp, ok = action_logprobs(model, examples[start:start + batch_size], pad)
        logps.append(lp)
        correct.append(ok)
    model.train(was_training)
    ok = torch.cat(correct).float()
    out = {"accuracy": float(ok.mean()), "nll": float(-torch.cat(logps).mean())}
    if by_verb:
        verbs = [command_word(e.action) for e in examples]
        out["accuracy_by_verb"] = {v: float(ok[[i for i, w in enumerate(verbs) if w == v]].mean())
                                   for v in sorted(set(verbs))}
    return out


def read_policy_file(model_dir: Path) -> dict:
    """What the BC recipe recorded beside the weights (the prompt's history length, the skills
    setting it trained with); empty for a model folder from elsewhere."""
    path = Path(model_dir) / POLICY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def bc_model_dir(run_or_model: str | Path) -> Path:
    """The model folder of a BC run directory (or the model folder itself)."""
    path = Path(run_or_model)
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    raise UserError(f"no trained BC policy in {path} (train one with `tetrad agents bc`)")
