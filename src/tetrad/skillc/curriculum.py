"""SkillC's adaptive curriculum, and SKILL0's schedule, as small state objects.

Every `validate_every` (d) updates the recipe measures, per skill type k, the validation reward
with and without skills; the observed gap `gap_k = R(k, skills) - R(k, no skills)` updates an
exponentially smoothed gap

    G_k <- alpha * G_k + (1 - alpha) * gap_k      (G_k = gap_k at the first validation)

(alpha = 0.9, the paper's smoothing factor). From G_k and the largest smoothed gap seen so far,
`peak_k`, the curriculum sets (our reading of "the smoothed gap drives the attribution strength,
the rollout allocation and the pruning"):

    remaining_k = clip(G_k / peak_k, 0, 1)                  (1 before any gap is measured)
    strength_k  = lambda * remaining_k                       correction scale of the advantage
    share_k     = min_share + (max_share - min_share) * remaining_k
                                                             share of task k's rollouts with skills
    prune k     once G_k <= prune_below for `patience` validations in a row

so the contrastive credit and the skill-injected rollouts fade as the skill-free policy catches
up, and a skill whose help has gone is withdrawn. Pruning is monotonic: a pruned type never
returns, whatever later validations say.

`Skill0Schedule` is the SKILL0 baseline's curriculum: at each validation, the active set drops
the types whose skills hurt (gap < 0) and keeps at most `keep` of the rest (the largest gaps), where `keep` follows
the stage schedule (e.g. 6, 3, 0 over thirds of training); also monotonic.

Both keep their whole state in `state_dict()` (plain floats and lists), which the recipe saves
in its checkpoints, so a resumed run continues with exactly the same curriculum.
"""

from __future__ import annotations

import math
from typing import Any


class Curriculum:
    def __init__(self, types: list[str], strength: float = 1.0, smoothing: float = 0.9, min_share: float = 0.25,
                 max_share: float = 0.75, prune_below: float = 0.0, patience: int = 2, pruning: bool = True,
                 fixed_share: float | None = None):
        self.types = list(types)
        self.strength, self.smoothing = strength, smoothing
        self.min_share, self.max_share = min_share, max_share
        self.prune_below, self.patience, self.pruning = prune_below, patience, pruning
        self.fixed_share = fixed_share
        self.smoothed: dict[str, float] = {}
        self.peak: dict[str, float] = {}
        self.below: dict[str, int] = {t: 0 for t in self.types}
        self.active: list[str] = list(self.types)
        self.pruned: list[str] = []
        self.validations = 0

    def remaining(self, task_type: str) -> float:
        if task_type not in self.smoothed:
            return 1.0
        peak = self.peak[task_type]
        return 0.0 if peak <= 0 else min(max(self.smoothed[task_type] / peak, 0.0), 1.0)

    def is_active(self, task_type: str) -> bool:
        return task_type in self.active

    def strength_of(self, task_type: str) -> float:
        return self.strength * self.remaining(task_type) if self.is_active(task_type) else 0.0

    def share_of(self, task_type: str) -> float:
        """The share of the task's rollouts that get the skill (0 once its type is pruned)."""
        if not self.is_active(task_type):
            return 0.0
        if self.fixed_share is not None:
            return self.fixed_share
        return self.min_share + (self.max_share - self.min_share) * self.remaining(task_type)

    def update(self, gaps: dict[str, float]) -> list[str]:
        """Fold one validation's observed gaps in; returns the types pruned by it."""
        self.validations += 1
        newly: list[str] = []
        for t, gap in gaps.items():
            if t not in self.below or not math.isfinite(gap):
                continue
            g = gap if t not in self.smoothed else self.smoothing * self.smoothed[t] + (1 - self.smoothing) * gap
            self.smoothed[t] = g
            self.peak[t] = max(self.peak.get(t, g), g)
            self.below[t] = self.below[t] + 1 if g <= self.prune_below else 0
            if self.pruning and t in self.active and self.below[t] >= self.patience:
                self.active.remove(t)
                self.pruned.append(t)
                newly.append(t)
        return newly

    def state_dict(self) -> dict[str, Any]:
        return {"smoothed": dict(self.smoothed), "peak": dict(self.peak), "below": dict(self.below),
                "active": list(self.active), "pruned": list(self.pruned), "validations": self.validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.smoothed, self.peak = dict(state["smoothed"]), dict(state["peak"])
        self.below, self.active = dict(state["below"]), list(state["active"])
        self.pruned, self.validations = list(state["pruned"]), int(state["validations"])

    def snapshot(self) -> dict[str, float]:
        """Per type: smoothed gap, strength, share, and whether it is active (for the metrics log)."""
        out: dict[str, float] = {"active_skills": float(len(self.active))}
        for t in self.types:
            if t in self.smoothed:  # unmeasured types have no gap yet (and JSON has no NaN)
                out[f"gap/{t}"] = self.smoothed[t]
            out[f"strength/{t}"] = self.strength_of(t)
            out[f"share/{t}"] = self.share_of(t)
            out[f"active/{t}"] = float(self.is_active(t))
        return out


class Skill0Schedule:
    """SKILL0's withdrawal: after each validation drop the types with a negative gap and keep at
    most `keep(progress)` of the rest, those with the largest gaps; `stages` is the kept count per
    equal part of training (SKILL0's 6, 3, 0 for six types is `stages=[6, 3, 0]`)."""

    def __init__(self, types: list[str], stages: list[int]):
        self.types, self.stages = list(types), list(stages)
        self.active: list[str] = list(self.types)
        self.pruned: list[str] = []
        self.validations = 0

    def keep(self, progress: float) -> int:
        stage = min(int(progress * len(self.stages)), len(self.stages) - 1)
        return self.stages[stage]

    def update(self, gaps: dict[str, float], progress: float) -> list[str]:
        self.validations += 1
        ranked = sorted((t for t in self.active if gaps.get(t, 0.0) >= 0), key=lambda t: -gaps.get(t, 0.0))
        kept = set(ranked[:self.keep(progress)])
        newly = [t for t in self.active if t not in kept]
        self.active = [t for t in self.active if t in kept]
        self.pruned += newly
        return newly

    def is_active(self, task_type: str) -> bool:
        return task_type in self.active

    def state_dict(self) -> dict[str, Any]:
        return {"active": list(self.active), "pruned": list(self.pruned), "validations": self.validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.active, self.pruned = list(state["active"]), list(state["pruned"])
        self.validations = int(state["validations"])
