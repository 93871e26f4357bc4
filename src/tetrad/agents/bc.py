"""`tetrad agents bc`: a small policy behaviour-cloned from ALFWorld's handcoded expert.

The base policy SkillC starts from: a tiny Llama (`tetrad.llm.models.tiny_llama`) over a
word-level tokenizer built from the training texts (`tetrad.llm.tokenizers.word_tokenizer`),
trained from scratch by next-token loss on the expert's actions.

Training examples are exactly what the rollout loop shows a policy: for every step of every won
expert episode, the prompt `rollout.build_prompt` writes (task, skills at `{skill_context}`, the
last `history_length` (observation, action) pairs, the observation, the admissible actions),
and as the response the expert's action as `<action>...</action>`; the loss covers the response
tokens only. `skills` chooses the prompts' skill slot: `always` (the default: the policy learns
with the skills in context, the setting SkillC then withdraws them from), `never`, or `mixed`
(each episode's prompts carry the skills with probability `skill_share`).

Games come from `games=<folder>` (generated with `tetrad agents make-games --split train`, or real
ALFWorld data) or, when empty, `n_games` train games are generated into the run directory; the
expert's trajectories are read from `trajectories=<jsonl>` (`tetrad agents expert-trajectories`)
or played and written to the run directory. A resumed run reuses both.

The run directory `runs/agents/<name>/` holds the usual `config.yaml`, `metrics.jsonl`,
checkpoints (resume with `resume=true`, bit-exact) and `summary.json`, and the trained policy
as a Hugging Face directory `model/` (`ModelSpec(kind="hf", path=...)` loads it;
`tetrad agents eval --policy bc bc_run=<run directory>` plays it, scoring the admissible actions).
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Literal

import torch

from tetrad.core.config import RunConfig
from tetrad.core.errors import UserError
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.llm.logprobs import token_logprobs
from tetrad.llm.update import warmup_cosine


class BCConfig(RunConfig):
    name: str = "bc"
    games: str = ""  # train game folder; empty: generate `n_games` train games into the run directory
    n_games: int = 60
    trajectories: str = ""  # expert JSONL (`tetrad agents expert-trajectories`); empty: play the expert
    max_expert_steps: int = 50
    skills: Literal["always", "never", "mixed"] = "always"
    skill_share: float = 0.5  # skills=mixed: share of episodes whose prompts carry the skills
    skills_dir: str = ""  # empty: the library shipped with tetrad
    history_length: int = 2  # must match the evaluation's (the rollout loop's default is 2)
    min_word_frequency: int = 1
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    max_positions: int = 4096
    steps: int = 400
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    checkpoint_every: int = 50
    log_every: int = 10


def load_trajectories(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"expert trajectories not found: {path}")
    episodes = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            ep = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path} line {n} is not JSON") from None
        missing = [k for k in ("task_type", "instruction", "steps") if k not in ep]
        if missing:
            raise UserError(f"{path} line {n}: an expert episode needs '{missing[0]}'")
        episodes.append(ep)
    if not episodes:
        raise UserError(f"no expert episodes in {path}")
    return episodes


def bc_examples(episodes: list[dict], skill_flags: list[bool], library, history_length: int
                ) -> list[tuple[str, str]]:
    """(prompt, response) per expert step, the prompt as the rollout loop builds it."""
    from tetrad.agents.llm_policy import action_response
    from tetrad.agents.rollout import build_prompt

    examples = []
    for ep, flag in zip(episodes, skill_flags):
        context = library.render("alfworld", ep["task_type"]) if flag else ""
        history: list[tuple[str, str]] = []
        for step in ep["steps"]:
            prompt = build_prompt("alfworld", ep["instruction"], step["observation"], history,
                                  step["admissible_commands"], context, history_length)
            examples.append((prompt, action_response(step["action"])))
            history.append((step["observation"], step["action"]))
    return examples


def _expert_episodes(cfg: BCConfig, run_path: Path) -> list[dict]:
    from tetrad.agents.alfworld_env import export_expert_trajectories, find_games
    from tetrad.agents.alfworld_games import make_games

    if cfg.trajectories:
        return load_trajectories(cfg.trajectories)
    out = run_path / "expert.jsonl"
    if not out.is_file():
        if cfg.games:
            folders = find_games(cfg.games)
        else:
            folders = make_games(run_path / "games", cfg.n_games, "train", cfg.seed)
        export_expert_trajectories(folders, out, cfg.max_expert_steps, cfg.seed)
    return load_trajectories(out)


def _batch(encoded: list[tuple[list[int], list[int]]], pad: int):
    """Left-padded prompts and right-padded responses, the layout `token_logprobs` reads."""
    p_width = max(len(p) for p, _ in encoded)
    r_width = max(len(r) for _, r in encoded)
    n = len(encoded)
    prompt_ids, prompt_mask = torch.full((n, p_width), pad), torch.zeros((n, p_width), dtype=torch.long)
    resp_ids, resp_mask = torch.full((n, r_width), pad), torch.zeros((n, r_width), dtype=torch.long)
    for i, (p, r) in enumerate(encoded):
        prompt_ids[i, p_width - len(p):] = torch.tensor(p)
        prompt_mask[i, p_width - len(p):] = 1
        resp_ids[i, :len(r)] = torch.tensor(r)
        resp_mask[i, :len(r)] = 1
    return prompt_ids, prompt_mask, resp_ids, resp_mask


def train_bc(cfg: BCConfig) -> dict:
    from tetrad.agents.skills import SkillLibrary
    from tetrad.llm.models import save_policy, tiny_llama
    from tetrad.llm.tokenizers import word_tokenizer

    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.checkpoint_every < 1 or cfg.log_every < 1:
        raise UserError("steps, batch_size, checkpoint_every and log_every must be at least 1")
    if not 0.0 <= cfg.skill_share <= 1.0:
        raise UserError(f"skill_share must be in [0, 1] (got {cfg.skill_share})")
    seed_everything(cfg.seed)
    run = RunDir("agents", cfg)
    episodes = _expert_episodes(cfg, run.path)
    library = SkillLibrary.load(cfg.skills_dir or None)
    flag_rng = random.Random(cfg.seed)
    flags = [cfg.skills == "always" or (cfg.skills == "mixed" and flag_rng.random() < cfg.skill_share)
             for _ in episodes]
    examples = bc_examples(episodes, flags, library, cfg.history_length)
    tok = word_tokenizer([t for ex in examples for t in ex], cfg.min_word_frequency)
    encoded = [(tok(p)["input_ids"], tok(r)["input_ids"]) for p, r in examples]
    longest = max(len(p) + len(r) for p, r in encoded)
    if longest > cfg.max_positions:
        raise UserError(f"the longest training example has {longest} tokens: raise max_positions "
                        f"(now {cfg.max_positions})")
    model = tiny_llama(tok, cfg.hidden, cfg.layers, cfg.heads, cfg.max_positions)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(cfg.steps, cfg.warmup_ratio, 0.05))
    start = run.restore(cfg.resume, model=model, optimizer=opt, scheduler=sched)["step"]
    model.train()
    t0 = time.perf_counter()
    loss_value = float("nan")
    for step in progress(range(start + 1, cfg.steps + 1), desc="bc"):
        idx = torch.randint(len(encoded), (cfg.batch_size,)).tolist()
        prompt_ids, prompt_mask, resp_ids, resp_mask = _batch([encoded[i] for i in idx], tok.pad_token_id)
        logp = token_logprobs(model, prompt_ids, prompt_mask, resp_ids, resp_mask)
        loss = -logp.sum() / resp_mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if step == 1 or step % cfg.log_every == 0 or step == cfg.steps:
            run.log(step, {"loss": loss_value, "lr": sched.get_last_lr()[0]})
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            run.checkpointer.save(step, model=model, optimizer=opt, scheduler=sched)
    seconds = time.perf_counter() - t0
    save_policy(model, tok, run.path / "model")
    summary = {
        "final_loss": loss_value, "episodes": len(episodes), "examples": len(examples),
        "episodes_with_skills": sum(flags), "vocab_size": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()), "longest_example_tokens": longest,
        "mean_example_tokens": sum(len(p) + len(r) for p, r in encoded) / len(encoded),
        "train_seconds_this_session": seconds,
        "seconds_per_step": seconds / max(cfg.steps - start, 1),
        "episodes_per_type": {t: sum(e["task_type"] == t for e in episodes)
                              for t in sorted({e["task_type"] for e in episodes})},
    }
    run.write_summary(summary)
    run.close()
    return summary


def bc_model_dir(run_or_model: str | Path) -> Path:
    """The model folder of a BC run directory (or the model folder itself)."""
    path = Path(run_or_model)
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file():
        return path
    raise UserError(f"no trained BC policy in {path} (train one with `tetrad agents bc`)")
