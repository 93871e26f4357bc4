import math
from collections import Counter

import pandas as pd
import pytest
import torch

from tetrad.llm.grpo import group_advantages
from tetrad.ttrl.guard import (GuardConfig, PromptState, TTRLGuard, frs_weight, is_high_risk, mps_bonus,
                               mps_fr, observe)
from tetrad.ttrl.tracking import (ProblemTracker, StopConfig, categorise, extinction_window, flip_rate,
                                  problems_table, step_metrics, stop_report, stop_step)
from tetrad.ttrl.voting import vote

CFG = GuardConfig(frs=True, mps=True, rcsu=True)


def visited(labels_mrs, cfg=CFG):
    st, frs = PromptState(), []
    for label, mr in labels_mrs:
        frs.append(observe(st, label, mr, cfg))
    return st, frs


def test_flip_rate_per_prompt():
    st, frs = visited([("5", 0.5), ("5", 0.6), ("6", 0.4), (None, 0.0), (None, 0.0)])
    assert frs == [0, 0, 1, 1, 0] and st.ever_flipped and st.visits == 5 and st.visits_since_flip == 1
    assert st.flip_history == [False, True, True, False] and st.window_fr(5) == 0.5
    _, frs = visited([("1/2", 0.5), ("\\frac{1}{2}", 0.5), ("0.5", 0.5)])
    assert frs == [0, 0, 0]  # another spelling of the same answer is not a flip


def test_frs_by_hand():
    st, frs = visited([("5", 0.8), ("6", 0.7)])
    assert frs_weight(frs[-1], 0.7, st, CFG) == pytest.approx(0.5 * 0.7)  # flipped, confident: both penalties
    st, frs = visited([("6", 0.4), ("5", 0.5)])
    assert frs_weight(frs[-1], 0.5, st, CFG) == pytest.approx(0.5)  # flipped, MR below tau_mr
    st, frs = visited([("5", 0.8)] * 5)
    assert frs_weight(0.0, 0.8, st, CFG) == pytest.approx(1 - 0.3 / 2)  # never flipped, windowed MR high
    st, frs = visited([("5", 0.8)] * 4)
    assert frs_weight(0.0, 0.8, st, CFG) == 1.0  # fewer than W visits
    harsh = GuardConfig(lambda1=0.95, lambda2=0.9)
    st, frs = visited([("5", 0.9), ("6", 0.9)], harsh)
    assert frs_weight(1.0, 0.9, st, harsh) == 0.1  # the floor
    low = GuardConfig(frs_direction="low_fr")
    st, _ = visited([("5", 0.5)], low)
    assert frs_weight(0.0, 0.5, st, low) == pytest.approx(0.5)  # the abstract's direction


def test_mps_bonus_by_hand():
    counts = Counter({"5": 4, "6": 2, "7": 1, None: 1})  # M = 4 trained: minorities need >= max(1, 4 // 4) votes
    adv = group_advantages(torch.tensor([1.0, 0, 0, 0]), 4)
    mean_abs = float(adv.abs().mean())
    bonus = mps_bonus(["5", "6", None, "7"], counts, "5", 1.0, mean_abs, CFG)
    b6, b7 = 0.3 * 2 / 3 * mean_abs, 0.3 * 1 / 3 * mean_abs
    assert torch.allclose(bonus, torch.tensor([0.0, b6, 0.05 * (b6 + b7) / 2, b7]))
    two = mps_bonus(["6", "7"], Counter({"5": 4, "6": 2, "7": 2}), "5", 0.15, 1.0, CFG)
    assert torch.allclose(two, torch.tensor([0.15 * 0.5, 0.15 * 0.5]))  # beta = 0.3 * 0.15 / 0.3, split by count
    trained = ["5"] * 7 + ["6"]  # M = 8: a minority needs 2 votes
    assert not mps_bonus(trained, Counter({"5": 15, "6": 1}), "5", 1.0, 1.0, CFG).any()
    # the threshold comes from M, not N: with N = 16 voters, 3 votes qualify (N // 4 = 4 would not)
    assert mps_bonus(trained, Counter({"5": 10, "6": 3, "7": 3}), "5", 1.0, 1.0, CFG)[-1] > 0


def test_frs_confident_term_is_capped_at_w_triggers():
    st, _ = visited([("5", 0.9)] * 5)
    weights = []
    for _ in range(8):
        observe(st, "5", 0.9, CFG)
        weights.append(frs_weight(0.0, 0.9, st, CFG))
    assert weights == [pytest.approx(1 - 0.3 / 2)] * CFG.window + [1.0] * (8 - CFG.window)


def hook(guard, ids, votes, answers, adv):
    return guard(adv, None, {"prompt_ids": ids, "votes": votes, "answers": answers})


