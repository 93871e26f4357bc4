"""Majority vote over sampled answers: the pseudo-label, its ratio and the rewards."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from tetrad.core.metrics import majority


@dataclass
class Vote:
    label: str | None  # the most common answer (None when no sample had one)
    ratio: float  # majority count / all votes, answerless samples included in the denominator
    counts: Counter  # answer -> votes (answerless samples under None)
    n: int


def vote(answers: list[str | None]) -> Vote:
    """Majority over normalised answers (ties: first seen); `None` never wins."""
    label = majority(answers)
    counts = Counter(answers)
    return Vote(label, counts[label] / len(answers) if label is not None else 0.0, counts, len(answers))


def rewards(answers: list[str | None], label: str | None) -> torch.Tensor:
    """1 for a response whose answer equals the pseudo-label, else 0."""
    return torch.tensor([float(label is not None and a == label) for a in answers])
