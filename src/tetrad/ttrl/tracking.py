"""Per-problem tracking: every visit's majority label and ratio, the flip, and (analysis only, when
the truths are given) the share of samples with the true answer and whether the label is right.

Categories are anchored to the base policy: a problem's initial label is the vote of the step-0
policy (before any update, at the training temperature and N; `record_base`), its final label the
last visit's. (Reading the initial label off the first visits instead, e.g. their first quarter,
misses the damage when the policy moves within those visits: issue 16.)

From the visits: the paper's categories, the aggregate flip rate per step, and each problem's
correct-answer extinction window.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import Field

from tetrad.core.config import Config
from tetrad.ttrl.answers import answers_equal, same_answer
from tetrad.ttrl.voting import Vote

CATEGORIES = ["stable_right", "learned", "degraded", "always_wrong"]


class ProblemTracker:
    def __init__(self, truths: dict[str, str] | None = None):
        self.truths = truths
        self.rows: list[dict[str, Any]] = []
        self.base: dict[str, dict[str, Any]] = {}  # problem -> the step-0 policy's vote
        self._last: dict[str, tuple[int, str | None]] = {}  # problem -> (visits so far, last label)

    def record_base(self, problem_id: str, v: Vote, answers: list[str | None]) -> None:
        """The base policy's vote on a problem (not a visit: it is no flip's predecessor)."""
        truth = self.truths[problem_id]
        self.base[problem_id] = {"problem_id": problem_id, "base_label": v.label, "base_majority_ratio": v.ratio,
                                 "initial_label_acc": float(answers_equal(truth, v.label)),
                                 "initial_true_share": float(np.mean([answers_equal(truth, a) for a in answers]))}

    def record(self, step: int, problem_id: str, v: Vote, answers: list[str | None]) -> dict[str, Any]:
        visits, last = self._last.get(problem_id, (0, None))
        row = {"step": step, "problem_id": problem_id, "visit": visits + 1, "label": v.label,
               "majority_ratio": v.ratio, "flipped": bool(visits > 0 and not same_answer(v.label, last))}
        if self.truths is not None:
            truth = self.truths[problem_id]
            right = [answers_equal(truth, a) for a in answers]
            row["true_share"] = float(np.mean(right))
            row["label_correct"] = bool(answers_equal(truth, v.label))
            # the pseudo-label's reward (voting.rewards) against the truth's, response by response
            pseudo = [v.label is not None and v.class_of(a) == v.label for a in answers]
            row["reward_accuracy"] = float(np.mean([p == r for p, r in zip(pseudo, right)]))
        self._last[problem_id] = (visits + 1, v.label)
        self.rows.append(row)
        return row

    def visits(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def base_votes(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.base.values()), columns=["problem_id", "base_label", "base_majority_ratio",
                                                               "initial_label_acc", "initial_true_share"])

    def state_dict(self) -> dict[str, Any]:
        return {"rows": list(self.rows), "base": dict(self.base)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])
        self.base = dict(state.get("base", {}))  # runs checkpointed before the base vote have none
        self._last = {}
        for r in self.rows:
            self._last[r["problem_id"]] = (r["visit"], r["label"])


def flip_rate(step_rows: list[dict[str, Any]]) -> float:
    """Share of this step's problems (those visited before) whose majority label changed."""
    seen = [r for r in step_rows if r["visit"] > 1]
    return float(np.mean([r["flipped"] for r in seen])) if seen else float("nan")


def step_metrics(step_rows: list[dict[str, Any]]) -> dict[str, float]:
    """A step's vote statistics from its visits (`ProblemTracker.record`'s rows): the flip rate and
    the majority ratio (majority votes / N, mean over the step's problems); with the truths
    (analysis only) the label accuracy (share of problems whose majority label is the truth), the
    reward accuracy (share of all N responses whose pseudo-label reward equals their reward against
    the truth; every problem has N) and the share of responses with the true answer."""
    out = {"flip_rate": flip_rate(step_rows),
           "majority_ratio": float(np.mean([r["majority_ratio"] for r in step_rows]))}
    if "label_correct" in step_rows[0]:
        out.update({key: float(np.mean([r[col] for r in step_rows])) for key, col in
                    [("label_accuracy", "label_correct"), ("reward_accuracy", "reward_accuracy"),
                     ("true_share", "true_share")]})
    return out


