"""benchmarks/reliability.py: its classification of fuzz outcomes, its reading of config fields,
its summary comparison, and the script itself at the smallest scale."""

import importlib.util
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import Field

from tetrad.core.config import Config, PositiveInt, RunConfig, Share

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "reliability.py"


def _load():
    spec = importlib.util.spec_from_file_location("reliability", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["reliability"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rel = _load()

TRACEBACK = "Traceback (most recent call last):\n  File \"x.py\", line 1\nZeroDivisionError: division by zero\n"


@pytest.mark.parametrize("rc, out, err, nonsense, verdict", [
    (1, "", TRACEBACK, False, "traceback"),  # a crash
    (2, "", "progress 10%\n" + TRACEBACK + "tetrad: error: x\n", True, "traceback"),  # exit 2 after a traceback
    (0, TRACEBACK, "", False, "traceback"),  # a traceback printed by a run that carried on
    (-11, "", "", False, "traceback"),  # killed by a signal (a segfault)
    (137, "", "", True, "traceback"),  # any other exit status
    (2, "", "tetrad: error: config key 'steps': Input should be greater than or equal to 1 (got -5)\n", True, "clean"),
    (2, "", "loading\ntetrad ranking train: error: unrecognized arguments: x\n\n", True, "clean"),
    (2, "", "tetrad: error: a message\nover two lines\n", True, "traceback"),  # not one line
    (2, "", "", True, "traceback"),  # exit 2 without a word
    (0, "{}", "", True, "silent"),  # nonsense accepted
    (None, "", "", True, "silent"),  # nonsense still running at the timeout
    (0, "{}", "", False, "accepted"),
    (None, "", "", False, "accepted"),  # a plausible value still running at the timeout: it ran
    (2, "", "tetrad: error: shop catalogue not found: zz\n", False, "clean"),  # plausible, refused cleanly
])
def test_classify(rc, out, err, nonsense, verdict):
    assert rel.classify(rc, out, err, nonsense) == verdict


class Inner(Config):
    lr: Annotated[float, Field(gt=0.0)] = 1e-3
    share: Share = 0.5
    kind: Literal["a", "b"] = "a"


class Outer(RunConfig):
    steps: PositiveInt = 10
    level: Annotated[int, Field(ge=-1)] = -1
    maybe: PositiveInt | None = None
    flag: bool = False
    device: str = "cpu"
    ks: Annotated[list[PositiveInt], Field(min_length=1)] = [5]
    knobs: dict[str, int] = {}
    inner: Inner = Inner()


def test_config_fields_walks_nested_sections_with_their_bounds():
    specs = {s.key: s for s in rel.config_fields(Outer)}
    assert {"name", "seed", "root", "resume", "steps", "inner", "inner.lr", "inner.share", "inner.kind",
            "ks"} <= set(specs)
    assert specs["steps"].kind == "int" and specs["steps"].ge == 1
    assert specs["seed"].ge == 0 and specs["seed"].lt == 2**32
    assert specs["inner.lr"].kind == "float" and specs["inner.lr"].gt == 0.0
    assert (specs["inner.share"].ge, specs["inner.share"].le) == (0.0, 1.0)
    assert specs["inner.kind"].choices == ("a", "b") and specs["inner"].kind == "section"
    assert specs["maybe"].optional and specs["maybe"].ge == 1
    assert specs["ks"].kind == "list" and specs["ks"].min_length == 1 and specs["ks"].item.ge == 1
    assert specs["name"].plain_name and specs["knobs"].kind == "dict"


@pytest.mark.parametrize("key, raw, nonsense", [
    ("steps", "0", True), ("steps", "-5", True), ("steps", "1", False), ("steps", str(10**12), False),
    ("steps", "on", True), ("steps", "1.5", True), ("steps", "2.0", False), ("steps", "banana", True),
    ("steps", "", True), ("steps", "null", True), ("steps", "[]", True),
    ("level", "-1", False), ("level", "-5", True),
    ("maybe", "null", False), ("maybe", "0", True), ("maybe", "3", False),
    ("seed", "-1", True), ("seed", str(2**32), True), ("seed", str(2**32 - 1), False),
    ("inner.lr", "0", True), ("inner.lr", ".nan", True), ("inner.lr", ".inf", True), ("inner.lr", "3", False),
    ("inner.lr", "true", True), ("inner.share", "1.5", True), ("inner.share", "1", False),
    ("inner.kind", "b", False), ("inner.kind", "c", True), ("inner", "banana", True), ("inner", "{}", False),
    ("flag", "on", False), ("flag", "1", True), ("flag", "banana", True),
    ("device", "banana", False), ("device", "", False), ("device", "0", True), ("device", "[]", True),
    ("name", "fuzz-a", False), ("name", "../escape", True), ("name", "/tmp", True), ("name", "", True),
    ("root", "../escape", False), ("root", "/tmp", False),
    ("ks", "[]", True), ("ks", "[5, 10]", False), ("ks", "[0]", True), ("ks", "[1, banana]", True), ("ks", "5", True),
    ("knobs", "{a: 1}", False), ("knobs", "[]", True),
])
def test_nonsense_is_decided_from_type_and_bounds(key, raw, nonsense):
    spec = {s.key: s for s in rel.config_fields(Outer)}[key]
    assert rel.is_nonsense(spec, rel.parse_override_value(raw)) is nonsense


def test_plausible_values_are_not_nonsense():
    for spec in rel.config_fields(Outer):
        for raw in rel.plausible_values(spec):
            assert not rel.is_nonsense(spec, rel.parse_override_value(raw)), (spec.key, raw)


def test_cases_are_drawn_from_every_group_and_labelled():
    cases = rel.draw_cases(50, random.Random(0), list(rel.RECIPES))
    assert {c.group for c in cases} == set(rel.RECIPES)
    assert 0 < sum(c.nonsense for c in cases) < 50
    assert cases == rel.draw_cases(50, random.Random(0), list(rel.RECIPES))  # --seed repeats the cases


def test_summaries_compare_without_timings_and_nan_equals_nan():
    a = {"auc": 0.7, "nan": math.nan, "train_seconds": 3.0, "cost": {"step_seconds": 1.0, "skill_rollout_share": 0.3},
         "train_samples_per_s": 10.0, "peak_rss_mb": 500.0, "per_type": [{"model_seconds_per_step": 0.1, "n": 2}]}
    b = json.loads(json.dumps({**a, "train_seconds": 9.0, "cost": {"step_seconds": 2.0, "skill_rollout_share": 0.4},
                               "train_samples_per_s": 3.0, "peak_rss_mb": 900.0,
                               "per_type": [{"model_seconds_per_step": 0.5, "n": 2}]}))
    assert rel.differences(rel.without_timings(a), rel.without_timings(b)) == []
    c = {**b, "auc": 0.70001, "per_type": [{"n": 3}], "extra": 1}
    assert rel.differences(rel.without_timings(a), rel.without_timings(c)) == ["auc", "extra", "per_type[0].n"]
    assert rel.differences({"x": 1}, {"x": 1.0}) == ["x"]  # a type change is a change


def test_the_script_at_the_smallest_scale(tmp_path):
    out = tmp_path / "reliability.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--recipes", "sid", "--groups", "sid", "--kills", "1",
                           "--chain", "1", "--cases", "4", "--timeout", "10", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    kills = result["kills"]["sid"]
    assert kills["kills"] == 1 and kills["runs"] == 1 and kills["survived"] == kills["identical"] == 1
    fuzz = result["fuzz"]["total"]
    assert fuzz["tried"] == 4 and sum(fuzz[c] for c in rel.CATEGORIES) == 4
    assert fuzz["traceback"] + fuzz["silent"] == len(result["fuzz"]["failing"])
    assert "| sid |" in proc.stdout
