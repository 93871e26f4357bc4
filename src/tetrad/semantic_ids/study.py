"""`tetrad sid hourglass`: the hourglass study end to end.

For each dataset (the synthetic long-tailed catalogue, its uniform twin, MovieLens-100k),
each seed, and each method -

    rq_kmeans      faiss residual k-means (the baseline where the hourglass is reported)
    rq_vae         RQ-VAE (k-means init, dead-code reset, rotation trick)
    drop_layer2    rq_kmeans codes without the second layer (the paper's heuristic fix)
    adaptive       rq_kmeans codes with the top layer-2 codes removed until layer 2 reaches
                   `entropy_target` normalised entropy (the paper's adaptive variable-length fix)
    balanced       balanced RQ-KMeans (OneRec's practice; beyond the paper)

- the hourglass diagnostics, and (with `retrieval=true`) the TIGER-style retriever trained
on those SIDs and scored leave-one-out with trie-constrained beam search, beside SASRec on
item ids trained on the same split. Seeds vary the synthetic catalogue, the quantizer and
the models. Results go to `runs/sid/<name>/results.json` and the Markdown report to
`output` (default docs/results/semantic-ids.md), which names the command that made it.
`resume=true` keeps the finished (dataset, seed) cells of an interrupted study and runs the rest.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Annotated

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

METHODS = ("rq_kmeans", "rq_vae", "drop_layer2", "adaptive", "balanced")
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
    threads: Parallel = 1  # torch threads per process: small models train fastest on one thread of a shared machine
    workers: Parallel = 1  # (dataset, seed, method) tasks run in this many processes at once
    block: str = "hourglass"  # the marked block of `output` that this study's report replaces
    entropy_target: Share = 0.9
    retrieval: bool = True
    output: str = "docs/results/semantic-ids.md"
    data: StudyData = StudyData()
    quantizer: StudyQuantizer = StudyQuantizer()
    model: StudyModel = StudyModel()
    train: StudyTrain = StudyTrain()
    eval: EvalConfig = EvalConfig(beam=20, batch_size=250)
    sasrec: StudySasrec = StudySasrec()


def method_config(study: StudyConfig, dataset: str, method: str, seed: int) -> SidConfig:
    q = study.quantizer.model_copy(update={
        "kind": {"rq_vae": "rq_vae", "balanced": "balanced_rq_kmeans"}.get(method, "rq_kmeans")})
    fix = FixConfig(kind={"drop_layer2": "drop_layer2", "adaptive": "adaptive"}.get(method, "none"),
                    entropy_target=study.entropy_target if method == "adaptive" else None)
    return SidConfig(name=f"{dataset}-{method}-{seed}", seed=seed, root=study.root,
                     data=DataConfig(**{**study.data.model_dump(), "source": dataset}),
                     quantizer=QuantizerConfig(**q.model_dump()), fix=fix,
                     model=ModelConfig(**study.model.model_dump()), train=TrainConfig(**study.train.model_dump()),
                     eval=study.eval, sasrec=SasrecConfig(**study.sasrec.model_dump()))


def train_and_score(cfg: SidConfig, codes: np.ndarray, split) -> dict[str, float]:
    """Train the retriever on these SIDs (no checkpoints: the study re-runs whole cells) and score it."""
    sids = build_sids_for(cfg, codes)
    hist, target = training_pairs(split.train, cfg.model.max_history)
    torch.manual_seed(cfg.seed)
    model = _make_model(cfg, sids.vocab_size)
    opt, sched = make_optimizer(model, cfg.train)
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.train.steps):
        idx = torch.randint(0, len(target), (cfg.train.batch_size,), generator=gen).tolist()
        retriever_step(model, opt, sched, sids, [hist[i] for i in idx], [target[i] for i in idx],
                       cfg.model.max_history, torch.device("cpu"))
    out = evaluate_retriever(model, sids, *split.test, cfg, torch.device("cpu"))
    out["sid_length"] = float(sids.lengths.mean())
    return out


def run_task(study: StudyConfig, dataset: str, seed: int, method: str, run_path: Path, plots: Path) -> dict:
    """One method's diagnostics (and retrieval, for the retrieval seeds) on one dataset and seed;
    `method="sasrec"` is the item-id baseline on the same split."""
    from tetrad.semantic_ids.hourglass import diagnose, hourglass_score, plot_diagnostics

    torch.set_num_threads(study.threads)  # again here: a worker process starts with the default
    cfg = method_config(study, dataset, "rq_kmeans" if method == "sasrec" else method, seed)
    data = load_item_data(cfg.data, seed, cache_dir=Path(study.root) / "sid" / "_cache")
    retrieval = study.retrieval and seed in study.retrieval_seeds
    split = leave_one_out(data.sequences, len(data.embeddings)) if retrieval else None
    if method == "sasrec":
        return {"dataset": dataset, "method": "sasrec", "seed": seed,
                "retrieval": run_sasrec(cfg, split, len(data.embeddings), run_path / f"sasrec_{dataset}_{seed}",
                                        torch.device("cpu"))}
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
        row["retrieval"] = train_and_score(cfg, codes, split)
        row["retrieval_seconds"] = time.perf_counter() - t1
    return row


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
    seed_everything(study.seed)
    torch.set_num_threads(study.threads)
    run = RunDir("sid", study, tensorboard=False)
    results: list[dict] = []
    spent = 0.0  # minutes of earlier sessions of this study (resume=true)
    if study.resume and (run.path / "results.json").is_file():
        import json

        results = json.loads((run.path / "results.json").read_text())
        summary = run.path / "summary.json"
        spent = json.loads(summary.read_text()).get("minutes", 0.0) if summary.is_file() else 0.0
    done = {(r["dataset"], r["seed"]) for r in results if r.get("cell_done")}
    results = [r for r in results if (r["dataset"], r["seed"]) in done]  # drop half-finished cells
    # seed by seed, so that an interrupted study (resume=true) has whole seeds across datasets
    cells = [(d, s) for s in study.seeds for d in study.datasets if (d, s) not in done]
    sasrec = ["sasrec"] if study.retrieval and study.sasrec.enabled else []
    tasks = [(d, s, m) for d, s in cells for m in [*study.methods, *(sasrec if s in study.retrieval_seeds else [])]]
    pending = {cell: sum(t[:2] == cell for t in tasks) for cell in cells}
    started = time.perf_counter()

    def finished(row: dict) -> None:
        cell = (row["dataset"], row["seed"])
        pending[cell] -= 1
        if pending[cell] == 0:
            row["cell_done"] = True  # resume=true keeps only cells with every task finished
        results.append(row)
        atomic_write_json(run.path / "results.json", results)
        run.write_summary({"results": len(results), "minutes": spent + (time.perf_counter() - started) / 60})

    if study.workers == 1 or len(tasks) < 2:
        for task in progress(tasks, desc="hourglass"):
            finished(run_task(study, *task, run.path, run.plots))
    else:  # tasks are independent; each result is kept as soon as its task ends
        with ProcessPoolExecutor(min(study.workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(run_task, study, *task, run.path, run.plots) for task in tasks]
            for future in progress(as_completed(futures), total=len(futures), desc="hourglass"):
                finished(future.result())
    cell_order = {(d, s): i for i, (d, s) in enumerate((d, s) for s in study.seeds for d in study.datasets)}
    method_order = {m: i for i, m in enumerate([*study.methods, "sasrec"])}
    # the same order however the tasks ran
    results.sort(key=lambda r: (cell_order.get((r["dataset"], r["seed"]), len(cell_order)),
                                method_order.get(r["method"], len(method_order))))
    minutes = spent + (time.perf_counter() - started) / 60
    text = render_report(study, results, command, minutes)
    write_marked_block(study.output, study.block, text, title=RESULTS_TITLE)
    atomic_write_text(run.path / "report.md", text)
    run.write_summary({"results": len(results), "minutes": minutes, "output": study.output})
    print(f"hourglass: {len(results)} results in {minutes:.1f} min; report at {study.output}")
    return {"results": results}


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
             f"Made by `{command}` ({minutes:.0f} min on {platform.machine()} CPU, {study.threads} torch thread(s); the machine was "
             f"shared with other jobs, so no timing here is a benchmark).", "",
             f"Values are mean ± standard deviation over {seeds} seed{'s' if seeds > 1 else ''} "
             f"({', '.join(map(str, study.seeds))}); seeds vary the synthetic catalogue, the quantizer and the models. "
             f"Codebooks: {study.quantizer.layers} x {study.quantizer.codebook_size}. Synthetic catalogues: "
             f"{study.data.items:,} items x {study.data.dim} dims, {study.data.top_clusters} x "
             f"{study.data.sub_clusters} clusters, Zipf exponent {study.data.zipf} (long tail) or 0 (uniform twin), "
             f"{study.data.users:,} users. "
             + ("MovieLens-100k: 1,682 items (title, year, genres through all-MiniLM-L6-v2), 943 users. "
                if "movielens" in study.datasets else "") +
             f"Fixes are applied to the RQ-KMeans codes; `adaptive` removes the most frequent layer-2 codes "
             f"until layer 2 reaches normalised entropy {study.entropy_target}.", "",
             "### Diagnostics per layer", "",
             "Normalised entropy (1 = every code equally used) and Gini (0 = equal counts) of each layer's code "
             "counts; `dip` = mean entropy of layers 1 and 3 minus layer 2's (> 0 is an hourglass). For "
             "`drop_layer2` the columns are its two layers (the original 1 and 3).", "",
             "| dataset | method | entropy L1 | entropy L2 | entropy L3 | Gini L1 | Gini L2 | Gini L3 | top-1 share L2 "
             "| dip | collisions | removed codes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for d in study.datasets:
        for m in study.methods:
            rows = _rows(results, d, m)
            if not rows:
                continue
            layers = len(rows[0]["per_layer"])
            ent = [_ms([r["per_layer"][i]["entropy"] for r in rows]) if i < layers else "" for i in range(3)]
            gin = [_ms([r["per_layer"][i]["gini"] for r in rows]) if i < layers else "" for i in range(3)]
            top1 = _ms([r["per_layer"][1]["top1_share"] for r in rows])
            dip = _ms([r["hourglass"]["entropy_dip"] for r in rows]) if "hourglass" in rows[0] else "n/a"
            removed = _ms([len(r["fix"].get("removed_codes", [])) for r in rows], 1) if m == "adaptive" else ""
            lines.append(f"| {d} | {m} | {' | '.join(ent)} | {' | '.join(gin)} | {top1} | {dip} | "
                         f"{_ms([r['collision_rate'] for r in rows])} | {removed} |")
    if study.retrieval:
        lines += ["", "### Retrieval (leave-one-out test, trie-constrained beam search, beam "
                  f"{study.eval.beam})", "",
                  f"TIGER-style T5 ({study.model.layers}+{study.model.layers} layers, d_model {study.model.d_model}, "
                  f"{study.train.steps} steps of {study.train.batch_size}, history {study.model.max_history} items); "
                  + (f"SASRec on item ids ({study.sasrec.steps} steps). " if study.sasrec.enabled else "") +
                  "A collision token keeps every SID unique. "
                  f"Mean ± standard deviation over seeds "
                  f"{', '.join(str(s) for s in study.seeds if s in study.retrieval_seeds)}.", "",
                  "| dataset | method | Recall@5 | NDCG@5 | Recall@10 | NDCG@10 | mean SID length |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for d in study.datasets:
            for m in [*study.methods, "sasrec"]:
                rows = [r for r in _rows(results, d, m) if "retrieval" in r]
                if rows:
                    met = [_ms([r["retrieval"][k] for r in rows], 4) for k in ("recall@5", "ndcg@5", "recall@10",
                                                                                 "ndcg@10")]
                    length = _ms([r["retrieval"]["sid_length"] for r in rows], 2) if m != "sasrec" else ""
                    lines.append(f"| {d} | {m} | {' | '.join(met)} | {length} |")
    lines += ["", "### What the numbers say", "", *findings(study, results), ""]
    return "\n".join(lines)


def _mean(results, d, m, get) -> float | None:
    rows = _rows(results, d, m)
    vals = [get(r) for r in rows if get(r) is not None]
    return float(np.mean(vals)) if vals else None


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
        for m in ("adaptive", "balanced"):
            fixed = _mean(results, d, m, l2_ent)
            if base is not None and fixed is not None:
                out.append(f"- {d}, {m}: layer-2 entropy {base:.3f} -> {fixed:.3f} against rq_kmeans.")
    if any("retrieval" in r for r in results):
        recall = lambda r: r.get("retrieval", {}).get("recall@10")  # noqa: E731
        for d in study.datasets:
            base = {r["seed"]: recall(r) for r in _rows(results, d, "rq_kmeans") if recall(r) is not None}
            if not base:
                continue
            parts = []
            for m in [*study.methods, "sasrec"]:
                other = {r["seed"]: recall(r) for r in _rows(results, d, m) if recall(r) is not None}
                seeds = sorted(set(base) & set(other))
                if m == "rq_kmeans" or not seeds:
                    continue
                # paired by seed: each seed shares the catalogue, split and users between the two methods
                diff = np.array([other[s] - base[s] for s in seeds])
                spread = f" ± {diff.std(ddof=1):.4f}" if len(diff) > 1 else ""
                wins = int((diff > 0).sum())
                parts.append(f"{m} {np.mean([other[s] for s in seeds]):.4f} (difference {diff.mean():+.4f}{spread}, "
                             f"higher in {wins} of {len(diff)} seeds)")
            out.append(f"- {d}, Recall@10 against rq_kmeans {np.mean(list(base.values())):.4f}: {', '.join(parts)}.")
    return out
