"""Early stopping on a validation metric where higher is better (recall, accuracy, AUC).

A recipe validates every few steps and calls `update(step, value)`; it keeps the weights of
the step `update` calls an improvement (the best checkpoint) and stops once `stop` is true:
`patience` validations in a row without an improvement of more than `min_delta`. Patience 0
never stops, so the same loop serves fixed-length runs. `state_dict()` goes into a checkpoint,
so a resumed run stops where an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EarlyStopping:
    patience: int  # validations without improvement before stopping; 0: never stop
    min_delta: float = 0.0
    best: float = -math.inf
    best_step: int = -1  # -1: no validation yet
    since_best: int = 0  # validations since the best one

    def update(self, step: int, value: float) -> bool:
        """Record a validation; True when it is a new best (keep these weights)."""
        if value > self.best + self.min_delta or self.best_step < 0:
            self.best, self.best_step, self.since_best = float(value), step, 0
            return True
        self.since_best += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
