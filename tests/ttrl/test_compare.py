import json
from pathlib import Path

import numpy as np
import pytest

from tetrad.core.bootstrap import paired_t_interval
from tetrad.core.errors import UserError
from tetrad.core.rundir import LOCATION_KEYS
from tetrad.ttrl.compare import CompareConfig, compare, variant_config
from tetrad.ttrl.tracking import StopConfig

from .test_recipe import config


def fake_summary(pass1: float, degraded: int, learned: int, labels: list) -> dict:
    return {"pass@1": pass1, "maj@2": pass1 + 0.1, "base_pass@1": 0.4, "base_maj@2": 0.5,
            "n_degraded": degraded, "n_learned": learned, "n_stable_right": 4 - degraded, "n_always_wrong": 4 - learned,
            "steps": 4, "problems": 8, "flip_rate_peak": 0.5, "flip_rate_peak_step": 3, "flip_rate_last": 0.25,
            "flip_rate_by_pass": [0.0, 0.5], "labels_by_visit": labels, "extinction_windows": [1.0, 2.0],
            "base_confident_wrong": 0.125, "seconds": 60.0, "mps_fired": 0.0, "rcsu_skipped": 0.0,
            "frs_weight_mean": float("nan")}


def commit(cfg: CompareConfig, variant: str, seed: int, summary: dict, **settings) -> None:
    run = variant_config(cfg, variant, seed)
    saved = {k: v for k, v in run.model_dump(mode="json").items() if k not in LOCATION_KEYS}
    saved.update(settings)
    path = Path(cfg.results_dir) / f"{run.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": saved, "summary": summary}))


def compare_config(tmp_path, **kw) -> CompareConfig:
    base = dict(run=config(tmp_path / "runs", "unused", epochs=1), seeds=[0], variants=["ttrl", "rcsu_only"],
                prefix="t", results_dir=str(tmp_path / "results"), output=str(tmp_path / "ttrl.md"))
    return CompareConfig(**(base | kw))


def test_compare_reuses_a_committed_summary_and_trains_only_what_is_missing(tmp_path):
    cfg = compare_config(tmp_path)
    commit(cfg, "ttrl", 0, fake_summary(0.5, 1, 0, ["3"] * 8))
    compare(cfg, command="first")
    runs = tmp_path / "runs" / "ttrl"
    assert not (runs / "t-ttrl-s0").exists()  # on file: not trained
    assert (runs / "t-rcsu_only-s0" / "summary.json").is_file()  # missing: trained
    made = json.loads((tmp_path / "results" / "t-rcsu_only-s0.json").read_text())
    assert made["settings"]["guard"]["rcsu"] is True and "name" not in made["settings"]
    # the file carries what the tables need from the run directory
    extras = {"labels_by_visit", "flip_rate_by_pass", "extinction_windows", "mps_fired", "seconds"}
    assert extras <= set(made["summary"])
    assert len(made["summary"]["labels_by_visit"]) == 8  # 8 problems visited once
    text = (tmp_path / "ttrl.md").read_text()
    assert "| rcsu_only | 1 |" in text and "(ttrl_compare_dynamics.png)" in text
    assert (tmp_path / "ttrl_compare_dynamics.png").is_file() and (tmp_path / "ttrl_compare_flip_rate.png").is_file()
    # an earlier compare's finished run (no file, no extras in its summary) gets them from its directory
    (tmp_path / "results" / "t-rcsu_only-s0.json").unlink()
    done = runs / "t-rcsu_only-s0" / "summary.json"
    done.write_text(json.dumps({k: v for k, v in made["summary"].items()
                                if k not in ("labels_by_visit", "flip_rate_by_pass", "extinction_windows")}))
    compare(cfg, command="first")
    assert json.loads((tmp_path / "results" / "t-rcsu_only-s0.json").read_text())["summary"] == made["summary"]
    # the files alone make the tables: with the run directories gone nothing is trained again
    import shutil

    shutil.rmtree(runs)
    compare(cfg, command="second")
    again = (tmp_path / "ttrl.md").read_text()
    assert not runs.exists() and "Made by `second`" in again
    strip = lambda t: [line for line in t.splitlines() if line.startswith("| ")]  # noqa: E731
    assert strip(again) == strip(text)


