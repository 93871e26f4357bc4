"""TTRL-Guard: three flip-rate-driven rules applied to GRPO advantages, after they are computed and
before the policy update (an advantage hook of `tetrad.llm.update.PolicyUpdater`).

Per prompt the guard keeps, across visits: the last majority label, the history of majority ratios
(MR), whether the label ever flipped, visits since the last flip, and whether MPS is active. On
each visit the state is updated first (this visit's FR and MR included), then the rules read it.

- FR (per prompt, per visit) = 1 if the majority label differs from the previous visit's, else 0
  (0 on the first visit).
- FRS: w = 1 - lambda1 * FR; if MR > tau_mr and FR > tau_fr: w *= 1 - lambda2; if the prompt never
  flipped, has >= W visits and its mean MR over the last W visits > tau_mr: w *= 1 - lambda2 / 2,
  at most W times per prompt (the reference caps it, so a confident, never-flipped prompt is not
  down-weighted forever); w = max(0.1, w). The prompt's advantages are multiplied by w. `frs_direction="low_fr"` is the
  abstract's reading (down-weight as FR declines): 1 - FR replaces FR in the first term.
- MPS: active while FR > tau_fr and until `mps_steady` consecutive visits without a flip. Minority
  answers (not the majority, not answerless) with at least max(1, M // mps_min_votes_denom) of the
  N votes qualify, M being the responses trained on (the reference's rule: 2 votes for M = 8); beta = beta_max * min(FR_beta / tau_fr, 1); a sample whose answer qualifies gains
  beta * count / sum(qualifying counts) * mean|advantage of the prompt|; an answerless sample gains
  5% of the mean of those bonuses.
  Which FR goes into beta (`mps_beta_fr`): read literally (`per_visit`), FR_beta is this visit's
  0/1 flip, so beta is beta_max on a flip and 0 on every steady visit that keeps MPS active: the
  `mps_steady` window would do nothing and tau_fr inside min(FR / tau_fr, 1) could be any number
  in (0, 1). Both only mean something if FR_beta is a rate, so the default (`windowed`) takes the
  prompt's flip rate over its last W visits (flips / visits that had a predecessor, at most W of
  them): a single flip in a full window gives FR_beta = 1/W = 0.2 and beta = 0.3 * 0.2 / 0.3 = 0.2
  on the flip visit and on the steady visits after it (W >= mps_steady, so the flip is still in
  the window while MPS is active); two or more flips in the window give the full beta_max.
  Activation is unchanged (a flip on this visit, then `mps_steady` steady visits).
- RCSU: a prompt that flipped at least once, has >= W visits and mean MR over its last W visits
  > theta_mr is high-risk; each high-risk prompt is skipped (advantages x 0) with probability
  p_skip, at most max(1, floor(0.25 * prompts in the step)) per step, drawn from the guard's own
  seeded generator (so the rest of the run's randomness is untouched).

With every rule off the hook returns the advantages it was given: plain TTRL, bit for bit.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from pydantic import Field

from tetrad.core.config import Config, Seed
from tetrad.ttrl.answers import same_answer


class GuardConfig(Config):
    frs: bool = False
    mps: bool = False
    rcsu: bool = False
    frs_direction: Literal["high_fr", "low_fr"] = "high_fr"
    tau_fr: float = Field(0.3, gt=0)
    tau_mr: float = Field(0.6, ge=0, le=1)
    lambda1: float = Field(0.5, ge=0, le=1)
    lambda2: float = Field(0.3, ge=0, le=1)
    beta_max: float = Field(0.3, ge=0)
    mps_min_votes_denom: int = Field(4, ge=1)
    mps_steady: int = Field(3, ge=0)
    mps_beta_fr: Literal["windowed", "per_visit"] = "windowed"  # which FR sets MPS's beta (module docstring)
    window: int = Field(5, ge=1)  # W, for FRS's windowed MR and RCSU (rcsu_window in the reference code)
    rcsu_theta_mr: float = Field(0.7, ge=0, le=1)
    rcsu_p_skip: float = Field(0.7, ge=0, le=1)
    seed: Seed = 0

    @property
    def enabled(self) -> bool:
        return self.frs or self.mps or self.rcsu


@dataclass
class PromptState:
    last_label: str | None = None
    mr_history: list[float] = field(default_factory=list)
    flip_history: list[bool] = field(default_factory=list)  # the last W visits that had a predecessor
    ever_flipped: bool = False
    visits_since_flip: int = 0
    visits: int = 0
    mps_active: bool = False
    confident_triggers: int = 0  # times FRS's never-flipped-but-confident term has applied

    def window_mr(self, w: int) -> float:
        recent = self.mr_history[-w:]
        return sum(recent) / len(recent) if recent else 0.0

    def window_fr(self, w: int) -> float:
        """Flip rate over the last `w` visits that had a previous visit to flip from (0 before any)."""
        recent = self.flip_history[-w:]
        return sum(recent) / len(recent) if recent else 0.0


def observe(st: PromptState, label: str | None, mr: float, cfg: GuardConfig) -> float:
    """Record one visit; return its FR (1.0 if the label flipped since the previous visit)."""
    fr = float(st.visits > 0 and not same_answer(label, st.last_label))
    st.mr_history.append(float(mr))
    st.mr_history = st.mr_history[-cfg.window:]
    if st.visits > 0:
        st.flip_history = (st.flip_history + [bool(fr)])[-cfg.window:]
    st.visits += 1
    if fr:
        st.ever_flipped, st.visits_since_flip = True, 0
    else:
        st.visits_since_flip += 1
    st.last_label = label
    st.mps_active = fr > cfg.tau_fr or (st.mps_active and st.visits_since_flip < cfg.mps_steady)
    return fr


def frs_weight(fr: float, mr: float, st: PromptState, cfg: GuardConfig) -> float:
    """FRS's weight for this visit; counts the confident term's triggers in `st` (capped at W)."""
    first = fr if cfg.frs_direction == "high_fr" else 1.0 - fr
    w = 1.0 - cfg.lambda1 * first
    if mr > cfg.tau_mr and fr > cfg.tau_fr:
        w *= 1.0 - cfg.lambda2
    if (not st.ever_flipped and st.visits >= cfg.window and st.window_mr(cfg.window) > cfg.tau_mr
            and st.confident_triggers < cfg.window):
        w *= 1.0 - cfg.lambda2 / 2
        st.confident_triggers += 1
    return max(0.1, w)


def mps_fr(fr: float, st: PromptState, cfg: GuardConfig) -> float:
    """The FR that sets MPS's beta on this visit: the windowed flip rate, or the visit's own flip."""
    return st.window_fr(cfg.window) if cfg.mps_beta_fr == "windowed" else fr


def mps_bonus(answers: list[str | None], counts: Counter, label: str | None, fr: float, mean_abs_adv: float,
              cfg: GuardConfig) -> torch.Tensor:
    """Advantage bonus for each of the M trained samples of one prompt (`answers`; zeros when no
    minority qualifies). `counts` are the N voters' counts; `answers` and `counts` are keyed by
    answer class (`Vote.classes`); `fr` is `mps_fr`'s."""
    need = max(1, len(answers) // cfg.mps_min_votes_denom)
    qualifying = {a: c for a, c in counts.items() if a is not None and a != label and c >= need}
    bonus = torch.zeros(len(answers))
    if not qualifying:
        return bonus
    beta = cfg.beta_max * min(fr / cfg.tau_fr, 1.0)
    total = sum(qualifying.values())
    per_answer = {a: beta * c / total * mean_abs_adv for a, c in qualifying.items()}
    answerless = 0.05 * sum(per_answer.values()) / len(per_answer)
    for i, a in enumerate(answers):
        if a is None:
            bonus[i] = answerless
        elif a in per_answer:
            bonus[i] = per_answer[a]
    return bonus


def is_high_risk(st: PromptState, cfg: GuardConfig) -> bool:
    return st.ever_flipped and st.visits >= cfg.window and st.window_mr(cfg.window) > cfg.rcsu_theta_mr


class TTRLGuard:
    """The advantage hook. The recipe passes, in `context`: `prompt_ids` (one per group), `votes`
    (`tetrad.ttrl.voting.Vote` over all N samples of each prompt) and `answers` (the answer class,
    `Vote.class_of`, of each of the M trained samples of each prompt, in row order)."""

    def __init__(self, cfg: GuardConfig):
        self.cfg = cfg
        self.prompts: dict[str, PromptState] = {}
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.last_stats: dict[str, float] = {}

    def __call__(self, adv: torch.Tensor, rollouts, context: dict[str, Any]) -> torch.Tensor:
        if not self.cfg.enabled:
            return adv
        ids, votes, answers = context["prompt_ids"], context["votes"], context["answers"]
        m = len(adv) // len(ids)
        original = adv.view(len(ids), m)
        out = original.clone()
        skips_left = max(1, math.floor(0.25 * len(ids)))
        weights, fired, skipped = [], 0, 0
        for g, pid in enumerate(ids):
            st = self.prompts.setdefault(pid, PromptState())
            v = votes[g]
            fr = observe(st, v.label, v.ratio, self.cfg)
            w = frs_weight(fr, v.ratio, st, self.cfg) if self.cfg.frs else 1.0
            weights.append(w)
            row = original[g] * w if self.cfg.frs else original[g].clone()
            if self.cfg.mps and st.mps_active:
                bonus = mps_bonus(answers[g], v.counts, v.label, mps_fr(fr, st, self.cfg),
                                  float(original[g].abs().mean()), self.cfg)
                fired += int(bool(bonus.any()))
                row = row + bonus.to(row.dtype)
            if self.cfg.rcsu and is_high_risk(st, self.cfg) and skips_left > 0:
                if float(torch.rand((), generator=self.generator)) < self.cfg.rcsu_p_skip:
                    row = torch.zeros_like(row)
                    skips_left -= 1
                    skipped += 1
            out[g] = row
        self.last_stats = {"guard/frs_weight": sum(weights) / len(weights), "guard/mps_fired": float(fired),
                           "guard/rcsu_skipped": float(skipped)}
        return out.view(-1)

    def state_dict(self) -> dict[str, Any]:
        """Plain values and tensors only, so checkpoints load with weights_only=True."""
        return {"prompts": {pid: asdict(st) for pid, st in self.prompts.items()},
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prompts = {pid: PromptState(**st) for pid, st in state["prompts"].items()}
        self.generator.set_state(state["generator"])
