"""`tetrad ttrl pretrain`: the embedded base policy with partial competence.

A tiny Llama with a character tokenizer, trained from scratch by supervised next-token loss on
reasoning-gym arithmetic (the same generator and knobs as the TTRL test set, other seeds, test
expressions removed), stopped early so that it solves some test problems reliably, some sometimes
and some rarely. With `eval_every`, the spread over the test problems is measured during training
and logged; `keep: most_contested` then keeps the weights of the evaluation with the largest share
of problems solved 10-50% of the time (the ones TTRL can learn or lose), rather than the last.
`train_knobs` trains on another distribution than the test set's (the test problems are still removed
and the spread is still measured on them): `configs/ttrl/compare_systematic.yaml` trains on 2-term
chains only and tests on 2-3-term ones, so that the 3-term problems meet a habit learned elsewhere
(systematic errors; whether the base vote is confidently wrong is measured, not assumed: the
compare reports the share of wrong base votes with a majority ratio above tau_mr).
The model is saved as a Hugging Face directory under the run directory
(`runs/ttrl/<name>/model`) and reused when present.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch

from tetrad.core.config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, RunConfig, Share
from tetrad.core.errors import UserError
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.llm.logprobs import token_logprobs
from tetrad.llm.models import ModelSpec, load_policy, save_policy
from tetrad.llm.sampling import SamplingParams
from tetrad.llm.update import warmup_cosine
from tetrad.ttrl.evaluation import evaluate, spread
from tetrad.ttrl.tasks import TaskConfig, load_tasks, reasoning_gym_tasks


class PretrainConfig(RunConfig):
    name: str = "pretrain"
    model: ModelSpec = ModelSpec()
    tasks: TaskConfig = TaskConfig()  # the test set: excluded from training, used to measure the spread
    train_size: PositiveInt = 50000
    steps: PositiveInt = 600
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 3e-3
    warmup_ratio: Share = 0.05
    eval_samples: PositiveInt = 32
    eval_temperature: NonNegativeFloat = 1.0
    max_new_tokens: PositiveInt = 6
    eval_every: NonNegativeInt = 0  # steps between measurements of the spread (0: only at the end)
    keep: Literal["last", "most_contested"] = "last"
    train_knobs: dict | None = None  # the training problems' generator knobs (None: tasks.knobs, the test set's)


def model_dir(cfg: PretrainConfig) -> Path:
    return Path(cfg.root) / "ttrl" / cfg.name / "model"


def pretrain(cfg: PretrainConfig) -> dict:
    """Train (or reuse) the base policy; return its summary, including the per-problem spread."""
    if cfg.model.kind != "tiny":
        raise UserError("pretrain trains a tiny model from scratch: model.kind must be 'tiny'")
    if cfg.tasks.source != "reasoning_gym" or cfg.tasks.prompt_style != "expression":
        raise UserError("pretrain needs tasks.source=reasoning_gym with prompt_style=expression")
    out = model_dir(cfg)
    run_summary = out.parent / "summary.json"
    if (out / "config.json").is_file() and run_summary.is_file():
        import json

        return json.loads(run_summary.read_text())
    seed_everything(cfg.seed)
    test = load_tasks(cfg.tasks)
    held_out = set(test.prompts)
    train = reasoning_gym_tasks(cfg.tasks.task, cfg.train_size, cfg.tasks.seed + 1 + cfg.seed,
                                cfg.tasks.knobs if cfg.train_knobs is None else cfg.train_knobs)
    pairs = [(p, t) for p, t in zip(train.prompts, train.truths) if p not in held_out]
    if not pairs:
        raise UserError("pretrain: no training problems left after removing the test set")
    # An unfinished earlier attempt (no saved model) is simply redone: its directory is reused and
    # its metrics forgotten.
    run = RunDir("ttrl", cfg, tensorboard=False, restart=True)
    model, tok = load_policy(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.steps, cfg.warmup_ratio, 0.05))
    if cfg.keep == "most_contested" and not cfg.eval_every:
        raise UserError("keep=most_contested needs eval_every > 0 (the spread is measured every eval_every steps)")
    params = SamplingParams(temperature=cfg.eval_temperature, max_new_tokens=cfg.max_new_tokens)

    def measure() -> dict:
        # every measurement draws the same sampling noise (and none from training's generator), so
        # spreads at different steps differ by the weights only, and the kept weights measure again
        # exactly as they did
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            return evaluate(model, tok, test, cfg.eval_samples, params)

    gen = torch.Generator().manual_seed(cfg.seed)
    kept: dict = {}
    for step in progress(range(1, cfg.steps + 1), desc="pretrain"):
        idx = torch.randint(len(pairs), (cfg.batch_size,), generator=gen).tolist()
        batch = [pairs[i] for i in idx]
        loss = _sft_loss(model, tok, [p for p, _ in batch], [a for _, a in batch])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        record = {}
        if step == 1 or step % 50 == 0 or step == cfg.steps:
            record = {"loss": float(loss.detach()), "lr": sched.get_last_lr()[0]}
        if cfg.eval_every and (step % cfg.eval_every == 0 or step == cfg.steps):
            ev = measure()
            record |= {"pass@1": ev["pass@1"], **spread(ev["per_problem"])}
            if cfg.keep == "most_contested" and record["share_10_to_50"] > kept.get("share_10_to_50", -1.0):
                kept = {"step": step, "share_10_to_50": record["share_10_to_50"],
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if record:
            run.log(step, record)
    if kept:
        model.load_state_dict(kept["state"])
    ev = measure()
    summary = {"pass@1": ev["pass@1"], f"maj@{cfg.eval_samples}": ev[f"maj@{cfg.eval_samples}"],
               **spread(ev["per_problem"]), "per_problem_accuracy": ev["per_problem"].tolist(),
               "parameters": sum(p.numel() for p in model.parameters()), "train_problems": len(pairs),
               "kept_step": kept.get("step", cfg.steps)}
    save_policy(model, tok, out)
    run.write_summary(summary)
    run.close()
    return summary


def _sft_loss(model, tok, prompts: list[str], answers: list[str]) -> torch.Tensor:
    """Mean next-token loss on the answer and its end-of-sequence token, given the prompt."""
    p = tok(prompts, return_tensors="pt", padding=True)
    ans = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in answers]
    width = max(map(len, ans))
    ids = torch.full((len(ans), width), tok.pad_token_id)
    mask = torch.zeros((len(ans), width), dtype=torch.long)
    for i, a in enumerate(ans):
        ids[i, :len(a)] = torch.tensor(a)
        mask[i, :len(a)] = 1
    logp = token_logprobs(model, p["input_ids"], p["attention_mask"], ids, mask)
    return -logp.sum() / mask.sum()