def test_mps_fires_on_a_flip_and_stays_active_until_steady():
    guard = TTRLGuard(GuardConfig(mps=True))
    first = ["4", "4", "4", "4", "4", "6", "6", "6"]
    answers = ["5", "5", "5", "5", "5", "6", "6", "6"]
    adv = group_advantages(torch.tensor([1.0, 1, 1, 1, 1, 0, 0, 0]), 8)
    assert torch.equal(hook(guard, ["p"], [vote(first)], [first], adv), adv)  # first visit: no flip
    out = hook(guard, ["p"], [vote(answers)], [answers], adv)  # label 4 -> 5: flip, "6" has 3 >= 2 votes
    bonus = 0.3 * float(adv.abs().mean())
    assert torch.allclose(out, adv + torch.tensor([0.0] * 5 + [bonus] * 3)) and guard.last_stats["guard/mps_fired"] == 1
    actives = []
    for _ in range(4):
        hook(guard, ["p"], [vote(answers)], [answers], adv)
        actives.append(guard.prompts["p"].mps_active)
    assert actives == [True, True, False, False]


def test_mps_fires_on_the_steady_visits_after_a_flip():
    """Five steady visits, a flip, three steady visits (W = 5, mps_steady = 3). The flip enters a full
    window: windowed FR = 1/5, beta = 0.3 * min(0.2 / 0.3, 1) = 0.2, on the flip visit and on the two
    steady visits that keep MPS active; the literal per-visit reading pays only on the flip."""
    before = ["4", "4", "4", "4", "4", "6", "6", "6"]
    after = ["5", "5", "5", "5", "5", "6", "6", "6"]
    adv = group_advantages(torch.tensor([1.0, 1, 1, 1, 1, 0, 0, 0]), 8)
    mean_abs = float(adv.abs().mean())
    paid = {}
    for reading in ("windowed", "per_visit"):
        guard = TTRLGuard(GuardConfig(mps=True, mps_beta_fr=reading))
        bonuses = []
        for answers in [before] * 5 + [after] * 4:
            out = hook(guard, ["p"], [vote(answers)], [answers], adv)
            bonuses.append(round(float((out - adv)[5]) / mean_abs, 6))  # a "6" sample's bonus / mean|A|
        paid[reading] = bonuses
    # "6" has 3 votes (>= 8 // 4) and is the only qualifying minority: bonus = beta * 3 / 3 * mean|A|
    assert paid["windowed"] == [0, 0, 0, 0, 0, 0.2, 0.2, 0.2, 0]
    assert paid["per_visit"] == [0, 0, 0, 0, 0, 0.3, 0, 0, 0]
    st, frs = visited([("5", 0.5), ("6", 0.5), ("6", 0.5), ("5", 0.5)])  # two flips in three transitions
    assert st.window_fr(5) == pytest.approx(2 / 3) and mps_fr(0.0, st, CFG) == pytest.approx(2 / 3)
    assert mps_fr(0.0, st, GuardConfig(mps_beta_fr="per_visit")) == 0.0


def test_rcsu_skips_high_risk_prompts_up_to_the_cap_and_resumes_its_draws():
    cfg = GuardConfig(rcsu=True, rcsu_p_skip=1.0)
    risky = PromptState(last_label="5", mr_history=[0.9] * 5, ever_flipped=True, visits=5)
    assert is_high_risk(risky, cfg) and not is_high_risk(PromptState(**{**risky.__dict__, "ever_flipped": False}), cfg)
    ids = [f"p{i}" for i in range(8)]
    votes = [vote(["5"] * 9 + ["6"])] * 8
    adv = torch.arange(1.0, 17.0)
    guard = TTRLGuard(cfg)
    guard.prompts = {i: PromptState(**{**risky.__dict__, "mr_history": list(risky.mr_history)}) for i in ids}
    out = hook(guard, ids, votes, [["5", "5"]] * 8, adv).view(8, 2)
    assert (out[:2] == 0).all() and torch.equal(out[2:], adv.view(8, 2)[2:])  # floor(0.25 * 8) = 2 skips
    half = GuardConfig(rcsu=True, rcsu_p_skip=0.5, seed=3)
    a, b = TTRLGuard(half), TTRLGuard(half)
    for g in (a, b):
        g.prompts = {i: PromptState(**{**risky.__dict__, "mr_history": list(risky.mr_history)}) for i in ids}
    hook(a, ids, votes, [["5", "5"]] * 8, adv)
    b.load_state_dict(a.state_dict())  # a resumed guard draws what the original draws next
    assert [torch.equal(hook(a, ids, votes, [["5", "5"]] * 8, adv), hook(b, ids, votes, [["5", "5"]] * 8, adv))
            for _ in range(5)] == [True] * 5


