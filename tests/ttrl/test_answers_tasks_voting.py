import json
from collections import Counter

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tetrad.core.errors import UserError
from tetrad.ttrl.answers import answers_equal, extract_answer, last_boxed, normalise, same_answer
from tetrad.ttrl.tasks import TaskConfig, load_benchmark, load_tasks, reasoning_gym_tasks
from tetrad.ttrl.voting import rewards, vote


@pytest.mark.parametrize("text, answer", [
    ("so the total is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("first \\boxed{3} then \\boxed{x^{2}+1}", "x^{2}+1"),  # the last box, nested braces
    ("\\boxed 7 is it", "7"),
    ("The answer is 42.", "42"),
    ("12 + 3 = 15", "15"),  # plain: the last number
    ("-4", "-4"),
    ("no digits here", None),
    ("\\boxed{", None),
    ("", None),
])
def test_extraction(text, answer):
    assert extract_answer(text) == answer


def test_a_response_cut_at_the_token_limit_answers_only_with_a_complete_box():
    assert extract_answer("so we get \\boxed{\\frac{1}{2") == "2"  # finished: the last number
    assert extract_answer("so we get \\boxed{\\frac{1}{2", finished=False) is None
    assert extract_answer("3 + 4 = 7, and 7 * 2 = 1", finished=False) is None
    assert extract_answer("it is \\boxed{14} because 14 = 1", finished=False) == "14"


def test_finished_tells_a_response_that_ended_from_one_that_was_cut():
    import string

    from tetrad.llm.models import ModelSpec, load_policy
    from tetrad.llm.sampling import Rollouts, SamplingParams, finished

    _, tok = load_policy(ModelSpec(kind="tiny", chars=string.printable, hidden=16, layers=1, heads=2))
    ids = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    rows = [ids("12") + [tok.eos_token_id], ids("12345"), ids("1</a>"), ids("12")]
    width = 5
    response_ids = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    r = Rollouts(torch.zeros(4, 1, dtype=torch.long), torch.ones(4, 1, dtype=torch.long), response_ids, mask,
                 ["12", "12345", "1</a>", "12"])
    # ended by EOS; cut at 5 tokens; ended by a stop string; shorter than the limit
    assert finished(r, tok, SamplingParams(max_new_tokens=5, stop=["</a>"])) == [True, False, True, True]


@pytest.mark.parametrize("a, b", [("025", "25"), ("142.0", "142"), ("\\dfrac{14}{3}", "\\frac{14}{3}"),
                                  ("$1,000$", "1000"), ("\\text{(C)}", "(C)"), ("-0", "0")])
def test_normalised_equal_pairs(a, b):
    assert normalise(a) == normalise(b) and answers_equal(a, b)


def test_math_verify_path_and_non_equal():
    assert answers_equal("\\frac{1}{2}", "0.5") and answers_equal("1/2", "0.5") and answers_equal("0.5", "1/2")
    assert answers_equal("\\sqrt{2}", "2^{1/2}") and not answers_equal("\\sqrt{2}", "2")
    assert answers_equal("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})")
    assert not answers_equal("3", "4") and not answers_equal("3", None) and not answers_equal(None, None)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=80) | st.from_regex(r"[\\{}boxed0-9a-z$ .,/-]{0,40}"))
def test_extraction_and_normalisation_never_raise(text):
    out = extract_answer(text)
    assert out is None or isinstance(out, str)
    n = normalise(out)
    assert n is None or isinstance(n, str)
    assert isinstance(last_boxed(text), (str, type(None)))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20), st.text(max_size=20))
def test_equivalence_never_raises(a, b):
    assert isinstance(answers_equal(a, b), bool)


def test_vote_ratio_counts_answerless_samples():
    v = vote(["5", None, "5", "6", None, None, "6", "5"])
    assert v.label == "5" and v.ratio == 3 / 8 and v.counts[None] == 3 and v.n == 8
    assert vote(["6", "5", "5", "6"]).label == "6"  # tie: first seen
    none = vote([None, None])
    assert none.label is None and none.ratio == 0.0
    assert rewards(["5", None, "6"], vote(["5", "5", "6"])).tolist() == [1.0, 0.0, 0.0]
    assert rewards([None, None], none).tolist() == [0.0, 0.0]  # no label: nothing is rewarded


