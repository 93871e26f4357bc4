import math

from tetrad.skillc.curriculum import Curriculum, Skill0Schedule


def test_smoothed_gap_drives_strength_and_share():
    c = Curriculum(["a", "b"], strength=2.0, smoothing=0.5, min_share=0.2, max_share=0.8, patience=2)
    assert c.share_of("a") == 0.8 and c.strength_of("a") == 2.0  # before any validation: full help
    c.update({"a": 0.4, "b": 0.2})
    assert c.smoothed == {"a": 0.4, "b": 0.2}  # the first observation starts the average
    c.update({"a": 0.0, "b": 0.2})
    assert math.isclose(c.smoothed["a"], 0.2) and math.isclose(c.remaining("a"), 0.5)
    assert math.isclose(c.strength_of("a"), 1.0) and math.isclose(c.share_of("a"), 0.5)
    assert c.share_of("b") == 0.8
    fixed = Curriculum(["a"], fixed_share=0.5)
    fixed.update({"a": 0.01})
    assert fixed.share_of("a") == 0.5


def test_pruning_is_monotonic_a_pruned_skill_never_returns():
    c = Curriculum(["a", "b"], smoothing=0.5, patience=2)
    assert c.update({"a": 0.2, "b": 0.5}) == []
    assert c.update({"a": -0.5, "b": 0.5}) == []  # a: smoothed -0.15, first time below
    assert c.update({"a": -0.5, "b": 0.5}) == ["a"]  # second time in a row: pruned
    for _ in range(5):
        c.update({"a": 1.0, "b": 0.5})  # the gap comes back...
    assert c.smoothed["a"] > 0.5
    assert c.active == ["b"] and c.pruned == ["a"]  # ...the skill does not
    assert c.share_of("a") == 0.0 and c.strength_of("a") == 0.0
    never = Curriculum(["a"], smoothing=0.5, patience=1, pruning=False)
    never.update({"a": -1.0})
    assert never.active == ["a"]


def test_curriculum_state_round_trips_exactly():
    c = Curriculum(["a", "b", "c"], smoothing=0.9, patience=1)
    c.update({"a": 0.3, "b": -0.1, "c": 0.2})
    c.update({"a": 0.1, "b": 0.4, "c": 0.0})
    d = Curriculum(["a", "b", "c"], smoothing=0.9, patience=1)
    d.load_state_dict(c.state_dict())
    assert d.state_dict() == c.state_dict()
    for gaps in ({"a": 0.05, "c": -0.3}, {"a": -0.2, "b": 0.1, "c": 0.3}):
        assert c.update(gaps) == d.update(gaps)
    assert d.state_dict() == c.state_dict() and d.snapshot() == c.snapshot()


def test_skill0_keeps_the_largest_positive_gaps_on_its_schedule():
    s = Skill0Schedule(["a", "b", "c", "d"], stages=[4, 2, 0])
    assert s.update({"a": 0.3, "b": 0.2, "c": -0.1, "d": 0.1}, progress=0.1) == ["c"]  # negative gap out
    assert s.update({"a": 0.3, "b": 0.2, "c": 0.9, "d": 0.1}, progress=0.5) == ["d"]  # keep 2; c never returns
    assert s.active == ["a", "b"]
    assert s.update({"a": 0.3, "b": 0.2}, progress=0.9) == ["a", "b"] and s.active == []
    t = Skill0Schedule(["a", "b", "c", "d"], stages=[4, 2, 0])
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict()
