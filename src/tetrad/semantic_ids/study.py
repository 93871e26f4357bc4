"""`tetrad sid hourglass`: the hourglass study end to end.

For each dataset (the synthetic long-tailed catalogue, its uniform twin, MovieLens-100k),
each seed, and each method -

    rq_kmeans      faiss residual k-means (the baseline where the hourglass is reported)
    rq_vae         RQ-VAE (k-means init, dead-code reset, rotation trick)
    drop_layer2    rq_kmeans codes without the second layer (the paper's heuristic fix)
    adaptive       rq_kmeans codes with the top layer-2 codes removed until layer 2 reaches
                   `entropy_target` normalised entropy (the paper's adaptive variable-length fix)
    adaptive_k     the same fix with K removed top layer-2 codes for each K of `adaptive_ks`
                   (rows `adaptive_k1`, `adaptive_k2`, ...; the paper sweeps K)
    balanced       balanced RQ-KMeans (OneRec's practice; beyond the paper)

- the hourglass diagnostics, and (with `retrieval=true`) the TIGER-style retriever trained
on those SIDs and scored leave-one-out with trie-constrained beam search, beside the anchors
trained or computed on the same split: SASRec on item ids, popularity, and (synthetic data)
the sub-cluster heuristic (k random items of the last item's sub-cluster). The retrievers are
validated every `train.eval_every` (`sasrec.eval_every`) steps, stop after `patience`
validations without improvement, and are scored on every test user with their best weights;
each row records its steps, best step and seconds, and each user's Recall/NDCG at the largest
k, so that the report gives paired bootstrap intervals (`tetrad.core.bootstrap.paired_bootstrap`
over (seed, user) pairs) of each method's difference to rq_kmeans. Seeds vary the synthetic
catalogue, the quantizer and the models. With `both_normalisations` each retriever is also
scored with the other beam normalisation (`eval.renormalise` flipped), the same weights, so the
report pairs the two per user.

Each finished (dataset, seed, method) row is written at once to
`<results_dir>/<name>/<dataset>-s<seed>-<method>.json` with the settings it was made with, and a
later run of the study (this session or another, on another machine) reuses the rows whose
settings match and runs only the missing ones; a row made with other settings is a `UserError`.
So a study too long for one session is finished across several, its rows committed as they come.
The Markdown report goes to `output` (default docs/results/semantic-ids.md), which names the
command that made it and the minutes its rows took.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from tetrad.core.config import Parallel, PositiveFloat, PositiveInt, RunConfig, Seed, Share
from tetrad.core.errors import UserError
from tetrad.core.io import write_marked_block
from tetrad.semantic_ids.train import (EvalConfig, FixConfig, ModelConfig, QuantizerConfig, SasrecConfig, SidConfig,
                                       TrainConfig, apply_fix, build_quantizer, build_sids_for, evaluate_retriever,
                                       make_optimizer, retriever_step, run_sasrec, _make_model)
from tetrad.semantic_ids.data import DataConfig, leave_one_out, load_item_data, training_pairs

METHODS = ("rq_kmeans", "rq_vae", "drop_layer2", "adaptive", "adaptive_k", "balanced")
ANCHORS = ("subcluster", "popularity", "sasrec")  # item-level rankers beside the SID methods
DATASETS = ("long_tail", "uniform", "movielens")
# The study and benchmarks/sid_speed.py each own one block of the shared results document.
RESULTS_TITLE = "# Semantic IDs: results"


# The study's reduced sizes, as classes so that a nested override (train.steps=100) keeps the
# other study defaults instead of falling back to the single-run defaults.
class StudyData(DataConfig):
    items: PositiveInt = 10_000
    users: PositiveInt = 1000


class StudyQuantizer(QuantizerConfig):
    codebook_size: PositiveInt = 64
    steps: PositiveInt = 1500


class StudyModel(ModelConfig):
    d_model: PositiveInt = 64
    layers: PositiveInt = 2
    heads: PositiveInt = 4
    d_kv: PositiveInt = 16
    d_ff: PositiveInt = 256
    max_history: PositiveInt = 10


class StudyTrain(TrainConfig):
    steps: PositiveInt = 400
    batch_size: PositiveInt = 64
    lr: PositiveFloat = 3e-3
    warmup: PositiveInt = 50


class StudySasrec(SasrecConfig):
    steps: PositiveInt = 400
    max_len: PositiveInt = 20


class StudyConfig(RunConfig):
    name: str = "hourglass"
    datasets: Annotated[list[str], Field(min_length=1)] = list(DATASETS)
    methods: Annotated[list[str], Field(min_length=1)] = list(METHODS)
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0, 1, 2]
    retrieval_seeds: list[Seed] = [0, 1, 2]  # the retriever is trained for these seeds (a subset saves CPU time)
    # a dataset, method or anchor (adaptive_k: the whole K sweep), or "<dataset>/<method>", that
    # runs on fewer of `seeds` ({uniform: [0], uniform/adaptive_k: []}); its tasks run last
    seeds_of: dict[str, list[Seed]] = {}
    threads: Parallel = 1  # torch threads per process: small models train fastest on one thread of a shared machine
    workers: Parallel = 1  # (dataset, seed, method) tasks run in this many processes at once
    block: str = "hourglass"  # the marked block of `output` that this study's report replaces
    entropy_target: Share = 0.9
    adaptive_ks: Annotated[list[PositiveInt], Field(min_length=1)] = [1, 2, 4, 8]  # the K sweep (method adaptive_k)
    eos: Literal["auto", "always"] = "auto"  # as SidConfig.eos
    retrieval: bool = True
    both_normalisations: bool = True  # also score each retriever with eval.renormalise flipped
    output: str = "docs/results/semantic-ids.md"
    results_dir: str = "docs/results/semantic-ids"  # finished rows, reused by later runs (see above)
    data: StudyData = StudyData()
    quantizer: StudyQuantizer = StudyQuantizer()
    model: StudyModel = StudyModel()
    train: StudyTrain = StudyTrain()
    eval: EvalConfig = EvalConfig(beam=20, batch_size=250)
    sasrec: StudySasrec = StudySasrec()


def expand_methods(study: StudyConfig) -> list[str]:
    """The study's methods with `adaptive_k` as one row per K of the sweep."""
    out = []
    for m in study.methods:
        out += [f"adaptive_k{k}" for k in study.adaptive_ks] if m == "adaptive_k" else [m]
    return out


