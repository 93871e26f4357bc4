"""Majority vote over sampled answers: the pseudo-label, its ratio and the rewards.

Votes are counted per answer class, not per string: answers are grouped by `same_answer`
(normalised-string equality and exact numbers first, then `math-verify` in either direction), so
`1/2`, `0.5` and `\\frac{1}{2}` are one answer. Distinct strings are placed in decreasing order of
their own counts (ties: first seen), each joining the first existing class it matches, so a class is
named by its most common spelling. Pairs the fast paths cannot decide go to math-verify (up to two
calls, one per direction); at most `max_verified_pairs` such pairs per vote (in that order, so the
most voted answers are resolved first), which bounds a vote to O(distinct answers x classes) cheap
comparisons plus a fixed number of math-verify calls, each under math-verify's own timeout. Past
the budget a string joins a class only through the fast paths. The bound counts pairs, not
seconds, so a vote is the same on a busy and an idle machine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from tetrad.ttrl.answers import fast_same_answer, same_answer

MAX_VERIFIED_PAIRS = 64


@dataclass
class Vote:
    label: str | None  # the majority class (named by its most common spelling); None when no sample had one
    ratio: float  # majority class count / all votes, answerless samples included in the denominator
    counts: Counter  # class -> votes (answerless samples under None)
    n: int
    classes: dict[str, str] = field(default_factory=dict)  # every answer string seen -> its class

    def class_of(self, answer: str | None) -> str | None:
        """The class an answer belongs to; an answer this vote never saw is its own class."""
        return None if answer is None else self.classes.get(answer, answer)


def answer_classes(answers: list[str | None], max_verified_pairs: int = MAX_VERIFIED_PAIRS) -> dict[str, str]:
    """Map each distinct non-None answer to its class representative (see the module docstring)."""
    reps: list[str] = []
    classes: dict[str, str] = {}
    verified = 0
    for s, _ in Counter(a for a in answers if a is not None).most_common():
        home = None
        for r in reps:
            same = fast_same_answer(r, s)
            if same is None:
                if verified >= max_verified_pairs:
                    continue
                verified += 1
                same = same_answer(r, s)
            if same:
                home = r
                break
        if home is None:
            reps.append(s)
        classes[s] = s if home is None else home
    return classes


def vote(answers: list[str | None], max_verified_pairs: int = MAX_VERIFIED_PAIRS) -> Vote:
    """Majority over answer classes (ties: the class seen first); `None` never wins."""
    classes = answer_classes(answers, max_verified_pairs)
    keyed = [None if a is None else classes[a] for a in answers]
    counts = Counter(keyed)
    present = Counter(a for a in keyed if a is not None)
    label = present.most_common(1)[0][0] if present else None
    return Vote(label, counts[label] / len(answers) if label is not None else 0.0, counts, len(answers), classes)


def rewards(answers: list[str | None], v: Vote) -> torch.Tensor:
    """1 for a response whose answer is in the pseudo-label's class, else 0."""
    return torch.tensor([float(v.label is not None and v.class_of(a) == v.label) for a in answers])
