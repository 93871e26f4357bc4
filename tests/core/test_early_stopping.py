import math

from tetrad.core.early_stopping import EarlyStopping


def test_stops_after_patience_validations_without_improvement_and_keeps_the_best():
    es = EarlyStopping(patience=2)
    improved = [es.update(step, v) for step, v in [(100, 0.10), (200, 0.15), (300, 0.14), (400, 0.15), (500, 0.2)]]
    assert improved == [True, True, False, False, True]  # a tie is no improvement
    assert (es.best, es.best_step, es.stop) == (0.2, 500, False)
    es.update(600, 0.19)
    assert not es.stop
    es.update(700, 0.0)
    assert es.stop and es.best_step == 500


def test_min_delta_patience_zero_and_resume_state():
    es = EarlyStopping(patience=1, min_delta=0.01)
    es.update(1, 0.5)
    assert not es.update(2, 0.505) and es.stop  # below min_delta counts as no improvement
    never = EarlyStopping(patience=0)
    for step in range(10):
        never.update(step, -step)
    assert not never.stop and never.best_step == 0
    assert EarlyStopping(0).best == -math.inf and EarlyStopping(0).update(1, float("-inf"))  # the first always counts
    again = EarlyStopping(patience=1, min_delta=0.01)
    again.load_state_dict(es.state_dict())
    assert again == es and again.stop
