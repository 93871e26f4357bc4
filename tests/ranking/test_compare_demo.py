import json

from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig
from tetrad.ranking.compare import CompareConfig, compare, render
from tetrad.ranking.demo import demo_part


def test_compare_writes_mean_std_table_oracle_ablations_and_plot(tmp_path, small_log):
    log, _, _ = small_log
    cfg = CompareConfig(root=str(tmp_path), name="c", seeds=[0, 1], models=["mtmixatt", "dnn"],
                        ablations={"norm=prenorm": {"norm": "prenorm"}},
                        datasets={"syn": {"source": "dir", "path": str(log)}}, model={"hash_buckets": 2000},
                        train={"batch_size": 128, "steps": 4, "checkpoint_every": 100},
                        out=str(tmp_path / "docs" / "ranking.md"))
    out = compare(cfg)
    text = out.read_text()
    assert "| mtmixatt |" in text and "| dnn |" in text and "oracle (true probabilities)" in text
    assert "| norm=prenorm |" in text and (tmp_path / "docs" / "ranking_syn.png").is_file()
    runs = [json.loads((tmp_path / f"ranking/c-syn-{v}-s{s}/summary.json").read_text())
            for v in ("mtmixatt", "dnn") for s in (0, 1)]
    mean = (runs[0]["ctr_auc"] + runs[1]["ctr_auc"]) / 2
    assert f"{mean:.4f} ± " in text  # the table holds the mean over seeds of the runs' own summaries
    assert out.read_text() == compare(cfg).read_text()  # finished runs are reused, not retrained


def test_verdict_says_plainly_when_mtmixatt_does_not_win():
    def runs(v):
        return [{"dense_params": 1, "train_samples_per_s": 1.0, "dataset": "d", **{
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
                        train={"batch_size": 128, "steps": 2}, out=str(out))
    text = compare(cfg).read_text()
    assert "old table" not in text and text.endswith("## Speed\nkept\n") and "| dnn |" in text
