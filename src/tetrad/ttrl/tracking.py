"""Per-problem tracking: every visit's majority label and ratio, the flip, and (analysis only, when
the truths are given) the share of samples with the true answer and whether the label is right.

From the visits: the paper's categories (initial vs final label accuracy), the aggregate flip rate
per step, and each problem's correct-answer extinction window.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tetrad.ttrl.answers import answers_equal, same_answer
from tetrad.ttrl.voting import Vote

CATEGORIES = ["stable_right", "learned", "degraded", "always_wrong", "marginal"]


class ProblemTracker:
    def __init__(self, truths: dict[str, str] | None = None):
        self.truths = truths
        self.rows: list[dict[str, Any]] = []
        self._last: dict[str, tuple[int, str | None]] = {}  # problem -> (visits so far, last label)

    def record(self, step: int, problem_id: str, v: Vote, answers: list[str | None]) -> dict[str, Any]:
        visits, last = self._last.get(problem_id, (0, None))
        row = {"step": step, "problem_id": problem_id, "visit": visits + 1, "label": v.label,
               "majority_ratio": v.ratio, "flipped": bool(visits > 0 and not same_answer(v.label, last))}
        if self.truths is not None:
            truth = self.truths[problem_id]
            row["true_share"] = float(np.mean([answers_equal(truth, a) for a in answers]))
            row["label_correct"] = bool(answers_equal(truth, v.label))
        self._last[problem_id] = (visits + 1, v.label)
        self.rows.append(row)
        return row

    def visits(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
        self._last = {}
        for r in self.rows:
            self._last[r["problem_id"]] = (r["visit"], r["label"])


def flip_rate(step_rows: list[dict[str, Any]]) -> float:
    """Share of this step's problems (those visited before) whose majority label changed."""
    seen = [r for r in step_rows if r["visit"] > 1]
    return float(np.mean([r["flipped"] for r in seen])) if seen else float("nan")


def categorise(initial: float, final: float) -> str:
    """The paper's categories from initial and final label accuracy (each the share of right labels
    over the first / last visits compared). Natural reading used: stable right = right on all of
    them at both ends, learned = all wrong -> all right, degraded = all right -> all wrong, always
    wrong = wrong at both ends, marginal = mixed at either end."""
    if initial == 1 and final == 1:
        return "stable_right"
    if initial == 0 and final == 1:
        return "learned"
    if initial == 1 and final == 0:
        return "degraded"
    if initial == 0 and final == 0:
        return "always_wrong"
    return "marginal"


def extinction_window(steps: list[int], label_correct: list[bool], true_share: list[float]) -> dict[str, float]:
    """Steps from the last visit where the true answer held the vote to the first visit after which
    the true answer is never sampled again. NaN when the answer never held the vote or never died out."""
    last_right = max((s for s, c in zip(steps, label_correct) if c), default=None)
    extinct = None
    for s, share in zip(reversed(steps), reversed(true_share)):
        if share > 0:
            break
        extinct = s
    window = float(extinct - last_right) if last_right is not None and extinct is not None and extinct > last_right \
        else float("nan")
    return {"last_right_step": float("nan") if last_right is None else float(last_right),
            "extinct_step": float("nan") if extinct is None else float(extinct), "extinction_window": window}


def problems_table(visits: pd.DataFrame, edge_share: float = 0.25) -> pd.DataFrame:
    """One row per problem: visits, flips, label accuracy over the first and the last `edge_share` of
    its visits (at least one each), category, mean true share first/last, extinction window."""
    rows = []
    for pid, g in visits.sort_values(["problem_id", "visit"]).groupby("problem_id", sort=False):
        n = len(g)
        edge = max(1, math.floor(edge_share * n))
        row = {"problem_id": pid, "visits": n, "flips": int(g["flipped"].sum()),
               "final_label": g["label"].iloc[-1], "final_majority_ratio": float(g["majority_ratio"].iloc[-1])}
        if "label_correct" in g:
            init = float(g["label_correct"].iloc[:edge].mean())
            final = float(g["label_correct"].iloc[-edge:].mean())
            row.update(initial_label_acc=init, final_label_acc=final, category=categorise(init, final),
                       initial_true_share=float(g["true_share"].iloc[:edge].mean()),
                       final_true_share=float(g["true_share"].iloc[-edge:].mean()),
                       **extinction_window(g["step"].tolist(), g["label_correct"].tolist(), g["true_share"].tolist()))
        rows.append(row)
    return pd.DataFrame(rows)


def category_counts(problems: pd.DataFrame) -> dict[str, int]:
    if "category" not in problems:
        return {}
    counts = problems["category"].value_counts()
    return {c: int(counts.get(c, 0)) for c in CATEGORIES}


def plot_tracking(flip_steps: list[int], flip_rates: list[float], problems: pd.DataFrame, plots_dir) -> list:
    """Flip-rate curve, category bars, extinction-window histogram; returns the saved paths."""
    from tetrad.core.plots import new_figure, save_figure

    paths = []
    fig, ax = new_figure()
    ax.plot(flip_steps, flip_rates, marker=".")
    ax.set(xlabel="step", ylabel="flip rate", title="majority-label flip rate")
    paths.append(save_figure(fig, plots_dir / "flip_rate.png"))
    if "category" in problems:
        fig, ax = new_figure()
        counts = category_counts(problems)
        ax.bar(list(counts), list(counts.values()))
        ax.set(ylabel="problems", title="per-problem categories")
        ax.tick_params(axis="x", rotation=20)
        paths.append(save_figure(fig, plots_dir / "categories.png"))
        fig, ax = new_figure()
        w = problems["extinction_window"].dropna()
        ax.hist(w, bins=max(1, min(20, len(w))))
        ax.set(xlabel="steps", ylabel="problems", title=f"extinction windows ({len(w)} problems)")
        paths.append(save_figure(fig, plots_dir / "extinction_windows.png"))
    return paths
