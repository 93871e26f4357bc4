"""SkillC's figures: learning curves with and without skills, and the curriculum's trajectory."""

from __future__ import annotations

import math
from pathlib import Path

from tetrad.core.plots import new_figure, save_figure


def _series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(m["step"], m[key]) for m in metrics if isinstance(m.get(key), (int, float)) and math.isfinite(m[key])]
    return [p[0] for p in points], [p[1] for p in points]


def plot_learning_curves(metrics: list[dict], path: Path, title: str) -> Path:
    """Validation success and score with skills (dashed) and without (solid), and the training
    reward per condition."""
    fig, axes = new_figure(10, 3.4, ncols=3)
    for ax, key in zip(axes[:2], ("success", "score")):
        for cond, style in (("skills_off", "-"), ("skills_on", "--")):
            ax.plot(*_series(metrics, f"val/{cond}_{key}"), style, marker="o", label=cond.replace("_", " "))
        ax.set_title(f"validation {key}")
        ax.set_xlabel("update")
        ax.legend()
    for cond, style in (("off", "-"), ("on", "--")):
        axes[2].plot(*_series(metrics, f"train/reward_{cond}"), style, label=f"skills {cond}")
    axes[2].set_title("training reward")
    axes[2].set_xlabel("update")
    axes[2].legend()
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_curriculum(metrics: list[dict], types: list[str], path: Path) -> Path:
    """Per skill type: the smoothed validation gap, the share of rollouts with skills and the
    correction strength; the active set's size."""
    fig, axes = new_figure(13, 3.4, ncols=4)
    for ax, prefix, label in zip(axes, ("gap", "share", "strength"), ("smoothed gap", "skill share", "strength")):
        for t in types:
            steps, values = _series(metrics, f"{prefix}/{t}")
            if steps:
                ax.plot(steps, values, marker=".", label=t)
        ax.set_title(label)
        ax.set_xlabel("update")
    if axes[0].lines:
        axes[0].legend(fontsize=6)
    axes[3].step(*_series(metrics, "active_skills"), where="post")
    axes[3].set_title("active skill types")
    axes[3].set_xlabel("update")
    return save_figure(fig, path)
