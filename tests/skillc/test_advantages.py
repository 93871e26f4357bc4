import math

import pytest
import torch

from tetrad.core.errors import UserError
from tetrad.skillc.advantages import (d2skill_advantages, dual_stream_advantages, fixed_gate_advantages,
                                      grpo_advantages, skill_gaps)


def t(*xs, dtype=torch.float32):
    return torch.tensor(xs, dtype=dtype)


def test_grpo_normalises_within_each_task_wherever_its_rollouts_lie():
    adv = grpo_advantages(t(1, 0, 5, 1, 0, 5), t(0, 0, 1, 0, 0, 1, dtype=torch.long))
    # task 0: rewards 1, 0, 1, 0 -> +-1; task 1: two equal rewards -> 0
    assert torch.allclose(adv, t(1, -1, 0, 1, -1, 0), atol=1e-4)


def test_dual_stream_on_a_hand_computed_group_with_a_positive_skill_gap():
    # one task: two skill-injected successes, one skill-free success and one skill-free failure
    r, z, ids = t(1, 1, 1, 0), t(1, 1, 0, 0, dtype=torch.bool), t(0, 0, 0, 0, dtype=torch.long)
    std = math.sqrt(0.1875)  # population std of (1, 1, 1, 0) around 0.75
    s1 = [0.25 / std] * 3 + [-0.75 / std]
    g = 1.0 * 0.5 / std  # gap = 1 - 0.5
    s2 = [0 - g, 0 - g, 1 + g, -1]  # within-condition z-scores plus the one-sided correction
    expected = t(*[0.6 * a + 0.4 * b for a, b in zip(s1, s2)])
    adv = dual_stream_advantages(r, z, ids, strength=1.0, mix=0.4)
    assert torch.allclose(adv, expected, atol=1e-4)
    assert adv[2] > adv[0]  # the skill-free success gets more credit than a skill-injected one
    assert torch.allclose(skill_gaps(r, z, ids), t(0.5, 0.5, 0.5, 0.5))


def test_no_correction_when_the_gap_is_not_positive():
    r, z, ids = t(1, 1, 1, 0), t(0, 0, 1, 1, dtype=torch.bool), t(0, 0, 0, 0, dtype=torch.long)
    std = math.sqrt(0.1875)
    s1 = [0.25 / std] * 3 + [-0.75 / std]
    s2 = [0, 0, 1, -1]  # skills hurt here (gap -0.5): plain within-condition normalisation
    expected = t(*[0.6 * a + 0.4 * b for a, b in zip(s1, s2)])
    assert torch.allclose(dual_stream_advantages(r, z, ids, 1.0, 0.4), expected, atol=1e-4)
    # and a larger strength changes nothing
    assert torch.allclose(dual_stream_advantages(r, z, ids, 5.0, 0.4), expected, atol=1e-4)


def test_equal_rewards_give_zero_advantage_and_one_condition_reduces_to_grpo():
    ids = t(0, 0, 0, 0, dtype=torch.long)
    same = dual_stream_advantages(t(1, 1, 1, 1), t(1, 1, 0, 0, dtype=torch.bool), ids, 1.0, 0.4)
    assert torch.equal(same, torch.zeros(4))
    r = t(1, 0, 0, 1)
    for flags in (t(1, 1, 1, 1, dtype=torch.bool), t(0, 0, 0, 0, dtype=torch.bool)):
        assert torch.allclose(dual_stream_advantages(r, flags, ids, 1.0, 0.4), grpo_advantages(r, ids), atol=1e-5)
    assert torch.equal(skill_gaps(r, t(1, 1, 1, 1, dtype=torch.bool), ids), torch.zeros(4))


def test_tasks_are_independent_and_strength_is_per_rollout():
    r = t(1, 0, 1, 1, 1, 0)
    z = t(1, 0, 1, 1, 0, 0, dtype=torch.bool)
    ids = t(0, 0, 1, 1, 1, 1, dtype=torch.long)
    both = dual_stream_advantages(r, z, ids, t(0, 0, 1, 1, 1, 1), 0.4)
    alone = dual_stream_advantages(r[2:], z[2:], ids[2:], 1.0, 0.4)
    assert torch.allclose(both[2:], alone, atol=1e-6)
    # strength 0 for task 0: no correction there, only the two streams
    plain = dual_stream_advantages(r[:2], z[:2], ids[:2], 0.0, 0.4)
    assert torch.allclose(both[:2], plain, atol=1e-6)


def test_fixed_gate_corrects_whatever_the_gap():
    r, ids = t(1, 1, 0, 0), t(0, 0, 0, 0, dtype=torch.long)
    z = t(1, 0, 1, 0, dtype=torch.bool)  # no gap at all
    adv = fixed_gate_advantages(r, z, ids, gate=0.5)
    assert torch.allclose(adv, t(1 - 0.5, 1 + 0.5, -1, -1), atol=1e-4)
    assert torch.allclose(dual_stream_advantages(r, z, ids, 1.0, 0.0), grpo_advantages(r, ids), atol=1e-5)


def test_d2skill_rewards_skill_injected_success_over_the_skill_free_mean():
    r, ids = t(1, 0, 1, 0), t(0, 0, 0, 0, dtype=torch.long)
    z = t(1, 1, 0, 0, dtype=torch.bool)
    won = t(1, 0, 1, 0)
    # bonus = coef * (won - 0.5) on the skill-injected rollouts: rewards 1.5, -0.5, 1, 0
    expected = grpo_advantages(t(1.5, -0.5, 1, 0), ids)
    assert torch.allclose(d2skill_advantages(r, z, ids, won, coef=1.0), expected, atol=1e-6)
    assert torch.allclose(d2skill_advantages(r, z, ids, won, coef=0.0), grpo_advantages(r, ids), atol=1e-6)


def test_bad_inputs_are_user_errors():
    ids = t(0, 0, dtype=torch.long)
    with pytest.raises(UserError, match="NaN"):
        dual_stream_advantages(t(1, float("nan")), t(1, 0, dtype=torch.bool), ids)
    with pytest.raises(UserError, match="one entry per rollout"):
        dual_stream_advantages(t(1, 0, 1), t(1, 0, dtype=torch.bool), ids)
    with pytest.raises(UserError, match="mix weight"):
        dual_stream_advantages(t(1, 0), t(1, 0, dtype=torch.bool), ids, 1.0, 1.5)
    with pytest.raises(UserError, match="strength"):
        dual_stream_advantages(t(1, 0), t(1, 0, dtype=torch.bool), ids, -1.0)