def task_seeds(study: StudyConfig, dataset: str, method: str) -> list[int]:
    """The seeds of `study.seeds` that the (dataset, method) task runs on (`seeds_of`)."""
    base = "adaptive_k" if method.startswith("adaptive_k") else method
    return [s for s in study.seeds if all(s in study.seeds_of.get(key, study.seeds)
                                          for key in (dataset, base, f"{dataset}/{base}"))]


def method_config(study: StudyConfig, dataset: str, method: str, seed: int) -> SidConfig:
    q = study.quantizer.model_copy(update={
        "kind": {"rq_vae": "rq_vae", "balanced": "balanced_rq_kmeans"}.get(method, "rq_kmeans")})
    if method.startswith("adaptive_k"):
        fix = FixConfig(kind="adaptive", k=int(method.removeprefix("adaptive_k")))
    else:
        fix = FixConfig(kind={"drop_layer2": "drop_layer2", "adaptive": "adaptive"}.get(method, "none"),
                        entropy_target=study.entropy_target if method == "adaptive" else None)
    return SidConfig(name=f"{dataset}-{method}-{seed}", seed=seed, root=study.root, eos=study.eos,
                     data=DataConfig(**{**study.data.model_dump(), "source": dataset}),
                     quantizer=QuantizerConfig(**q.model_dump()), fix=fix,
                     model=ModelConfig(**study.model.model_dump()), train=TrainConfig(**study.train.model_dump()),
                     eval=study.eval, sasrec=SasrecConfig(**study.sasrec.model_dump()))


