"""`tetrad ranking train`: train one ranking model on a CTR dataset streamed from Parquet.

The dataset is a folder with `schema.json`, `train/` and `eval/` (see
`tetrad.data.ctr_synthetic.CTRSchema`); `data.source=synthetic` or `movielens` builds it
at `data.path` first when it is not there. Training streams exact global batches in file
order, epoch after epoch; under torchrun each process takes its equal slice of every
global batch and DDP averages gradients, so N processes follow the 1-process run. The
data position is a function of the step, so a resumed run skips to where it stopped.
Evaluation: AUC, GAUC (by user) and logloss for CTR and CTCVR, overall and per scenario,
and the same metrics of the true probabilities (the oracle) when the data has them.
"""

from __future__ import annotations

import itertools
import resource
import time
from pathlib import Path

import numpy as np
import torch


from tetrad.core.bootstrap import auc_replicates, gauc_replicates, group_weights, row_weights
from tetrad.core.config import (Config, NonNegativeFloat, NonNegativeInt, ParallelOrZero, PositiveFloat, PositiveInt,
                                RunConfig, Share)
from tetrad.core.distributed import barrier, cleanup, init_distributed, is_main, shard, unwrap
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_json
from tetrad.core.metrics import auc, gauc, logloss
from tetrad.core.progress import progress
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything
from tetrad.data.ctr_synthetic import SCHEMA_FILE, CTRSchema, SyntheticCTRConfig
from tetrad.ranking.data import FeatureSet, check_dataset, iter_batches, select_features
from tetrad.ranking.heads import multitask_loss, probabilities
from tetrad.ranking.models import (ModelConfig, RankingModel, backbone_parameter_count, build_model,
                                   dense_parameter_count, head_parameter_count, resolve_config)


MODEL_FILE = "model.json"


class DataConfig(Config):
    source: str = "synthetic"  # synthetic | movielens | dir (an existing dataset folder)
    path: str = "runs/data/ranking-synthetic"
    features: list[str] = []  # empty: every feature in schema.json
    exclude: list[str] = []
    main_scenario: str = ""  # a scenario name from schema.json; empty: the first
    synthetic: SyntheticCTRConfig = SyntheticCTRConfig()
    movielens_negatives: NonNegativeInt = 2  # sampled unrated impressions per rating (MovieLens framing)


class TrainConfig(RunConfig):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()  # only fields the user sets count as set: they override the preset
    batch_size: PositiveInt = 512  # global, over all processes
    epochs: PositiveInt = 1
    steps: NonNegativeInt = 0  # > 0: stop after this many steps instead
    lr: PositiveFloat = 1e-3
    warmup_fraction: Share = 0.0  # the learning rate rises linearly from 0 over this share of the steps
    weight_decay: NonNegativeFloat = 0.0
    log_every: PositiveInt = 50
    checkpoint_every: PositiveInt = 500
    eval_batch_size: PositiveInt = 4096
    eval_rows: NonNegativeInt = 0  # > 0: evaluate on the first this many eval rows
    valid_rows: NonNegativeInt = 0  # > 0: the last this many training rows are never trained on: `valid/...`
    final_eval: bool = True  # false: no evaluation on the eval split (learning-rate trials, which must not see it)
    bootstrap: NonNegativeInt = 0  # > 0: replicates of the user bootstrap of the eval AUC / GAUC, for paired CIs
    device: str = "auto"
    threads: ParallelOrZero = 0  # > 0: torch intra-op threads


def prepare_dataset(cfg: DataConfig, seed: int = 0) -> Path:
    """The dataset folder, built first (by rank 0) when the source is generated and it is missing."""
    path = Path(cfg.path)
    if cfg.source not in ("synthetic", "movielens", "dir"):
        raise UserError(f"unknown data source '{cfg.source}' (synthetic, movielens, dir)")
    if not (path / SCHEMA_FILE).is_file() and cfg.source != "dir" and is_main():
        if cfg.source == "synthetic":
            from tetrad.data.ctr_synthetic import generate

            generate(path, cfg.synthetic)
        else:
            from tetrad.data.ctr_public import movielens_multitask

            movielens_multitask(path, negatives=cfg.movielens_negatives, seed=seed)
    barrier()
    if cfg.source == "synthetic":
        _check_generated_with(path, cfg.synthetic)
    return path


def _check_generated_with(path: Path, synthetic: SyntheticCTRConfig) -> None:
    """A synthetic log found at `path` must be the one these settings generate: a log made with
    other settings, or by an earlier teacher, would be trained on silently."""
    extra = CTRSchema.load(path).extra
    saved = extra.get("generator")
    if saved != synthetic.model_dump() or "teacher" not in extra:
        differ = [k for k in synthetic.model_dump() if (saved or {}).get(k) != getattr(synthetic, k)]
        why = f"other settings ({', '.join(differ)})" if differ else "an earlier version of the teacher"
        raise UserError(f"the synthetic log at {path} was generated with {why}: delete it or set another data.path")


