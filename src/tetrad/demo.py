"""`tetrad demo`: the quick embedded-default path of every system built so far, in one report.

Each system contributes by providing `tetrad.<package>.demo.demo_part(run, cfg) -> Section`.
The foundation contributes a MovieLens-100k part (the data loader, metrics and plots that
the systems build on). The report goes to `runs/demo/<time>/report.md` and says which
parts ran and which systems are not built yet.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from pydantic import field_validator

from tetrad.cli import GROUPS, system_module
from tetrad.core.config import RunConfig, load_config, plain_name
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_text
from tetrad.core.metrics import gini, ndcg_at_k, recall_at_k
from tetrad.core.plots import new_figure, save_figure
from tetrad.core.rundir import RunDir
from tetrad.core.seeding import seed_everything


class DemoConfig(RunConfig):
    name: str = ""  # empty: the start time, e.g. 20261124-221500
    parts: list[str] = []  # empty: every part that exists

    @field_validator("name")  # replaces RunConfig's, which refuses the empty name
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return plain_name(name) if name else name


@dataclass
class Section:
    title: str
    body: str
    numbers: dict[str, float] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)  # paths relative to the run directory


DemoPart = Callable[[RunDir, DemoConfig], Section]


def movielens_part(run: RunDir, cfg: DemoConfig) -> Section:
    """MovieLens-100k from the recbole wheel: its shape, its long tail, and a popularity baseline
    for next-item prediction (leave-one-out: each user's last rating is the target)."""
    from tetrad.data.movielens import load_movielens_100k, user_sequences

    ml = load_movielens_100k()
    n_users, n_items = ml.users["user_id"].max(), ml.items["item_id"].max()
    seqs = user_sequences(ml.ratings)
    users = sorted(seqs)
    targets = np.array([seqs[u][-1] for u in users])
    seen = np.zeros((len(users), n_items + 1), dtype=bool)
    for row, u in enumerate(users):
        seen[row, seqs[u][:-1]] = True
    popularity = seen.sum(0).astype(np.float64)  # training interactions per item
    seen[:, 0] = True  # ids start at 1

    def top10(scores: np.ndarray) -> np.ndarray:
        masked = np.where(seen, -np.inf, scores)
        return np.argsort(-masked, axis=1, kind="stable")[:, :10]

    rng = np.random.default_rng(cfg.seed)
    ranked = {"popularity": top10(np.broadcast_to(popularity, seen.shape)),
              "random": top10(rng.random(seen.shape))}
    numbers = {"users": float(n_users), "items": float(n_items), "ratings": float(len(ml.ratings)),
               "item_popularity_gini": gini(np.bincount(ml.ratings["item_id"], minlength=n_items + 1)[1:])}
    for model, r in ranked.items():
        numbers[f"{model}_recall@10"] = recall_at_k(r, targets, 10)
        numbers[f"{model}_ndcg@10"] = ndcg_at_k(r, targets, 10)

    fig, ax = new_figure()
    counts = np.sort(np.bincount(ml.ratings["item_id"])[1:])[::-1]
    ax.loglog(np.arange(1, len(counts) + 1), np.maximum(counts, 0.5))
    ax.set(xlabel="item rank", ylabel="ratings", title="MovieLens-100k item popularity")
    plot = save_figure(fig, run.plots / "movielens_popularity.png")

    body = (f"{n_users} users, {n_items} movies, {len(ml.ratings):,} ratings; item popularity Gini "
            f"{numbers['item_popularity_gini']:.3f} (a long tail). Next-item prediction, leave-one-out, "
            f"seen items excluded: popularity Recall@10 {numbers['popularity_recall@10']:.4f} / NDCG@10 "
            f"{numbers['popularity_ndcg@10']:.4f}, random {numbers['random_recall@10']:.4f} / "
            f"{numbers['random_ndcg@10']:.4f}: the floor a generative retriever must beat.")
    return Section("MovieLens-100k (shared data)", body, numbers, [str(plot.relative_to(run.path))])


def available_parts() -> dict[str, DemoPart]:
    parts: dict[str, DemoPart] = {"movielens": movielens_part}
    for name, (package, _) in GROUPS.items():
        module = system_module(package, "demo")
        if module is not None:
            parts[name] = module.demo_part
    return parts


def run_demo(overrides: list[str]) -> RunDir:
    cfg = load_config(DemoConfig, None, overrides)
    if not cfg.name:
        cfg.name = time.strftime("%Y%m%d-%H%M%S")
    parts = available_parts()
    unknown = [p for p in cfg.parts if p not in parts]
    if unknown:
        raise UserError(f"unknown demo part '{unknown[0]}' (available: {', '.join(parts)})")
    chosen = cfg.parts or list(parts)
    seed_everything(cfg.seed)
    run = RunDir("demo", cfg, tensorboard=False)
    sections: list[Section] = []
    for name in chosen:
        start = time.perf_counter()
        print(f"demo: running {name} ...", flush=True)
        section = parts[name](run, cfg)
        section.numbers["seconds"] = round(time.perf_counter() - start, 2)
        sections.append(section)
    not_built = [g for g in GROUPS if g not in parts]
    atomic_write_text(run.path / "report.md", render_report(cfg, sections, not_built))
    run.write_summary({s.title: s.numbers for s in sections})
    print(f"demo: ran {', '.join(chosen)}; not built yet: {', '.join(not_built) or 'none'}")
    print(f"demo: report at {run.path / 'report.md'}")
    return run


def render_report(cfg: DemoConfig, sections: list[Section], not_built: list[str]) -> str:
    lines = [f"# tetrad demo — {cfg.name}", "",
             f"Made by `tetrad demo seed={cfg.seed}`.", "",
             f"Parts run: {', '.join(s.title for s in sections)}.",
             f"Systems not built yet: {', '.join(not_built) or 'none'}.", ""]
    for s in sections:
        lines += [f"## {s.title}", "", s.body, "", "| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in s.numbers.items()]
        lines += [""] + [f"![{p}]({p})" for p in s.plots] + [""]
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:.4g}"