def train_and_score(cfg: SidConfig, codes: np.ndarray, split, per_user: bool = False,
                    both_normalisations: bool = False) -> dict:
    """Train the retriever on these SIDs (no checkpoints: the study re-runs an unfinished row) with
    validation every `train.eval_every` steps and early stopping, and score its best weights (also
    with the other beam normalisation, under "other_normalisation", with `both_normalisations`)."""
    from tetrad.core.early_stopping import EarlyStopping

    sids = build_sids_for(cfg, codes)
    hist, target = training_pairs(split.train, cfg.model.max_history)
    torch.manual_seed(cfg.seed)
    model = _make_model(cfg, sids.vocab_size)
    opt, sched = make_optimizer(model, cfg.train)
    gen = torch.Generator().manual_seed(cfg.seed)
    cpu = torch.device("cpu")
    valid_n = cfg.eval.valid_users or len(split.valid[1])
    monitor = f"recall@{max(cfg.eval.ks)}"
    stopper = EarlyStopping(cfg.train.patience)
    best_state = None
    started = time.perf_counter()
    step = 0
    for step in range(1, cfg.train.steps + 1):
        idx = torch.randint(0, len(target), (cfg.train.batch_size,), generator=gen).tolist()
        retriever_step(model, opt, sched, sids, [hist[i] for i in idx], [target[i] for i in idx],
                       cfg.model.max_history, cpu)
        if step % cfg.train.eval_every == 0:
            valid = evaluate_retriever(model, sids, split.valid[0][:valid_n], split.valid[1][:valid_n], cfg, cpu)
            if stopper.update(step, valid[monitor]):
                best_state = {n: v.detach().clone() for n, v in model.state_dict().items()}
            if stopper.stop:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    seconds = time.perf_counter() - started
    out = evaluate_retriever(model, sids, *split.test, cfg, cpu, per_user=per_user)
    if both_normalisations:
        flipped = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"renormalise": not cfg.eval.renormalise})})
        out["other_normalisation"] = evaluate_retriever(model, sids, *split.test, flipped, cpu, per_user=per_user)
    out.update({"sid_length": float(sids.lengths.mean()), "eos": bool(sids.eos), "renormalised": cfg.eval.renormalise,
                "steps": step,
                "best_step": stopper.best_step if stopper.best_step >= 0 else step, "train_seconds": seconds})
    return out


def run_task(study: StudyConfig, dataset: str, seed: int, method: str, run_path: Path, plots: Path) -> dict:
    """One method's diagnostics (and retrieval, for the retrieval seeds) on one dataset and seed;
    an anchor (`ANCHORS`) is an item-level ranker on the same split."""
    started = time.perf_counter()
    row = _task_row(study, dataset, seed, method, run_path, plots)
    row["task_seconds"] = time.perf_counter() - started
    return row