def load_features(cfg: DataConfig, path: Path) -> tuple[CTRSchema, FeatureSet]:
    schema = CTRSchema.load(path)
    features = select_features(schema, cfg.features, cfg.exclude, cfg.main_scenario)
    for split in ("train", "eval"):
        check_dataset(path / split, features, with_probs=schema.has_true_probs)
    return schema, features


def evaluate(model: RankingModel, path: Path, schema: CTRSchema, features: FeatureSet, batch_size: int,
             max_rows: int = 0, device: torch.device = torch.device("cpu"), skip_rows: int = 0,
             bootstrap: int = 0) -> dict:
    """CTR and CTCVR AUC / GAUC / logloss, overall and per scenario; when the data has true
    probabilities, the same for the oracle (`oracle/...`) and the additive oracle, the teacher
    without its interaction terms (`additive/...`). Rows from `skip_rows` on, at most `max_rows`
    (0: all). With `bootstrap` > 0, also the model's AUC and GAUC under that many replicates of
    the user bootstrap (`bootstrap/ctr_auc`, ..., and per scenario `bootstrap/ctr_auc/<name>`):
    lists that pair with any other run's on the same rows (`tetrad.core.bootstrap`)."""
    model.eval()
    truths = ("true_ctr", "true_ctcvr", "additive_ctr", "additive_ctcvr") if schema.has_true_probs else ()
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("p_ctr", "p_ctcvr", "click", "conversion", "user",
                                                        "scenario", *truths)}
    rows = 0
    with torch.no_grad():
        for b in iter_batches(path, features, batch_size, drop_last=False, with_probs=schema.has_true_probs,
                              skip_rows=skip_rows):
            if max_rows and rows >= max_rows:
                break
            p_ctr, p_ctcvr = probabilities(*model(*_to(b.inputs(), device)))
            for k, v in (("p_ctr", p_ctr), ("p_ctcvr", p_ctcvr), ("click", b.click), ("conversion", b.conversion),
                         ("user", b.user), ("scenario", b.scenario)):
                cols[k].append(v.cpu().numpy())
            if schema.has_true_probs:
                for k, v in zip(truths, (b.p_click, b.p_ctcvr, b.p_click_additive, b.p_ctcvr_additive)):
                    cols[k].append(v.numpy())
            rows += len(b)
    model.train()
    data = {k: np.concatenate(v)[: max_rows or None] for k, v in cols.items() if v}
    out: dict[str, float] = {"eval_rows": float(len(data["click"]))}
    names = list(schema.scenarios)  # by batch scenario id: the main scenario is id 0
    names[0], names[features.main_scenario] = names[features.main_scenario], names[0]
    scorers = [("", "p_ctr", "p_ctcvr")]
    if schema.has_true_probs:
        scorers += [("oracle/", "true_ctr", "true_ctcvr"), ("additive/", "additive_ctr", "additive_ctcvr")]
    for prefix, ctr_key, ctcvr_key in scorers:
        for task, label, score in (("ctr", "click", ctr_key), ("ctcvr", "conversion", ctcvr_key)):
            out.update(_task_metrics(f"{prefix}{task}", data[label], data[score], data["user"]))
            for s, name in enumerate(names):
                m = data["scenario"] == s
                if m.any():
                    out.update(_task_metrics(f"{prefix}{task}", data[label][m], data[score][m], data["user"][m],
                                             suffix=f"/{name}"))
    if bootstrap:
        out.update(_bootstrap_metrics(data, names, bootstrap))
    return out


def _bootstrap_metrics(data: dict[str, np.ndarray], names: list[str], replicates: int) -> dict[str, list[float]]:
    """The model's AUC and GAUC (overall) and AUC (per scenario) under each bootstrap replicate,
    rounded to 5 decimals (they go into committed summaries)."""
    ids, weights = group_weights(data["user"], replicates)
    rows = row_weights(data["user"], ids, weights)
    out = {}
    for task, label, score in (("ctr", "click", "p_ctr"), ("ctcvr", "conversion", "p_ctcvr")):
        y, p, users = data[label], data[score], data["user"]
        out[f"bootstrap/{task}_auc"] = auc_replicates(y, p, rows)
        out[f"bootstrap/{task}_gauc"] = gauc_replicates(y, p, users, ids, weights)
        for s, name in enumerate(names):
            m = data["scenario"] == s
            if m.any() and y[m].min() != y[m].max():  # AUC needs both classes
                out[f"bootstrap/{task}_auc/{name}"] = auc_replicates(y[m], p[m], rows[:, m])
    return {k: np.round(v, 5).tolist() for k, v in out.items()}


def _task_metrics(prefix: str, y: np.ndarray, p: np.ndarray, users: np.ndarray, suffix: str = "") -> dict:
    out = {}
    for metric, fn in (("auc", lambda: auc(y, p)), ("gauc", lambda: gauc(y, p, users)),
                       ("logloss", lambda: logloss(y, p))):
        try:
            out[f"{prefix}_{metric}{suffix}"] = fn()
        except ValueError:  # one class only: AUC undefined
            out[f"{prefix}_{metric}{suffix}"] = float("nan")
    return out


