import json
import shutil
from pathlib import Path

import pytest

from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig
from tetrad.ranking.compare import DEFAULT_ABLATIONS, CompareConfig, _check, compare, paired_difference, render
from tetrad.ranking.demo import demo_part

REPO = Path(__file__).resolve().parents[2]


def test_compare_writes_tables_with_paired_intervals_from_committed_summaries(tmp_path, small_log):
    log, _, _ = small_log
    cfg = CompareConfig(root=str(tmp_path / "runs"), name="c", seeds=[0, 1], models=["mtmixatt", "dnn"],
                        ablations={"norm=prenorm": {"norm": "prenorm"}},
                        datasets={"syn": {"source": "dir", "path": str(log)}}, model={"hash_buckets": 2000},
                        train={"batch_size": 128, "steps": 4, "checkpoint_every": 100, "bootstrap": 50},
                        results_dir=str(tmp_path / "results"), out=str(tmp_path / "docs" / "ranking.md"))
    out = compare(cfg)
    text = out.read_text()
    assert "| mtmixatt |" in text and "| dnn |" in text and "oracle (true probabilities)" in text
    assert "additive oracle" in text and "| norm=prenorm |" in text
    assert (tmp_path / "docs" / "ranking_syn.png").is_file()
    runs = [json.loads((tmp_path / f"results/c-syn-{v}-s{s}.json").read_text())["summary"]
            for v in ("mtmixatt", "dnn") for s in (0, 1)]
    mean = (runs[0]["ctr_auc"] + runs[1]["ctr_auc"]) / 2
    assert f"{mean:.4f} ± " in text  # the table holds the mean over seeds of the runs' own summaries
    diff = paired_difference(runs[2:], runs[:2], "ctr_auc")
    assert diff[1] <= diff[0] <= diff[2] and f"{diff[0]:+.4f}" in text  # dnn − MTmixAtt, with its interval
    shutil.rmtree(tmp_path / "runs")  # another session: only the committed summaries are left
    assert out.read_text() == compare(cfg).read_text() and not (tmp_path / "runs").exists()
    with pytest.raises(UserError, match="other settings"):
        compare(cfg.model_copy(update={"train": {**cfg.train, "steps": 5}}))


def test_learning_rate_is_chosen_per_model_on_the_validation_slice(tmp_path, small_log):
    log, _, _ = small_log
    cfg = CompareConfig(root=str(tmp_path), name="lr", seeds=[0], models=["mtmixatt", "dnn"], ablations={},
                        datasets={"syn": {"source": "dir", "path": str(log)}}, model={"hash_buckets": 2000},
                        train={"batch_size": 128, "steps": 6, "valid_rows": 1_024, "warmup_fraction": 0.2},
                        lr_grid=[1e-4, 1e-2], lr_trial_steps=3, results_dir=str(tmp_path / "results"),
                        out=str(tmp_path / "r.md"))
    text = compare(cfg).read_text()
    for m in ("mtmixatt", "dnn"):
        trials = [json.loads((tmp_path / f"results/lr-syn-{m}-lr{lr:g}-s0.json").read_text())["summary"]
                  for lr in cfg.lr_grid]
        assert all("ctr_auc" not in t and t["steps"] == 3 for t in trials)  # trials never see the eval split
        best = max(trials, key=lambda t: t["valid/ctr_auc"] + t["valid/ctcvr_auc"])["lr"]
        final = json.loads((tmp_path / f"results/lr-syn-{m}-s0.json").read_text())["summary"]
        assert final["lr"] == best and final["steps"] == 6  # same budget for every model
    assert "Learning-rate trials" in text
    with pytest.raises(UserError, match="valid_rows"):
        compare(cfg.model_copy(update={"train": {"batch_size": 128, "steps": 6}}))


def test_verdict_says_plainly_when_mtmixatt_does_not_win():
    def runs(v):
        return [{"train_seconds": 1.0, "eval_rows": 10, "dataset": "d", **{
            k: v for k in ("ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc", "ctr_logloss", "ctcvr_logloss")}}] * 2

    text = render(CompareConfig(seeds=[0, 1]), {"d": {"mtmixatt": runs(0.6), "dnn": runs(0.7)}}, {"d": "p.png"})
    assert "MTmixAtt does **not** beat every baseline: dnn" in text


def test_demo_part_trains_mtmixatt_and_rankmixer(tmp_path):
    cfg = DemoConfig(root=str(tmp_path), name="d")
    section = demo_part(RunDir("demo", cfg, tensorboard=False), cfg)
    n = section.numbers
    assert n["mtmixatt_ctr_auc"] > 0.5 and n["rankmixer_ctr_auc"] > 0.5
    assert n["oracle_ctr_auc"] >= max(n["mtmixatt_ctr_auc"], n["rankmixer_ctr_auc"]) - 0.02
    assert abs(n["mtmixatt_dense_params"] - n["rankmixer_dense_params"]) / n["mtmixatt_dense_params"] < 0.1


def test_text_after_the_marker_survives_a_rerun(tmp_path, small_log):
    log, _, _ = small_log
    out = tmp_path / "r.md"
    out.write_text("<!-- ranking-compare -->\nold table\n<!-- /ranking-compare -->\n## Speed\nkept\n")
    cfg = CompareConfig(root=str(tmp_path), seeds=[0], models=["dnn"], ablations={},
                        datasets={"syn": {"source": "dir", "path": str(log)}}, model={"hash_buckets": 2000},
                        train={"batch_size": 128, "steps": 2}, results_dir=str(tmp_path / "results"), out=str(out))
    text = compare(cfg).read_text()
    assert "old table" not in text and text.endswith("## Speed\nkept\n") and "| dnn |" in text


@pytest.mark.parametrize("name", ["compare.yaml", "compare_5m.yaml"])
def test_shipped_compare_configs_check_every_run_and_ablate_every_switch(name):
    cfg = load_config(CompareConfig, REPO / "configs" / "ranking" / name)
    _check(cfg)  # every run's config (models, ablations, learning-rate trials) validates before any run starts
    assert set(cfg.ablations) == set(DEFAULT_ABLATIONS) and cfg.lr_grid and cfg.train["bootstrap"] > 0