def test_disabled_guard_is_the_identity():
    adv = torch.randn(8)
    assert hook(TTRLGuard(GuardConfig()), ["a", "b"], [vote(["1"] * 4)] * 2, [["1"] * 4] * 2, adv) is adv


def test_tracking_categories_flip_rate_and_extinction_window():
    tr = ProblemTracker({"a": "5", "b": "7"})
    # labels 5, 5, 6, 6 (right -> wrong); the true answer is last sampled at step 3
    samples_a = [["5", "5", "6", "6"], ["5", "5", "5", "6"], ["6", "6", "5", "6"], ["6", "6", "6", "6"]]
    tr.record_base("a", vote(samples_a[0]), samples_a[0])
    tr.record_base("b", vote(["3", "7"]), ["3", "7"])
    rows = []
    for step, answers in enumerate(samples_a, start=1):
        rows.append(tr.record(step, "a", vote(answers), answers))
        tr.record(step, "b", vote(["3", "7"]), ["3", "7"])  # label 3: always wrong, never flips
    assert [r["flipped"] for r in rows] == [False, False, True, False]
    assert [r["label_correct"] for r in rows] == [True, True, False, False]
    assert rows[2]["true_share"] == 0.25
    problems = problems_table(tr.visits(), tr.base_votes()).set_index("problem_id")
    assert problems.loc["a", "category"] == "degraded" and problems.loc["b", "category"] == "always_wrong"
    # last step the truth held the vote: 2; the truth is never sampled again from step 4: window 2
    assert problems.loc["a", "extinction_window"] == 2.0 and math.isnan(problems.loc["b", "extinction_window"])
    assert flip_rate([{"visit": 1, "flipped": False}, {"visit": 2, "flipped": True}, {"visit": 3, "flipped": False}]) == 0.5
    assert [categorise(True, True), categorise(False, True), categorise(True, False), categorise(False, False)] == \
        ["stable_right", "learned", "degraded", "always_wrong"]
    w = extinction_window([1, 2, 3], [False, False, False], [0.5, 0.0, 0.0])
    assert math.isnan(w["extinction_window"]) and w["extinct_step"] == 2  # never held the vote
    restored = ProblemTracker({"a": "5", "b": "7"})
    restored.load_state_dict(tr.state_dict())
    assert restored.record(5, "a", vote(["5"]), ["5"])["flipped"]  # remembers the last label (6)
    assert restored.base_votes().equals(tr.base_votes())  # and the base vote


def test_categories_are_anchored_to_the_base_policy_not_the_first_visits():
    """A policy that moves within its first visits: the first quarter of the visits is already after
    the change, so reading the initial label there calls a degraded problem always wrong and a
    learned one stable right. Against the base policy's own vote they are degraded and learned."""
    tr = ProblemTracker({"d": "5", "l": "7", "s": "1", "w": "2"})
    base = {"d": ["5", "5", "5", "6"], "l": ["3", "3", "3", "7"], "s": ["1", "1", "4", "4"], "w": ["8", "2", "8", "8"]}
    later = {"d": ["6", "6", "6", "5"], "l": ["7", "7", "7", "3"], "s": ["1", "1", "1", "9"], "w": ["8", "8", "2", "2"]}
    for pid, answers in base.items():
        tr.record_base(pid, vote(answers), answers)
    for step in range(1, 9):  # 8 visits each, every label already what it will stay
        for pid, answers in later.items():
            tr.record(step, pid, vote(answers), answers)
    visits = tr.visits()
    first_quarter = visits[visits["visit"] <= 2].groupby("problem_id")["label_correct"].mean()
    assert first_quarter.to_dict() == {"d": 0.0, "l": 1.0, "s": 1.0, "w": 0.0}  # the quarter reading's initial
    problems = problems_table(visits, tr.base_votes()).set_index("problem_id")
    assert problems["category"].to_dict() == {"d": "degraded", "l": "learned", "s": "stable_right", "w": "always_wrong"}
    assert problems["initial_label_acc"].to_dict() == {"d": 1.0, "l": 0.0, "s": 1.0, "w": 0.0}
    assert problems["final_label_acc"].to_dict() == {"d": 0.0, "l": 1.0, "s": 1.0, "w": 0.0}
    # true shares at both ends: the base vote's samples and the last visit's
    assert problems.loc["d", "initial_true_share"] == 0.75 and problems.loc["d", "final_true_share"] == 0.25
    assert problems.loc["w", "base_label"] == "8" and problems.loc["w", "base_majority_ratio"] == 0.75
    # without a base vote (a run checkpointed before it existed) a problem has no category
    unanchored = problems_table(visits, tr.base_votes().iloc[1:]).set_index("problem_id")
    assert pd.isna(unanchored.loc["d", "category"]) and unanchored.loc["l", "category"] == "learned"