def test_compare_refuses_a_summary_made_with_other_settings(tmp_path):
    cfg = compare_config(tmp_path, variants=["ttrl"])
    commit(cfg, "ttrl", 0, fake_summary(0.5, 1, 0, ["3"] * 8), epochs=2)
    with pytest.raises(UserError, match=r"t-ttrl-s0.json was made with other settings \(epochs\)"):
        compare(cfg, command="x")
    assert not (tmp_path / "runs").exists()  # refused before anything was trained
    # a setting added to the config after the file was written matches at its default
    commit(cfg, "ttrl", 0, fake_summary(0.5, 1, 0, ["3"] * 8))
    path = tmp_path / "results" / "t-ttrl-s0.json"
    saved = json.loads(path.read_text())
    del saved["settings"]["stop"]
    path.write_text(json.dumps(saved))
    compare(cfg, command="x")
    with pytest.raises(UserError, match="other settings"):
        other = cfg.run.model_copy(update={"stop": StopConfig(flip_rate=0.5)})
        compare(cfg.model_copy(update={"run": other}), command="x")


def test_the_report_gives_paired_t_intervals_against_plain_ttrl(tmp_path):
    cfg = compare_config(tmp_path, seeds=[0, 1, 2], variants=["ttrl", "ttrl_guard"])
    plain = {0: (0.50, 5, 1), 1: (0.40, 7, 2), 2: (0.45, 6, 0)}
    guard = {0: (0.55, 3, 1), 1: (0.41, 6, 2), 2: (0.52, 2, 1)}
    for seed in cfg.seeds:
        commit(cfg, "ttrl", seed, fake_summary(*plain[seed], ["1", "2", "3", "4"]))
        commit(cfg, "ttrl_guard", seed, fake_summary(*guard[seed], ["1", "2", "3", "5" if seed else "4"]))
    compare(cfg, command="tetrad ttrl compare (test)")
    assert not (tmp_path / "runs").exists()  # nothing trained
    text = (tmp_path / "ttrl.md").read_text()
    assert "95% paired t interval over seeds" in text and "95% t interval over seeds" in text

    def cell(values, fmt="{:+.3f}"):
        m, h = paired_t_interval(values)
        return f"{fmt.format(m)} [{fmt.format(m - h)}, {fmt.format(m + h)}]"

    d_pass = [guard[s][0] - plain[s][0] for s in cfg.seeds]
    d_maj = d_pass  # maj@2 is pass@1 + 0.1 in both
    d_deg = [guard[s][1] - plain[s][1] for s in cfg.seeds]
    d_learn = [guard[s][2] - plain[s][2] for s in cfg.seeds]
    row = next(line for line in text.splitlines() if line.startswith("| ttrl_guard | 3 |"))
    assert row == (f"| ttrl_guard | 3 | {cell(d_pass)} | {cell(d_maj)} | {cell(d_deg, '{:+.1f}')} | "
                   f"{cell(d_learn, '{:+.1f}')} | 0.167 ± 0.118 |")  # labels: 0, 1/4, 1/4 of the visits
    means = next(line for line in text.splitlines() if line.startswith("| ttrl |"))
    m, h = paired_t_interval([plain[s][0] for s in cfg.seeds])
    assert means.startswith(f"| ttrl | {m:.3f} [{m - h:.3f}, {m + h:.3f}] |")
    assert "| base (step 0) | 0.400 [0.400, 0.400] | 0.500 [0.500, 0.500] | – |" in text
    m, h = paired_t_interval(d_pass)
    verdict = "beyond seed noise" if abs(m) > h else "no effect on pass@1 distinguishable from seed noise"
    assert f"- ttrl_guard vs TTRL, same seeds: pass@1 +0.050, +0.010, +0.070 (mean {m:+.3f})" in text
    assert verdict in text