def test_vote_groups_equivalent_answers_into_one_class():
    # three spellings of one half outvote the two 3s that a string vote would have elected
    answers = [normalise(a) for a in ["3", "1/2", "3", "0.5", "\\frac{1}{2}", None, "\\dfrac{1}{2}"]]
    v = vote(answers)
    assert v.label == "\\frac{1}{2}"  # the most common spelling names the class (dfrac normalises to frac)
    assert v.counts == Counter({"\\frac{1}{2}": 4, "3": 2, None: 1}) and v.ratio == 4 / 7 and v.n == 7
    assert {v.class_of(a) for a in ["1/2", "0.5", "\\frac{1}{2}"]} == {"\\frac{1}{2}"}
    assert rewards(answers, v).tolist() == [0, 1, 0, 1, 1, 0, 1]
    assert v.class_of("7") == "7" and v.class_of(None) is None  # unseen answers are their own class
    # integers never reach math-verify: distinct integers are distinct answers
    assert vote(["12", "13", "13"]).counts == Counter({"13": 2, "12": 1})
    # the math-verify budget: with none left, unequal spellings keep their own classes
    assert vote(["1/2", "0.5", "\\frac{1}{2}"], max_verified_pairs=0).counts == Counter(
        {"1/2": 2, "\\frac{1}{2}": 1})  # 1/2 = 0.5 is an exact-number fast path, not a math-verify call
    assert same_answer("x=2", "2") and same_answer("2", "x=2")  # either direction counts
    assert same_answer(None, None) and not same_answer("2", None) and not same_answer("2", "3")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(["1", "2", "0.5", "1/2", "\\frac{1}{2}", "x", "(1,2)", "{"]),
                          st.text(max_size=6)), min_size=1, max_size=12))
def test_vote_never_raises_and_equal_strings_share_a_class(answers):
    v = vote(answers)
    present = [a for a in answers if a is not None]
    assert sum(v.counts.values()) == len(answers) and v.n == len(answers)
    for a in present:
        for b in present:
            if a == b:
                assert v.class_of(a) == v.class_of(b)
    assert (v.label is None) == (not present)
    if present:
        assert v.counts[v.label] == max(c for k, c in v.counts.items() if k is not None)
        assert sum(rewards(answers, v).tolist()) == v.counts[v.label]


def test_reasoning_gym_tasks_are_seeded_and_apart_from_truths():
    a = reasoning_gym_tasks("chain_sum", 10, 7, {"min_terms": 2, "max_terms": 2})
    b = reasoning_gym_tasks("chain_sum", 10, 7, {"min_terms": 2, "max_terms": 2})
    assert a == b and len(a) == 10 and a.prompts[0].endswith(" =")
    for prompt, truth in zip(a.prompts, a.truths):
        assert eval(prompt.rstrip(" =")) == int(truth)  # the expression and its answer agree
    assert reasoning_gym_tasks("chain_sum", 10, 8) != a
    q = load_tasks(TaskConfig(size=3, prompt_style="question", suffix=" Answer:"))
    assert q.prompts[0].startswith("State the final answer") and q.prompts[0].endswith(" Answer:")
    with pytest.raises(UserError, match="no_such_task"):
        reasoning_gym_tasks("no_such_task", 3, 0)


def test_benchmark_files_and_bad_input(tmp_path):
    good = tmp_path / "b.json"
    good.write_text(json.dumps([{"prompt": "1+1?", "answer": "2", "source": "x", "id": "p0"},
                                {"prompt": "2+2?", "answer": "4.0", "source": "x", "id": "p1"}]))
    ts = load_benchmark(str(good))
    assert ts.ids == ["p0", "p1"] and ts.truths == ["2", "4.0"] and ts.prompts[1] == "2+2?"
    assert len(load_benchmark(str(good), size=1)) == 1
    missing = tmp_path / "m.json"
    missing.write_text(json.dumps([{"prompt": "1+1?", "id": "p0"}]))
    with pytest.raises(UserError, match="lacks the field 'answer'"):
        load_benchmark(str(missing))
    for bad in ({"prompt": None, "answer": "2"}, {"prompt": "1+1?", "answer": ""}, {"prompt": ["1+1?"], "answer": "2"}):
        missing.write_text(json.dumps([bad]))
        with pytest.raises(UserError, match="problem 0 has no text"):
            load_benchmark(str(missing))
    empty = tmp_path / "e.json"
    empty.write_text("[]")
    with pytest.raises(UserError, match="non-empty"):
        load_benchmark(str(empty))
    broken = tmp_path / "x.json"
    broken.write_text("[{")
    with pytest.raises(UserError, match="not valid JSON"):
        load_benchmark(str(broken))
    with pytest.raises(UserError, match="not found"):
        load_benchmark(str(tmp_path / "nope.json"))
