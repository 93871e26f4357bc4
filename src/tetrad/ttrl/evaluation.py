"""Sampling-based evaluation against the ground truth (analysis only; never on the training path)."""

from __future__ import annotations

import numpy as np

from tetrad.llm.sampling import SamplingParams, finished, sample
from tetrad.ttrl.answers import answers_equal, extract_answer, normalise
from tetrad.ttrl.tasks import TaskSet
from tetrad.ttrl.voting import vote


def sample_answers(model, tokenizer, prompts: list[str], n: int, params: SamplingParams, chat: bool,
                   batch_prompts: int = 16, device="cpu") -> list[list[str | None]]:
    """`n` normalised answers per prompt (None where a response has none)."""
    out: list[list[str | None]] = []
    for i in range(0, len(prompts), batch_prompts):
        r = sample(model, tokenizer, prompts[i:i + batch_prompts], n, params, chat=chat, device=device)
        flat = [normalise(extract_answer(t, done)) for t, done in zip(r.texts, finished(r, tokenizer, params))]
        out += [flat[j:j + n] for j in range(0, len(flat), n)]
    return out


def correctness(answers: list[list[str | None]], truths: list[str]) -> np.ndarray:
    """[problems, k] booleans: sample answer equivalent to the truth."""
    return np.array([[answers_equal(t, a) for a in row] for row, t in zip(answers, truths)], dtype=bool)


def evaluate(model, tokenizer, tasks: TaskSet, k: int, params: SamplingParams, chat: bool = False,
             device="cpu") -> dict:
    """pass@1 as mean@k, maj@k (the training vote: answer classes, answerless samples never win), and
    the per-problem accuracy (share of the k samples correct)."""
    answers = sample_answers(model, tokenizer, tasks.prompts, k, params, chat, device=device)
    correct = correctness(answers, tasks.truths)
    maj = [answers_equal(t, vote(row).label) for row, t in zip(answers, tasks.truths)]
    per_problem = correct.mean(1)
    return {"pass@1": float(correct.mean()), f"maj@{k}": float(np.mean(maj)), "per_problem": per_problem}


def spread(per_problem: np.ndarray) -> dict[str, float]:
    """Share of problems solved > 50%, 10-50% and < 10% of the time."""
    p = np.asarray(per_problem)
    return {"share_above_50": float((p > 0.5).mean()), "share_10_to_50": float(((p >= 0.1) & (p <= 0.5)).mean()),
            "share_below_10": float((p < 0.1).mean())}
