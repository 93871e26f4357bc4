"""`tetrad ttrl run`: base evaluation, then TTRL or TTRL-Guard (by config) on the unlabeled test set.

Each step takes `batch_prompts` problems (a seeded permutation per epoch), samples N responses per
problem, majority-votes the pseudo-label, rewards agreement, and trains GRPO on the first M
responses of each problem (one optimizer step per `update.mini_batches` slice of the problems); the
guard, when enabled, is an advantage hook. The ground truth goes only to the tracker (and its base
vote: the step-0 policy's labels, the categories' anchor) and the evaluation, both outside the
training path; they sample under their own seeds, so they never move the training run's random
stream. Resumable (`resume=true`).

Sampling draws from a generator seeded by (run seed, step, chunk), one `generate` call per chunk
of `sample_chunk` prompts (0: all the prompts a process samples in a step), so a step's samples
depend on nothing else. Under torchrun the step's prompts are split evenly over the processes:
each samples and scores (extracts, votes) its share, then every process gathers every share, so
all of them hold the same rollouts, votes, guard state and tracker; the update splits each
mini-batch's rows over the processes and DDP averages. With `sample_chunk` set so that it
divides every process's share, the chunks, and so the samples and the whole run, are the same on
any number of processes (tested for 1 vs 2).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tetrad.core.config import NonNegativeInt, PositiveInt, RunConfig
from tetrad.core.distributed import all_gather_objects, cleanup, init_distributed, is_main, shard
from tetrad.core.errors import UserError
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.data.parquet import write_parquet
from tetrad.llm.models import ModelSpec, load_policy
from tetrad.llm.sampling import Rollouts, SamplingParams, finished, sample
from tetrad.llm.update import PolicyUpdater, UpdateConfig
from tetrad.ttrl.answers import extract_answer, normalise
from tetrad.ttrl.evaluation import evaluate, spread
from tetrad.ttrl.guard import GuardConfig, TTRLGuard
from tetrad.ttrl.pretrain import PretrainConfig, model_dir, pretrain
from tetrad.ttrl.tasks import TaskConfig, TaskSet, load_tasks
from tetrad.ttrl.tracking import (ProblemTracker, StopConfig, category_counts, plot_tracking, problems_table,
                                  step_metrics, stop_report, stop_step)
from tetrad.ttrl.voting import Vote, rewards, vote


class TTRLConfig(RunConfig):
    name: str = "ttrl"
    model: ModelSpec | None = None  # None: the `pretrain` section's base policy (trained once, cached)
    pretrain: PretrainConfig = PretrainConfig()  # its own root/name: runs/ttrl/pretrain by default
    tasks: TaskConfig = TaskConfig()
    chat: bool = False  # wrap prompts in the model's chat template
    n_samples: PositiveInt = 64  # N: votes per problem (the paper's default; quick configs use fewer)
    n_train: PositiveInt = 32  # M: responses per problem the update trains on (the first M of N)
    batch_prompts: PositiveInt = 8
    sample_chunk: NonNegativeInt = 0  # prompts per generate call (0: a process's whole share of the step)
    epochs: PositiveInt = 10  # passes over the test set
    train_sampling: SamplingParams = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=6)
    eval_sampling: SamplingParams = SamplingParams(temperature=0.6, top_p=0.95, max_new_tokens=6)
    eval_samples: PositiveInt = 16  # k for mean@k (pass@1) and maj@k
    eval_every: NonNegativeInt = 0  # steps between evaluations (0: only before and after training)
    update: UpdateConfig = UpdateConfig(lr=1e-4, warmup_ratio=0.03, kl_coef=0.0, micro_batch=64)
    guard: GuardConfig = GuardConfig()
    checkpoint_every: PositiveInt = 10
    stop: StopConfig = StopConfig()  # the unsupervised stopping rule whose step summary.json records
    evaluate: bool = True  # False: no ground truth is read at all (what a real test-time user has)


def resolve_model(cfg: TTRLConfig) -> ModelSpec:
    if cfg.model is not None:
        return cfg.model
    pre = cfg.pretrain
    if not (model_dir(pre) / "config.json").is_file():
        if not is_main():
            raise UserError("train the base policy first (tetrad ttrl pretrain) before running under torchrun")
        pretrain(pre)
    return ModelSpec(kind="hf", path=str(model_dir(pre)))


def check(cfg: TTRLConfig) -> None:
    if cfg.n_train > cfg.n_samples:
        raise UserError(f"n_train (M={cfg.n_train}) must not exceed n_samples (N={cfg.n_samples})")
    if cfg.update.mini_batches > cfg.batch_prompts:
        raise UserError(f"update.mini_batches ({cfg.update.mini_batches}) must not exceed batch_prompts "
                        f"({cfg.batch_prompts}): a mini-batch is at least one prompt")


def check_split(n_tasks: int, cfg: TTRLConfig, world: int) -> None:
    """Every step's prompts (the last step of an epoch may have fewer) must split evenly over the
    processes, and each share into whole chunks."""
    sizes = {min(cfg.batch_prompts, n_tasks), n_tasks % cfg.batch_prompts or cfg.batch_prompts}
    for size in sorted(sizes):
        if size % world:
            raise UserError(f"a step of {size} prompts does not split over {world} processes: "
                            f"choose batch_prompts and the task count to be multiples of {world}")
        if cfg.sample_chunk and (size // world) % cfg.sample_chunk:
            raise UserError(f"sample_chunk={cfg.sample_chunk} does not divide a process's {size // world} "
                            f"prompts per step")


def optimizer_steps(n_tasks: int, cfg: TTRLConfig) -> int:
    """The learning-rate schedule's length: one optimizer step per mini-batch, and a step with fewer
    prompts than `update.mini_batches` (an epoch's last) takes one per prompt."""
    full, last = divmod(n_tasks, cfg.batch_prompts)
    per_epoch = full * min(cfg.update.mini_batches, cfg.batch_prompts) + min(cfg.update.mini_batches, last)
    return per_epoch * cfg.epochs


def chunk_seed(key: list[int], chunk: int) -> int:
    """The sampling seed of chunk `chunk` (counted over the whole batch) of the batch `key` names:
    [run seed, step] for a training step, [run seed, 0, batch] for the base vote's batches."""
    return int(np.random.SeedSequence([*key, chunk]).generate_state(1)[0])


def sample_and_score(model, tok, prompts: list[str], cfg: TTRLConfig, key: list[int], device, train: bool = True
                     ) -> tuple[Rollouts | None, list[list[str | None]], list[Vote]]:
    """This process's share of a batch: its prompts' N samples (in seeded chunks), their normalised
    answers per prompt and the votes, gathered from every process in prompt order. Returns the
    M trained rollouts of each prompt (None unless `train`), the N answers of each prompt and the votes."""
    mine = shard(len(prompts))
    chunk = cfg.sample_chunk or (mine.stop - mine.start)
    parts, groups = [], []
    for start in range(mine.start, mine.stop, chunk):
        r = sample(model, tok, prompts[start:start + chunk], cfg.n_samples, cfg.train_sampling, chat=cfg.chat,
                   device=device, seed=chunk_seed(key, start // chunk))
        ended = finished(r, tok, cfg.train_sampling)
        answers = [normalise(extract_answer(t, done)) for t, done in zip(r.texts, ended)]
        groups += [answers[g:g + cfg.n_samples] for g in range(0, len(answers), cfg.n_samples)]
        if train:
            parts.append(r.first_of_each_group(cfg.n_train).to("cpu"))
    local = (Rollouts.concat(parts, tok.pad_token_id) if train else None, groups, [vote(a) for a in groups])
    shares = all_gather_objects(local)
    rollouts = Rollouts.concat([s[0] for s in shares], tok.pad_token_id).to(device) if train else None
    return rollouts, [g for s in shares for g in s[1]], [v for s in shares for v in s[2]]


def base_vote(model, tok, tasks: TaskSet, cfg: TTRLConfig, tracker: ProblemTracker, device) -> None:
    """The step-0 policy's vote on every problem, at the training temperature and N, in batches of
    `batch_prompts` (the categories' initial labels). Its own seeds: training's samples are unmoved."""
    for k, start in enumerate(range(0, len(tasks), cfg.batch_prompts)):
        ids = tasks.ids[start:start + cfg.batch_prompts]
        _, groups, votes = sample_and_score(model, tok, tasks.prompts[start:start + cfg.batch_prompts], cfg,
                                            [cfg.seed, 0, k], device, train=False)
        for pid, v, a in zip(ids, votes, groups):
            tracker.record_base(pid, v, a)


def run_ttrl(cfg: TTRLConfig, tasks: TaskSet | None = None, truths: dict[str, str] | None | bool = True) -> dict:
    """Run TTRL. `tasks` overrides the config's task set; `truths=None` runs without any ground truth
    (no tracking of correctness, no evaluation), a dict supplies them explicitly (tests permute them)."""
    check(cfg)
    info = init_distributed()
    tasks = tasks if tasks is not None else load_tasks(cfg.tasks)
    if truths is True:
        truths = tasks.truth_of() if cfg.evaluate else None
    check_split(len(tasks), cfg, info.world_size)  # before a base policy might be trained
    spec = resolve_model(cfg)
    seed_everything(cfg.seed)
    model, tok = load_policy(spec)
    model.to(info.device)
    steps_per_epoch = math.ceil(len(tasks) / cfg.batch_prompts)
    total = steps_per_epoch * cfg.epochs
    guard = TTRLGuard(cfg.guard.model_copy(update={"seed": cfg.guard.seed + cfg.seed}))
    updater = PolicyUpdater(model, cfg.update.model_copy(update={"total_steps": optimizer_steps(len(tasks), cfg)}),
                            hooks=[guard],
                            temperature=cfg.train_sampling.temperature)
    run = RunDir("ttrl", cfg)
    tracker = ProblemTracker(truths)
    ck = run.restore(cfg.resume, **updater.state_dict_parts())
    start, evals = ck["step"], []
    if start > 0:
        guard.load_state_dict(ck["state"]["guard"])
        tracker.load_state_dict(ck["state"]["tracker"])
        evals = list(ck["state"]["evals"])
    eval_task = _eval_subset(tasks, truths)
    if start == 0 and eval_task is not None:
        evals.append(_evaluate(updater.policy, tok, eval_task, cfg, 0))
        base_vote(updater.policy, tok, tasks, cfg, tracker, info.device)
        run.log(0, {**_public(evals[-1]),
                    "base_label_accuracy": float(tracker.base_votes()["initial_label_acc"].mean())})
    for step in progress(range(start + 1, total + 1), desc="ttrl"):
        epoch, k = divmod(step - 1, steps_per_epoch)
        order = torch.randperm(len(tasks), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        idx = order[k * cfg.batch_prompts:(k + 1) * cfg.batch_prompts].tolist()
        ids, prompts = [tasks.ids[i] for i in idx], [tasks.prompts[i] for i in idx]
        train, groups, votes = sample_and_score(updater.policy, tok, prompts, cfg, [cfg.seed, step], info.device)
        reward = torch.cat([rewards(a[:cfg.n_train], v) for a, v in zip(groups, votes)])
        context = {"prompt_ids": ids, "votes": votes,
                   "answers": [[v.class_of(x) for x in a[:cfg.n_train]] for a, v in zip(groups, votes)]}
        stats = updater.step(train, reward, context)
        visits = [tracker.record(step, pid, v, a) for pid, v, a in zip(ids, votes, groups)]
        metrics = {**stats, **(guard.last_stats if cfg.guard.enabled else {}), **step_metrics(visits),
                   "reward": float(reward.mean()), "epoch": epoch}
        if eval_task is not None and (step == total or (cfg.eval_every and step % cfg.eval_every == 0)):
            evals.append(_evaluate(updater.policy, tok, eval_task, cfg, step))
            metrics.update(_public(evals[-1]))
        run.log(step, metrics)
        if step % cfg.checkpoint_every == 0 or step == total:
            run.checkpointer.save(step, **updater.state_dict_parts(),
                                  state={"guard": guard.state_dict(), "tracker": tracker.state_dict(),
                                         "evals": evals})
    summary = _finish(run, cfg, tracker, evals, tasks.ids)
    run.close()
    cleanup()
    return summary


def _eval_subset(tasks: TaskSet, truths: dict[str, str] | None) -> TaskSet | None:
    if truths is None:
        return None
    return TaskSet(tasks.ids, tasks.prompts, [truths[i] for i in tasks.ids], tasks.name)


def _evaluate(model, tok, tasks: TaskSet, cfg: TTRLConfig, step: int) -> dict:
    """Evaluation under a forked, step-seeded RNG: identical whatever the truths, and invisible to training."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed * 7919 + step)
        ev = evaluate(model, tok, tasks, cfg.eval_samples, cfg.eval_sampling, cfg.chat,
                      device=next(model.parameters()).device)
    return {"step": step, "pass@1": ev["pass@1"], f"maj@{cfg.eval_samples}": ev[f"maj@{cfg.eval_samples}"],
            "per_problem": ev["per_problem"].tolist()}


def _public(ev: dict) -> dict:
    return {f"eval/{k}": v for k, v in ev.items() if k not in ("step", "per_problem")}


def _finish(run: RunDir, cfg: TTRLConfig, tracker: ProblemTracker, evals: list[dict], ids: list[str]) -> dict:
    visits = tracker.visits()
    problems = problems_table(visits, tracker.base_votes())
    summary: dict = {"steps": int(visits["step"].max()), "problems": len(problems)}
    fr = visits[visits["visit"] > 1].groupby("step")["flipped"].mean()
    if len(fr):
        summary.update(flip_rate_peak=float(fr.max()), flip_rate_peak_step=int(fr.idxmax()),
                       flip_rate_last=float(fr.iloc[-1]))
    mr = visits.groupby("step")["majority_ratio"].mean()
    stop = stop_step(mr.index.tolist(), fr.reindex(mr.index).tolist(), mr.tolist(),
                     cfg.stop.window or math.ceil(len(problems) / cfg.batch_prompts), cfg.stop)
    summary["stop_step"] = stop
    if evals:
        base, final = evals[0], evals[-1]
        k = cfg.eval_samples
        summary.update({"base_pass@1": base["pass@1"], f"base_maj@{k}": base[f"maj@{k}"],
                        "pass@1": final["pass@1"], f"maj@{k}": final[f"maj@{k}"], **spread(np.array(base["per_problem"]))})
        summary.update(stop_report(stop, evals))
        problems["base_accuracy"] = problems["problem_id"].map(dict(zip(ids, base["per_problem"])))
        problems["final_accuracy"] = problems["problem_id"].map(dict(zip(ids, final["per_problem"])))
    if "label_correct" in visits:
        last_epoch = visits[visits["step"] > visits["step"].max() - math.ceil(len(problems) / cfg.batch_prompts)]
        summary["label_accuracy_last_epoch"] = float(last_epoch["label_correct"].mean())
        summary["base_label_accuracy"] = float(problems["initial_label_acc"].mean())
        summary.update({f"n_{c}": n for c, n in category_counts(problems).items()})
        w = problems["extinction_window"].dropna()
        summary["extinction_window_median"] = float(w.median()) if len(w) else float("nan")
        summary["extinct_problems"] = int(problems["extinct_step"].notna().sum())
    if is_main():
        write_parquet(problems, run.path / "problems.parquet")
        write_parquet(visits, run.path / "visits.parquet")
        plot_tracking(fr.index.tolist(), fr.tolist(), problems, run.plots)
    run.write_summary(summary)
    return summary