@pytest.mark.parametrize("override", ["tau_fr=0", "mps_min_votes_denom=0", "window=0", "rcsu_p_skip=1.5"])
def test_guard_settings_that_would_divide_by_zero_or_make_no_sense_fail_at_load(override):
    from tetrad.core.config import load_config
    from tetrad.core.errors import UserError

    with pytest.raises(UserError, match=f"config key '{override.split('=')[0]}'"):
        load_config(GuardConfig, None, [override])


def test_step_metrics_by_hand():
    """Two problems of N = 5 at their second visit. "a" (truth 5): label 6 by 3 of 5 votes; pseudo
    rewards 1 1 1 0 0, true rewards 0 0 0 1 0 -> agree on 1 of 5. "b" (truth 1/2): the class of 1/2
    and 0.5 wins 3 of 5, and is right -> pseudo and true rewards agree on all 5."""
    tr = ProblemTracker({"a": "5", "b": "\\frac{1}{2}"})
    tr.record(1, "a", vote(["5"] * 5), ["5"] * 5)
    tr.record(1, "b", vote(["1/2"] * 5), ["1/2"] * 5)
    a = ["6", "6", "6", "5", None]
    b = ["1/2", "0.5", "3", "1/2", "7"]
    rows = [tr.record(2, "a", vote(a), a), tr.record(2, "b", vote(b), b)]
    assert [r["reward_accuracy"] for r in rows] == [0.2, 1.0]
    m = step_metrics(rows)
    assert m["majority_ratio"] == pytest.approx((3 / 5 + 3 / 5) / 2)
    assert m["label_accuracy"] == 0.5 and m["reward_accuracy"] == pytest.approx(0.6)  # (1 + 5) / 10 responses
    assert m["true_share"] == pytest.approx((1 / 5 + 3 / 5) / 2) and m["flip_rate"] == 0.5  # "a" flipped 5 -> 6
    unlabeled = ProblemTracker(None)
    assert step_metrics([unlabeled.record(1, "a", vote(a), a)]).keys() == {"flip_rate", "majority_ratio"}


def test_stopping_rule_on_a_constructed_series():
    """Window 2, flip rate below 0.1 and majority ratio rising by less than 0.01. Step 6 is the first
    with a low flip rate (mean of 0.05, 0.05) but the ratio still rises (0.8 vs 0.65 over steps 3-4);
    step 7: 0.025, but 0.8 vs 0.75; step 8: 0.0 and 0.8 vs 0.8, no rise: the rule stops there."""
    nan = float("nan")
    steps = list(range(1, 9))
    fr = [nan, nan, 0.5, 0.3, 0.05, 0.05, 0.0, 0.0]
    mr = [0.5, 0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8]
    cfg = StopConfig(flip_rate=0.1, mr_rise=0.01)
    assert stop_step(steps, fr, mr, 2, cfg) == 8
    assert stop_step(steps, fr, mr, 2, StopConfig(flip_rate=0.1, mr_rise=0.2)) == 6  # any rise below 0.2 counts
    falling = [0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.5, 0.5]
    assert stop_step(steps, fr, falling, 2, cfg) == 6  # a falling ratio has stopped rising
    assert stop_step(steps, [nan, nan] + [0.3] * 6, [0.5] * 8, 2, cfg) is None  # labels keep flipping
    assert stop_step(steps, [nan] * 5 + [0.0] * 3, [0.5] * 8, 2, cfg) == 7  # needs a full window of flip rates
    # the pick: the first evaluation at or after the stop step, against the best in hindsight
    evals = [{"step": 0, "pass@1": 0.9}, {"step": 4, "pass@1": 0.5}, {"step": 8, "pass@1": 0.45},
             {"step": 12, "pass@1": 0.4}]
    assert stop_report(6, evals) == {"stop_eval_step": 8, "stop_pass@1": 0.45, "best_eval_step": 4,
                                     "best_pass@1": 0.5}
    assert stop_report(None, evals)["stop_eval_step"] == 12  # never held: the run's end
    assert stop_report(4, evals)["stop_eval_step"] == 4


@pytest.mark.parametrize("override", ["stop.flip_rate=0", "stop.mr_rise=-0.1", "stop.window=-1"])
def test_bad_stopping_rule_settings_fail_at_load(override):
    from tetrad.core.config import load_config
    from tetrad.core.errors import UserError
    from tetrad.ttrl.recipe import TTRLConfig

    with pytest.raises(UserError, match=f"config key '{override.split('=')[0]}'"):
        load_config(TTRLConfig, None, [override])