def _task_row(study: StudyConfig, dataset: str, seed: int, method: str, run_path: Path, plots: Path) -> dict:
    from tetrad.semantic_ids.anchors import popularity_ranking, score_ranking, subcluster_ranking
    from tetrad.semantic_ids.hourglass import diagnose, hourglass_score, plot_diagnostics

    torch.set_num_threads(study.threads)  # again here: a worker process starts with the default
    cfg = method_config(study, dataset, "rq_kmeans" if method in ANCHORS else method, seed)
    data = load_item_data(cfg.data, seed, cache_dir=Path(study.root) / "sid" / "_cache")
    retrieval = study.retrieval and seed in study.retrieval_seeds
    split = leave_one_out(data.sequences, len(data.embeddings)) if retrieval else None
    if method in ANCHORS:
        row = {"dataset": dataset, "method": method, "seed": seed}
        k, hist = max(cfg.eval.ks), split.test[0]
        if method == "sasrec":
            import shutil

            # a pending row: a SASRec checkpoint left here was made by an earlier attempt, perhaps
            # with other settings (the committed rows are the study's state, not this folder)
            shutil.rmtree(run_path / f"sasrec_{dataset}_{seed}", ignore_errors=True)
            row["retrieval"] = run_sasrec(cfg, split, len(data.embeddings), run_path / f"sasrec_{dataset}_{seed}",
                                          torch.device("cpu"), per_user=True)
        elif method == "popularity":
            row["retrieval"] = score_ranking(popularity_ranking(hist, len(data.embeddings), k), split.test[1],
                                             cfg.eval.ks, per_user=True)
        else:
            row["retrieval"] = score_ranking(subcluster_ranking(hist, data.sub_cluster, k, seed), split.test[1],
                                             cfg.eval.ks, per_user=True)
        return row
    t0 = time.perf_counter()
    raw = build_quantizer(cfg.quantizer, seed).fit_encode(data.embeddings)
    codes, info = apply_fix(raw, cfg.fix, cfg.quantizer.codebook_size)
    report = diagnose(codes, cfg.quantizer.codebook_size)
    row = {"dataset": dataset, "method": method, "seed": seed, "items": len(codes),
           "per_layer": report["per_layer"], "collision_rate": report["collision_rate"],
           "fix": info, "tokenize_seconds": time.perf_counter() - t0}
    if codes.shape[1] >= 3:
        row["hourglass"] = hourglass_score(report)
    if seed == study.seeds[0]:
        plot_diagnostics(codes, cfg.quantizer.codebook_size, plots, prefix=f"{dataset}_{method}_")
    if retrieval:
        t1 = time.perf_counter()
        row["retrieval"] = train_and_score(cfg, codes, split, per_user=True,
                                           both_normalisations=study.both_normalisations)
        row["retrieval_seconds"] = time.perf_counter() - t1
    return row


def anchors(study: StudyConfig, dataset: str) -> list[str]:
    """The anchors a dataset gets: none without retrieval; the sub-cluster heuristic only where
    there are sub-clusters (the synthetic catalogues); SASRec unless disabled."""
    if not study.retrieval:
        return []
    return [a for a in ANCHORS if (a != "subcluster" or dataset != "movielens")
            and (a != "sasrec" or study.sasrec.enabled)]


def run_study(study: StudyConfig, command: str) -> dict:
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tetrad.core.io import atomic_write_json, atomic_write_text
    from tetrad.core.progress import progress
    from tetrad.core.rundir import RunDir
    from tetrad.core.seeding import seed_everything

    for d in study.datasets:
        if d not in DATASETS:
            raise UserError(f"unknown dataset '{d}' (known: {', '.join(DATASETS)})")
    for m in study.methods:
        if m not in METHODS:
            raise UserError(f"unknown method '{m}' (known: {', '.join(METHODS)})")
    if "adaptive_k" in study.methods and max(study.adaptive_ks) >= study.quantizer.codebook_size:
        raise UserError(f"adaptive_ks must stay below quantizer.codebook_size ({study.quantizer.codebook_size})")
    for key, seeds in study.seeds_of.items():
        dataset, _, method = key.partition("/")
        if not (key in (*study.datasets, *study.methods, *ANCHORS)
                or (dataset in study.datasets and method in (*study.methods, *ANCHORS))):
            raise UserError(f"seeds_of names '{key}': not one of the study's datasets, methods or anchors, or "
                            "<dataset>/<method>")
        if not set(seeds) <= set(study.seeds):
            raise UserError(f"seeds_of.{key} must be a subset of seeds {study.seeds}")
    methods = expand_methods(study)
    seed_everything(study.seed)
    torch.set_num_threads(study.threads)
    # the run directory holds only plots and the report: the rows are the study's state
    run = RunDir("sid", study, tensorboard=False, restart=True)
    rows_dir = Path(study.results_dir) / study.name
    tasks = [(d, s, m) for s in study.seeds for d in study.datasets
             for m in [*methods, *(anchors(study, d) if s in study.retrieval_seeds else [])]
             if s in task_seeds(study, d, m)]
    results = [row for task in tasks if (row := saved_row(study, rows_dir, *task)) is not None]
    # the tasks on every seed first: a study stopped early has its main comparison
    pending = sorted((task for task in tasks if not (rows_dir / row_file(*task)).is_file()),
                     key=lambda task: len(task_seeds(study, task[0], task[2])) < len(study.seeds))
    if results:
        print(f"hourglass: {len(results)} of {len(tasks)} rows reused from {rows_dir}")

    def finished(row: dict) -> None:
        atomic_write_json(rows_dir / row_file(row["dataset"], row["seed"], row["method"]),
                          {"settings": row_settings(study, row["seed"]), "row": row})
        results.append(row)
        run.write_summary({"results": len(results), "minutes": row_minutes(results)})

    if study.workers == 1 or len(pending) < 2:
        for task in progress(pending, desc="hourglass"):
            finished(run_task(study, *task, run.path, run.plots))
    else:  # tasks are independent; each result is kept as soon as its task ends
        with ProcessPoolExecutor(min(study.workers, len(pending)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_task, study, *task, run.path, run.plots) for task in pending]
            for future in progress(as_completed(futures), total=len(futures), desc="hourglass"):
                finished(future.result())
    cell_order = {(d, s): i for i, (d, s) in enumerate((d, s) for s in study.seeds for d in study.datasets)}
    method_order = {m: i for i, m in enumerate([*methods, *ANCHORS])}
    # the same order however the tasks ran
    results.sort(key=lambda r: (cell_order.get((r["dataset"], r["seed"]), len(cell_order)),
                                method_order.get(r["method"], len(method_order))))
    minutes = row_minutes(results)
    text = render_report(study, results, command, minutes)
    write_marked_block(study.output, study.block, text, title=RESULTS_TITLE)
    atomic_write_text(run.path / "report.md", text)
    run.write_summary({"results": len(results), "minutes": minutes, "output": study.output})
    print(f"hourglass: {len(results)} results in {minutes:.1f} min; report at {study.output}")
    return {"results": results}