def categorise(initial: bool, final: bool) -> str:
    """The paper's categories from whether the initial (the base policy's vote) and the final (the
    last visit's) label is right: right -> right is stable right, wrong -> right learned, right ->
    wrong degraded, wrong -> wrong always wrong."""
    return {(True, True): "stable_right", (False, True): "learned", (True, False): "degraded",
            (False, False): "always_wrong"}[(initial, final)]


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


def problems_table(visits: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """One row per problem: visits, flips, the final label; with the truths, initial (the base
    vote's, from `ProblemTracker.base_votes`) and final (the last visit's) label accuracy, category,
    true share at both ends, extinction window. A problem without a base vote has no category."""
    rows = []
    for pid, g in visits.sort_values(["problem_id", "visit"]).groupby("problem_id", sort=False):
        row = {"problem_id": pid, "visits": len(g), "flips": int(g["flipped"].sum()),
               "final_label": g["label"].iloc[-1], "final_majority_ratio": float(g["majority_ratio"].iloc[-1])}
        if "label_correct" in g:
            row.update(final_label_acc=float(g["label_correct"].iloc[-1]),
                       final_true_share=float(g["true_share"].iloc[-1]),
                       **extinction_window(g["step"].tolist(), g["label_correct"].tolist(), g["true_share"].tolist()))
        rows.append(row)
    problems = pd.DataFrame(rows)
    if "final_label_acc" in problems:
        problems = problems.merge(base, on="problem_id", how="left")
        problems["category"] = [None if np.isnan(i) else categorise(i == 1, f == 1)
                                for i, f in zip(problems["initial_label_acc"], problems["final_label_acc"])]
    return problems


class StopConfig(Config):
    """The unsupervised stopping rule's settings (`stop_step`)."""

    window: Annotated[int, Field(ge=0)] = 0  # steps per moving average (0: one pass over the test set)
    flip_rate: Annotated[float, Field(gt=0, le=1)] = 0.1  # the flip rate's average must fall below this
    mr_rise: Annotated[float, Field(ge=0)] = 0.01  # ... while the majority ratio's rises by less than this


def stop_step(steps: list[int], flip_rates: list[float], majority_ratios: list[float], window: int,
              cfg: StopConfig) -> int | None:
    """An unsupervised stopping rule (no labels): the first step at which the labels have stopped
    changing and the votes have stopped concentrating, i.e. the mean flip rate over the last
    `window` steps is below `cfg.flip_rate` and the mean majority ratio over those steps exceeds its
    mean over the `window` steps before by less than `cfg.mr_rise`. Past that point TTRL only
    sharpens the consensus it has (the paper: the flip rate collapses once a consensus, right or
    false, has set), so more steps can degrade but hardly learn. A window of one pass over the test
    set averages every problem once. The first pass has no flip rate (nothing to flip from): the
    rule needs `window` steps with one and `2 * window` steps in all. None if it never holds. It
    reads only the past, so a run could stop there."""
    fr, mr = np.asarray(flip_rates, dtype=float), np.asarray(majority_ratios, dtype=float)
    for i in range(2 * window - 1, len(steps)):
        recent = fr[i - window + 1:i + 1]
        if np.isnan(recent).any() or recent.mean() >= cfg.flip_rate:
            continue
        if mr[i - window + 1:i + 1].mean() - mr[i - 2 * window + 1:i - window + 1].mean() < cfg.mr_rise:
            return int(steps[i])
    return None


def stop_report(stop: int | None, evals: list[dict[str, Any]]) -> dict[str, float]:
    """The stopping rule's pick among the evaluations after training steps (the first at or after
    its step; the last if it never held: training ran to the end) against the best in hindsight."""
    trained = [e for e in evals if e["step"] > 0]
    pick = next((e for e in trained if stop is not None and e["step"] >= stop), trained[-1])
    best = max(trained, key=lambda e: e["pass@1"])
    return {"stop_eval_step": pick["step"], "stop_pass@1": pick["pass@1"], "best_eval_step": best["step"],
            "best_pass@1": best["pass@1"]}


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