def _to(inputs: tuple, device: torch.device) -> tuple:
    cat, num, mh, scen = inputs
    return cat.to(device), num.to(device), [t.to(device) for t in mh], scen.to(device)


def train(cfg: TrainConfig) -> dict:
    info = init_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # tiny Adam moments otherwise slow CPU steps many-fold
    if cfg.batch_size % info.world_size:
        raise UserError(f"batch_size {cfg.batch_size} does not split evenly over {info.world_size} processes")
    seed_everything(cfg.seed)
    path = prepare_dataset(cfg.data, cfg.seed)
    schema, features = load_features(cfg.data, path)
    resolved = resolve_config(cfg.model, features)
    model = build_model(resolved, features, device=info.device)
    n_params = dense_parameter_count(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if info.world_size > 1 else model
    opt = torch.optim.Adam(ddp.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    train_rows = int(schema.extra.get("train_rows") or 0) or _count_rows(path / "train")
    fit_rows = train_rows - cfg.valid_rows  # the validation slice is the end of the training split
    per_epoch = max(fit_rows, 0) // cfg.batch_size
    if per_epoch == 0:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the {fit_rows} training rows left "
                        f"after valid_rows {cfg.valid_rows} (the log has {train_rows})")
    total = cfg.steps or per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup(total, cfg.warmup_fraction))
    run = RunDir("ranking", cfg)
    if is_main():  # the model as built: `tetrad ranking export` rebuilds it from this, not by resolving again
        atomic_write_json(run.path / MODEL_FILE, resolved.model_dump())
    start = run.restore(cfg.resume, model=ddp, optimizer=opt, scheduler=sched)["step"]
    ddp.train()
    local = shard(cfg.batch_size)
    losses: list[float] = []
    t0 = time.perf_counter()
    for step, batch in progress(zip(range(start + 1, total + 1), _stream(path / "train", features, cfg.batch_size,
                                                                        start, per_epoch)),
                                total=total - start, desc=f"train {resolved.name}"):
        b = batch.slice(local)
        ctr, cvr = ddp(*_to(b.inputs(), info.device))
        loss = multitask_loss(ctr, cvr, b.click.to(info.device), b.conversion.to(info.device))
        loss = loss + unwrap(ddp).aux_loss().to(info.device)
        if not torch.isfinite(loss):
            raise UserError(f"loss is {loss.item()} at step {step}: lower lr or check the data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = sched.get_last_lr()[0]  # this step's rate: the scheduler moves on after it
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % cfg.log_every == 0 or step == total:
            run.log(step, {"loss": float(np.mean(losses)), "epoch": (step - 1) // per_epoch, "lr": lr})
            losses = []
        if step % cfg.checkpoint_every == 0 or step == total:
            run.checkpointer.save(step, model=ddp, optimizer=opt, scheduler=sched)
    seconds = time.perf_counter() - t0
    summary: dict = {}
    if is_main():
        metrics: dict = {}
        if cfg.valid_rows:
            valid = evaluate(model, path / "train", schema, features, cfg.eval_batch_size, cfg.valid_rows,
                             info.device, skip_rows=fit_rows)
            metrics.update({f"valid/{k}": v for k, v in valid.items()})
        if cfg.final_eval:
            metrics.update(evaluate(model, path / "eval", schema, features, cfg.eval_batch_size, cfg.eval_rows,
                                    info.device, bootstrap=cfg.bootstrap))
        summary = {"model": resolved.name, "preset": resolved.preset, "lr": cfg.lr, "dense_params": n_params,
                   "backbone_params": backbone_parameter_count(model), "head_params": head_parameter_count(model),
                   "steps": total,
                   "train_seconds": seconds,
                   "train_samples_per_s": (total - start) * cfg.batch_size / max(seconds, 1e-9),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "resolved_model": resolved.model_dump(), "dataset": str(path), **metrics}
        run.log(total, {k: v for k, v in metrics.items() if "/" not in k})
        run.write_summary(summary)
    barrier()
    run.close()
    cleanup()
    return summary


def _stream(path: Path, features: FeatureSet, batch_size: int, start: int, per_epoch: int):
    """Global batches from step start+1 on: epoch after epoch in file order, each epoch the first
    `per_epoch` batches (what follows them is the validation slice)."""
    epoch, skip = divmod(start, per_epoch)
    while True:
        yield from itertools.islice(iter_batches(path, features, batch_size, skip=skip), per_epoch - skip)
        epoch, skip = epoch + 1, 0


def warmup(total: int, fraction: float):
    """The learning-rate factor of step i (0-based): linear from 1/w up to 1 over the first w =
    fraction x total steps, then 1. Adam's first steps are the largest relative to the weights;
    a warm-up keeps them from knocking models with LayerNorm and attention off course."""
    steps = max(1, round(fraction * total))
    return lambda i: min(1.0, (i + 1) / steps)


def _count_rows(path: Path) -> int:
    from tetrad.data.parquet import parquet_num_rows

    return parquet_num_rows(path)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m tetrad.ranking.train [key=value ...]
    import sys

    from tetrad.core.config import load_config

    train(load_config(TrainConfig, None, sys.argv[1:]))