def row_file(dataset: str, seed: int, method: str) -> str:
    return f"{dataset}-s{seed}-{method}.json"


# where the study's rows and report go, how its tasks are spread and which tasks there are: a row
# made under other values of these is still the same row
_NOT_ROW_SETTINGS = ("name", "root", "resume", "datasets", "methods", "seeds", "retrieval_seeds", "adaptive_ks",
                     "seeds_of", "threads", "workers", "block", "output", "results_dir")


def row_settings(study: StudyConfig, seed: int) -> dict:
    """What a row's numbers depend on: the study's settings but `_NOT_ROW_SETTINGS`, and whether
    the row's seed trains retrievers."""
    settings = {k: v for k, v in study.model_dump(mode="json").items() if k not in _NOT_ROW_SETTINGS}
    return {**settings, "retrieval": study.retrieval and seed in study.retrieval_seeds}


def saved_row(study: StudyConfig, rows_dir: Path, dataset: str, seed: int, method: str) -> dict | None:
    """The committed row of this task, None if there is none; a `UserError` if it was made with
    other settings (a setting the file lacks matches at its default: it was added later)."""
    import json

    from tetrad.core.rundir import config_differences

    path = rows_dir / row_file(dataset, seed, method)
    if not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        settings, row = saved["settings"], saved["row"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path} is not a study row (JSON with 'settings' and 'row'): delete it to re-run the task") from None
    defaults = {**StudyConfig.model_construct().model_dump(mode="json"), "retrieval": True}
    differ = config_differences(settings, row_settings(study, seed), defaults=defaults)
    if differ:
        raise UserError(f"{path} was made with other settings ({', '.join(differ[:5])}): delete it or choose "
                        f"another name")
    return row


def row_minutes(results: list[dict]) -> float:
    """Minutes the rows' tasks took, summed (over sessions and worker processes)."""
    return sum(r.get("task_seconds", 0.0) for r in results) / 60


# ---- report ---------------------------------------------------------------------------------------


def _ms(values: list[float], digits: int = 3) -> str:
    v = np.asarray(values, dtype=float)
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _rows(results, dataset, method):
    return [r for r in results if r["dataset"] == dataset and r["method"] == method]


