"""Figures written headless (Agg) and closed after saving."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)


def new_figure(width: float = 5.0, height: float = 3.5, nrows: int = 1, ncols: int = 1):
    """`(figure, axes)`; axes is one Axes for a 1 x 1 grid, else an array of them."""
    return plt.subplots(nrows, ncols, figsize=(width, height), constrained_layout=True)


def save_figure(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