@pytest.mark.parametrize("name", ["compare_dynamics.yaml", "compare_systematic.yaml"])
def test_the_experiment_configs_derive_one_run_per_variant_and_seed(name):
    from tetrad.core.config import load_config

    cfg = load_config(CompareConfig, Path(__file__).parents[2] / "configs" / "ttrl" / name)
    assert cfg.seeds == [0, 1, 2, 3, 4] and cfg.variants == ["ttrl", "ttrl_guard", "frs_only", "mps_only", "rcsu_only"]
    runs = {(v, s): variant_config(cfg, v, s) for v in cfg.variants for s in cfg.seeds}
    assert len({r.name for r in runs.values()}) == 25 and cfg.results_dir == "docs/results/ttrl"
    guard = runs[("ttrl_guard", 3)]
    assert guard.seed == 3 and guard.guard.frs and guard.guard.mps and guard.guard.rcsu
    plain = runs[("ttrl", 3)]
    assert not (plain.guard.frs or plain.guard.mps or plain.guard.rcsu)
    # the variants of a seed differ only in the guard's rules and the name
    a, b = plain.model_dump(), guard.model_dump()
    assert {k for k in a if a[k] != b[k]} == {"name", "guard"}


def test_pretrain_train_knobs_train_on_another_distribution_than_the_test_set(tmp_path, monkeypatch):
    """The systematic regime's knob: training problems from `train_knobs`, the test set still held
    out and measured (its knobs unchanged)."""
    import tetrad.ttrl.pretrain as pre
    from tetrad.ttrl.pretrain import PretrainConfig
    from tetrad.ttrl.tasks import TaskConfig, load_tasks

    from .test_recipe import TINY

    seen = []
    real = pre.reasoning_gym_tasks
    monkeypatch.setattr(pre, "reasoning_gym_tasks", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    tasks = TaskConfig(size=8, seed=5, knobs={"min_terms": 2, "max_terms": 3, "min_digits": 1, "max_digits": 1})
    two = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}
    summary = pre.pretrain(PretrainConfig(root=str(tmp_path), model=TINY, tasks=tasks, train_size=200, steps=2,
                                          batch_size=8, eval_samples=2, train_knobs=two))
    assert seen == [two] and len(summary["per_problem_accuracy"]) == 8
    train = real("chain_sum", 200, tasks.seed + 1, two)
    assert all(p.count("+") + p.count("-") == 1 for p in train.prompts)  # 2 terms each
    test = load_tasks(tasks).prompts
    assert summary["train_problems"] == sum(p not in set(test) for p in train.prompts)  # the test set held out
    assert any(p.count("+") + p.count("-") == 2 for p in test)  # the test set keeps its 3-term problems


def test_degradation_timing_finds_the_first_wrong_visit_and_how_much_truth_was_left():
    import pandas as pd

    from tetrad.ttrl.compare import degradation_timing

    rows = []

    def add(pid, correct, true_share):
        rows.extend({"problem_id": pid, "visit": v + 1, "label_correct": c, "true_share": t}
                    for v, (c, t) in enumerate(zip(correct, true_share)))

    add("p1", [True, True, False, False], [0.6, 0.5, 0.2, 0.0])  # wrong at visit 3, truth 0.2 left
    add("p2", [False, True, False, False], [0.4, 0.5, 0.1, 0.0])  # wrong on its first visit
    add("p3", [True, True, True, True], [0.9, 0.9, 0.9, 0.9])  # degraded by the final vote only
    add("p4", [False, False, True, True], [0.0, 0.1, 0.6, 0.8])  # learned: not counted
    problems = pd.DataFrame({"problem_id": ["p1", "p2", "p3", "p4"],
                             "category": ["degraded", "degraded", "degraded", "learned"]})
    out = degradation_timing(pd.DataFrame(rows), problems, mps_min_share=0.125)
    assert out["degraded_first_wrong_visit"] == [3, 1] and out["degraded_first_wrong_median"] == 2.0
    assert out["degraded_wrong_on_first_visit"] == 0.5
    assert out["degraded_true_share_at_first_wrong"] == pytest.approx(0.3)  # (0.2 + 0.4) / 2
    assert out["degraded_truth_below_mps"] == 0.0
    assert degradation_timing(pd.DataFrame(rows), problems, mps_min_share=0.3)["degraded_truth_below_mps"] == 0.5
    none = degradation_timing(pd.DataFrame(rows), problems.assign(category="stable_right"), 0.125)
    assert none["degraded_first_wrong_visit"] == [] and np.isnan(none["degraded_wrong_on_first_visit"])