def render_report(study: StudyConfig, results: list[dict], command: str, minutes: float) -> str:
    seeds = len(study.seeds)
    lines = ["## The hourglass study" + (f" ({study.block})" if study.block != "hourglass" else ""), "",
             f"Made by `{command}` ({minutes:.0f} min of tasks summed, on {platform.machine()} CPU, {study.threads} torch "
             f"thread(s) each; rows from `{study.results_dir}/{study.name}/`; the machine was shared with other jobs, "
             "so no timing here is a benchmark).", "",
             f"Values are mean ± standard deviation over {seeds} seed{'s' if seeds > 1 else ''} "
             f"({', '.join(map(str, study.seeds))})"
             + "".join(f", {key} on seed{'s' if len(v) > 1 else ''} {', '.join(map(str, v))} only" if v
                       else f", no {key}" for key, v in study.seeds_of.items())
             + "; seeds vary the synthetic catalogue, the quantizer and the models. "
             f"Codebooks: {study.quantizer.layers} x {study.quantizer.codebook_size}. Synthetic catalogues: "
             f"{study.data.items:,} items x {study.data.dim} dims, {study.data.top_clusters} x "
             f"{study.data.sub_clusters} clusters, Zipf exponent {study.data.zipf} (long tail) or 0 (uniform twin), "
             f"{study.data.users:,} users; within a sub-cluster item popularity Zipf {study.data.item_zipf}, user "
             f"taste pull {study.data.user_pull} (0: items uniform within their sub-cluster). "
             + ("MovieLens-100k: 1,682 items (title, year, genres through all-MiniLM-L6-v2), 943 users. "
                if "movielens" in study.datasets else "") +
             f"Fixes are applied to the RQ-KMeans codes; `adaptive` removes the most frequent layer-2 codes "
             f"until layer 2 reaches normalised entropy {study.entropy_target}; `adaptive_kK` removes the K most "
             f"frequent. IDs end with EOS {'always' if study.eos == 'always' else 'only where one would be a prefix of another'}; "
             f"beam scores are {'renormalised over the allowed tokens' if study.eval.renormalise else 'softmax over the whole vocabulary'}.",
             "",
             "### Diagnostics per layer", "",
             "Normalised entropy (1 = every code equally used) and Gini (0 = equal counts) of each layer's code "
             "counts; `dip` = mean entropy of layers 1 and 3 minus layer 2's (> 0 is an hourglass). For "
             "`drop_layer2` the columns are its two layers (the original 1 and 3).", "",
             "| dataset | method | entropy L1 | entropy L2 | entropy L3 | Gini L1 | Gini L2 | Gini L3 | top-1 share L2 "
             "| dip | collisions | removed codes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    methods = expand_methods(study)
    k = max(study.eval.ks)
    for d in study.datasets:
        for m in methods:
            rows = _rows(results, d, m)
            if not rows:
                continue
            layers = len(rows[0]["per_layer"])
            ent = [_ms([r["per_layer"][i]["entropy"] for r in rows]) if i < layers else "" for i in range(3)]
            gin = [_ms([r["per_layer"][i]["gini"] for r in rows]) if i < layers else "" for i in range(3)]
            top1 = _ms([r["per_layer"][1]["top1_share"] for r in rows])
            dip = _ms([r["hourglass"]["entropy_dip"] for r in rows]) if "hourglass" in rows[0] else "n/a"
            removed = _ms([len(r["fix"].get("removed_codes", [])) for r in rows], 1) if m.startswith("adaptive") else ""
            lines.append(f"| {d} | {m} | {' | '.join(ent)} | {' | '.join(gin)} | {top1} | {dip} | "
                         f"{_ms([r['collision_rate'] for r in rows])} | {removed} |")
    if study.retrieval:
        lines += ["", "### Retrieval (leave-one-out test, trie-constrained beam search, beam "
                  f"{study.eval.beam})", "",
                  f"TIGER-style T5 ({study.model.layers}+{study.model.layers} layers, d_model {study.model.d_model}, "
                  f"batches of {study.train.batch_size}, history {study.model.max_history} items, at most "
                  f"{study.train.steps} steps, validated every {study.train.eval_every}, patience "
                  f"{study.train.patience}); "
                  + (f"SASRec on item ids (at most {study.sasrec.steps} steps, validated every "
                     f"{study.sasrec.eval_every}, patience {study.sasrec.patience}). " if study.sasrec.enabled else "") +
                  "Each model is scored on every test user with the weights of its best validation. Anchors: "
                  f"`popularity` (the {k} most frequent items), `subcluster` ({k} random items of the last item's "
                  "sub-cluster; synthetic data only), `sasrec`. Full ranking; seen items are not excluded. "
                  "A collision token keeps every SID unique. Mean ± standard deviation over seeds "
                  f"{', '.join(str(s) for s in study.seeds if s in study.retrieval_seeds)}; steps are those run "
                  "(best step in brackets), seconds of training.", "",
                  "| dataset | method | Recall@5 | NDCG@5 | Recall@10 | NDCG@10 | mean SID length | steps (best) "
                  "| seconds |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for d in study.datasets:
            for m in [*methods, *ANCHORS]:
                rows = [r for r in _rows(results, d, m) if "retrieval" in r]
                if rows:
                    met = [_ms([r["retrieval"][key] for r in rows], 4) for key in ("recall@5", "ndcg@5", "recall@10",
                                                                                   "ndcg@10")]
                    length = _ms([r["retrieval"]["sid_length"] for r in rows], 2) if m not in ANCHORS else ""
                    trained = "steps" in rows[0]["retrieval"]
                    steps = (f"{_ms([r['retrieval']['steps'] for r in rows], 0)} "
                             f"({_ms([r['retrieval']['best_step'] for r in rows], 0)})") if trained else ""
                    secs = _ms([r["retrieval"]["train_seconds"] for r in rows], 0) if trained else ""
                    lines.append(f"| {d} | {m} | {' | '.join(met)} | {length} | {steps} | {secs} |")
        lines += ["", f"### Paired differences to rq_kmeans (Recall@{k}, NDCG@{k})", "",
                  "Mean difference per (seed, user) pair and its 95% bootstrap percentile interval "
                  "(`paired_bootstrap`, 2,000 resamples of the pairs): the interval covers which users are tested; "
                  "training noise only as far as the seeds differ.", "",
                  f"| dataset | method | Recall@{k} | difference [95% CI] | NDCG@{k} | difference [95% CI] |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for d in study.datasets:
            for m in [*methods, *ANCHORS]:
                if m == "rq_kmeans":
                    continue
                cells = []
                for metric in (f"recall@{k}", f"ndcg@{k}"):
                    pair = paired_difference(results, d, m, "rq_kmeans", metric)
                    if pair is not None:
                        (mean, lo, hi), value = pair
                        cells += [f"{value:.4f}", f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"]
                if cells:
                    lines.append(f"| {d} | {m} | {' | '.join(cells)} |")
        normalisation = [(d, m) for d in study.datasets for m in methods
                         if any("other_normalisation" in r.get("retrieval", {}) for r in _rows(results, d, m))]
        if normalisation:
            lines += ["", f"### Beam normalisation (Recall@{k})", "",
                      "The same weights scored twice: beam scores as a softmax over the whole vocabulary (Hugging "
                      "Face's `generate`) and renormalised over the tokens the trie allows (GRID's). Difference "
                      "renormalised minus whole vocabulary per (seed, user) pair, 95% bootstrap interval.", "",
                      "| dataset | method | whole vocabulary | renormalised | difference [95% CI] |",
                      "| --- | --- | --- | --- | --- |"]
            for d, m in normalisation:
                (mean, lo, hi), renorm, whole = normalisation_difference(results, d, m, f"recall@{k}")
                lines.append(f"| {d} | {m} | {whole:.4f} | {renorm:.4f} | {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    lines += ["", "### What the numbers say", "", *findings(study, results), ""]
    return "\n".join(lines)


def _mean(results, d, m, get) -> float | None:
    rows = _rows(results, d, m)
    vals = [get(r) for r in rows if get(r) is not None]
    return float(np.mean(vals)) if vals else None


def paired_difference(results, dataset, method, base, metric):
    """((mean, low, high) of `method` - `base` per (seed, user) pair, `method`'s mean), or None
    where the two share no seed with per-user values."""
    from tetrad.core.bootstrap import paired_bootstrap

    ref = {r["seed"]: r["retrieval"]["per_user"][metric] for r in _rows(results, dataset, base)
           if "per_user" in r.get("retrieval", {})}
    a, b = [], []
    for r in _rows(results, dataset, method):
        values = r.get("retrieval", {}).get("per_user", {}).get(metric)
        if values is not None and r["seed"] in ref:
            a += values
            b += ref[r["seed"]]
    if not a:
        return None
    return paired_bootstrap(a, b), float(np.mean(a))


def normalisation_difference(results, dataset, method, metric):
    """((mean, low, high) of renormalised - whole-vocabulary beam scores per (seed, user) pair,
    the renormalised mean, the whole-vocabulary mean) over the rows scored both ways."""
    from tetrad.core.bootstrap import paired_bootstrap

    renorm, whole = [], []
    for r in _rows(results, dataset, method):
        retrieval = r.get("retrieval", {})
        if "other_normalisation" not in retrieval:
            continue
        # which of the two is the main score depends on the study's eval.renormalise
        main, other = retrieval["per_user"][metric], retrieval["other_normalisation"]["per_user"][metric]
        first, second = (main, other) if retrieval.get("renormalised") else (other, main)
        renorm += first
        whole += second
    return paired_bootstrap(renorm, whole), float(np.mean(renorm)), float(np.mean(whole))


def findings(study: StudyConfig, results: list[dict]) -> list[str]:
    """Plain statements computed from the results (so they cannot drift from the tables)."""
    out = []
    dip = lambda r: r.get("hourglass", {}).get("entropy_dip")  # noqa: E731
    rise = lambda r: r.get("hourglass", {}).get("gini_rise")  # noqa: E731
    for d in study.datasets:
        for m in ("rq_kmeans", "rq_vae"):
            rows = _rows(results, d, m)
            if not rows or "hourglass" not in rows[0]:
                continue
            dips = [dip(r) for r in rows]
            rises = [rise(r) for r in rows]
            seen = sum(a > 0.02 and b > 0.02 for a, b in zip(dips, rises))
            verdict = ("an hourglass" if seen == len(rows) else "no hourglass" if seen == 0
                       else f"an hourglass in {seen} of {len(rows)} seeds")
            out.append(f"- {d}, {m}: {verdict} (layer-2 entropy dip {np.mean(dips):+.3f}, Gini rise "
                       f"{np.mean(rises):+.3f}; threshold 0.02 on both).")
    l2_ent = lambda r: r["per_layer"][1]["entropy"] if len(r["per_layer"]) >= 3 else None  # noqa: E731
    for d in study.datasets:
        base = _mean(results, d, "rq_kmeans", l2_ent)
        for m in [x for x in expand_methods(study) if x.startswith("adaptive")] + ["balanced"]:
            fixed = _mean(results, d, m, l2_ent)
            if base is not None and fixed is not None:
                out.append(f"- {d}, {m}: layer-2 entropy {base:.3f} -> {fixed:.3f} against rq_kmeans.")
    k = max(study.eval.ks)
    for d in study.datasets:
        base = [v for r in _rows(results, d, "rq_kmeans") for v in r.get("retrieval", {}).get("per_user", {})
                .get(f"recall@{k}", [])]
        parts = []
        for m in [*expand_methods(study), *ANCHORS]:
            pair = paired_difference(results, d, m, "rq_kmeans", f"recall@{k}") if m != "rq_kmeans" else None
            if pair is None:
                continue
            (mean, lo, hi), value = pair
            verdict = "higher" if lo > 0 else "lower" if hi < 0 else "no clear difference"
            parts.append(f"{m} {value:.4f} ({mean:+.4f} [{lo:+.4f}, {hi:+.4f}], {verdict})")
        if base and parts:
            out.append(f"- {d}, Recall@{k} against rq_kmeans {np.mean(base):.4f} (paired over seeds and users, 95% "
                       f"interval): {', '.join(parts)}.")
    return out
