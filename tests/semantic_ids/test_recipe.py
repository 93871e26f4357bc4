import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tetrad.cli import main
from tetrad.core.config import load_config
from tetrad.data.catalogue import make_catalogue
from tetrad.semantic_ids.train import SidConfig, run_eval, run_train

SMALL = ["data.source=long_tail", "data.items=2000", "data.dim=16", "data.top_clusters=8", "data.sub_clusters=8",
         "data.users=120", "quantizer.codebook_size=16", "quantizer.niter=5",
         "model.d_model=32", "model.layers=1", "model.heads=2", "model.d_kv=16", "model.d_ff=64",
         "train.batch_size=32", "train.eval_every=4", "train.checkpoint_every=4", "eval.beam=10",
         "eval.valid_users=20", "sasrec.enabled=false"]


def cfg(tmp_path, *extra):
    return load_config(SidConfig, None, [f"root={tmp_path}", *SMALL, *extra])


def cli(*args):
    with pytest.raises(SystemExit) as e:
        main(["sid", *args])
    return e.value.code


def test_tokenize_and_diagnose_write_codes_report_and_plots(tmp_path, capsys):
    assert cli("diagnose", f"root={tmp_path}", *SMALL, "name=d", "fix.kind=adaptive", "fix.k=2") == 0
    out = capsys.readouterr().out
    assert "Codes as quantized" in out and "entropy dip" in out
    run = tmp_path / "sid" / "d"
    raw, codes = np.load(run / "codes_raw.npy"), np.load(run / "codes.npy")
    assert raw.shape == (2000, 3) and (codes[:, 1] == -1).sum() > 0
    report = json.loads((run / "diagnostics.json").read_text())
    assert report["fixed"]["per_layer"][1]["codes_used"] == report["raw"]["per_layer"][1]["codes_used"] - 2
    for name in ("raw_code_frequency.png", "raw_layer_flow.png", "fixed_code_frequency.png"):
        assert (run / "plots" / name).stat().st_size > 1000
    assert cli("tokenize", f"root={tmp_path}", *SMALL, "name=t", "fix.kind=drop_layer2") == 0
    assert np.load(tmp_path / "sid" / "t" / "codes.npy").shape == (2000, 2)


def test_user_embedding_file_and_bad_input_exit_2(tmp_path, capsys):
    emb = make_catalogue(items=600, dim=8, top_clusters=4, sub_clusters=4, users=1).embeddings
    np.save(tmp_path / "e.npy", emb)
    common = [f"root={tmp_path}", "data.source=embeddings", "quantizer.codebook_size=16"]
    assert cli("tokenize", *common, f"data.path={tmp_path / 'e.npy'}", "name=ok") == 0
    capsys.readouterr()
    emb[5, 2] = np.inf
    np.save(tmp_path / "bad.npy", emb)
    assert cli("tokenize", *common, f"data.path={tmp_path / 'bad.npy'}", "name=bad") == 2
    assert capsys.readouterr().err.strip() == "tetrad: error: embeddings in bad.npy hold NaN or inf in 1 row"
    assert cli("tokenize", *common, f"data.path={tmp_path / 'e.npy'}", "quantizer.codebook_size=1024",
               "name=big") == 2
    assert "600 items are fewer than the codebook size 1024" in capsys.readouterr().err
    (tmp_path / "seq.txt").write_text("1 0 1 2 3\n2 4 5\n")
    assert cli("train", *common, f"data.path={tmp_path / 'e.npy'}", f"data.sequences={tmp_path / 'seq.txt'}",
               "name=short") == 2
    assert "user 2 has 2 interactions; leave-one-out needs at least 3" in capsys.readouterr().err
    (tmp_path / "seq.txt").write_text("1 0 1 2 3\n2 4 5 900\n")
    assert cli("train", *common, f"data.path={tmp_path / 'e.npy'}", f"data.sequences={tmp_path / 'seq.txt'}",
               "name=unknown") == 2
    assert "user 2 has unknown item id 900 (the catalogue has 600 items)" in capsys.readouterr().err
    assert cli("tokenize", *common, "data.path=missing.npy", "name=m") == 2
    assert "embedding file not found: missing.npy" in capsys.readouterr().err
    # new items through a saved quantizer: same codes for the same items, one line for a wrong dimension
    saved = tmp_path / "sid/ok/quantizer.pt"
    assert cli("tokenize", *common, f"data.path={tmp_path / 'e.npy'}", f"quantizer_file={saved}",
               "quantizer.codebook_size=999", "name=again") == 0
    np.testing.assert_array_equal(np.load(tmp_path / "sid/again/codes.npy"), np.load(tmp_path / "sid/ok/codes.npy"))
    np.save(tmp_path / "narrow.npy", emb[:, 3:7])  # (column 2 holds the inf)
    assert cli("tokenize", *common, f"data.path={tmp_path / 'narrow.npy'}", f"quantizer_file={saved}",
               "name=narrow") == 2
    assert "have dimension 4 but the quantizer was fitted on dimension 8" in capsys.readouterr().err
    # a codes file with codes outside the codebook (or removed positions, -1) is refused before any plot
    for bad in (16, -1):
        codes = np.load(tmp_path / "sid/ok/codes_raw.npy")
        codes[7, 1] = bad
        np.save(tmp_path / "codes.npy", codes)
        assert cli("diagnose", *common, f"data.path={tmp_path / 'e.npy'}", f"codes={tmp_path / 'codes.npy'}",
                   f"name=codes{bad}") == 2
        assert "holds codes outside the codebook: they must lie in [0, 16)" in capsys.readouterr().err


def losses(path):
    return {r["step"]: r["loss"] for r in map(json.loads, path.read_text().splitlines())}


def test_train_resume_continues_bit_for_bit_and_eval_reads_the_run(tmp_path):
    full = run_train(cfg(tmp_path, "name=full", "train.steps=8"))
    assert set(full["tiger"]) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10"}
    assert 0 <= full["tiger"]["ndcg@10"] <= full["tiger"]["recall@10"] <= 1
    # an interruption after the step-4 checkpoint: the copy loses the last checkpoint and the summary
    shutil.copytree(tmp_path / "sid/full", tmp_path / "sid/part")
    for stale in ("checkpoints/step_000000008.pt", "summary.json"):
        (tmp_path / "sid/part" / stale).unlink()
    resumed = run_train(cfg(tmp_path, "name=part", "train.steps=8", "resume=true"))
    a, b = losses(tmp_path / "sid/full/metrics.jsonl"), losses(tmp_path / "sid/part/metrics.jsonl")
    assert sorted(b) == list(range(1, 9))
    assert all(a[s] == b[s] for s in range(1, 9))
    assert resumed["tiger"] == full["tiger"]
    again = run_eval(cfg(tmp_path, "name=full", "train.steps=8"))
    assert again["step"] == full["best_step"] and again["recall@10"] == full["tiger"]["recall@10"]
    assert full["steps"] == 8 and not full["stopped_early"] and full["train_seconds"] > 0
    # killed right after its codes were written: resumed, it writes the diagnostics it never wrote
    shutil.copytree(tmp_path / "sid/full", tmp_path / "sid/codes_only",
                    ignore=shutil.ignore_patterns("checkpoints", "plots", "diagnostics.*", "summary.json",
                                                  "metrics.jsonl", "best.pt"))
    run_train(cfg(tmp_path, "name=codes_only", "train.steps=8", "resume=true"))
    for name in ("diagnostics.json", "diagnostics.md", "plots/raw_code_frequency.png"):
        assert (tmp_path / "sid/codes_only" / name).read_bytes() == (tmp_path / "sid/full" / name).read_bytes()


def test_early_stopping_keeps_the_best_weights_and_reports_steps(tmp_path, monkeypatch):
    """Validation Recall@10 rises, then falls for `patience` validations: training stops there and the
    test is scored with the weights of the best validation."""
    import tetrad.semantic_ids.train as train

    valid = iter([0.1, 0.3, 0.2, 0.25, 0.9, 0.9])  # best at the 2nd validation (step 4); patience 2 stops at step 8
    seen = []

    def fake_evaluate(model, sids, histories, targets, c, device):
        seen.append((len(targets), next(iter(model.parameters())).detach().clone()))
        value = next(valid) if len(targets) == 20 else 0.5  # 20 validation users; the test has all 120
        return {"recall@5": value, "ndcg@5": value, "recall@10": value, "ndcg@10": value}

    monkeypatch.setattr(train, "evaluate_retriever", fake_evaluate)
    out = run_train(cfg(tmp_path, "name=es", "train.steps=40", "train.eval_every=2", "train.patience=2"))
    assert (out["steps"], out["best_step"], out["best_valid"], out["stopped_early"]) == (8, 4, 0.3, True)
    assert [n for n, _ in seen] == [20, 20, 20, 20, 120]
    torch.testing.assert_close(seen[-1][1], seen[1][1])  # the test saw the step-4 weights
    assert not torch.equal(seen[-1][1], seen[3][1])
    steps = [json.loads(line)["step"] for line in (tmp_path / "sid/es/metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 8
    # resuming a run that stopped early does not train on
    again = run_train(cfg(tmp_path, "name=es", "train.steps=40", "train.eval_every=2", "train.patience=2",
                          "resume=true"))
    assert (again["steps"], again["best_step"]) == (8, 4)


def test_sasrec_baseline_in_the_same_summary(tmp_path):
    s = run_train(cfg(tmp_path, "name=s", "train.steps=2", "sasrec.enabled=true", "sasrec.steps=30",
                      "sasrec.d_model=16"))
    assert set(s["sasrec"]) == {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "steps", "best_step", "train_seconds"}
    assert s["sasrec"]["steps"] == 30 and s["sasrec"]["best_step"] <= 30
    assert (tmp_path / "sid/s/sasrec").is_dir()


def test_ddp_under_torchrun_matches_one_process(tmp_path):
    args = [f"root={tmp_path}", *SMALL, "train.steps=4", "model.dropout=0.0", "train.eval_every=100"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "tetrad", "sid", "train", *args, "name=one"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "tetrad",
                          "sid", "train", *args, "name=two"], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a = torch.load(tmp_path / "sid/one/checkpoints/step_000000004.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "sid/two/checkpoints/step_000000004.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["movielens", "long_tail", "uniform", "tiger_amazon", "fine_long_tail", "fine_uniform"])
def test_shipped_configs_load(name):
    c = load_config(SidConfig, Path(__file__).parents[2] / "configs" / "sid" / f"{name}.yaml")
    assert c.name and c.eval.beam >= max(c.eval.ks)
    if name == "tiger_amazon":  # TIGER's published setting
        assert (c.quantizer.layers, c.quantizer.codebook_size, c.model.layers, c.model.heads, c.model.d_kv,
                c.model.d_ff) == (3, 256, 4, 6, 64, 1024)
    if name.startswith("fine_"):  # sized to show fine codes: 50k items, 5k users, 3 x 256, trained to convergence
        assert (c.data.items, c.data.users, c.quantizer.codebook_size, c.data.item_zipf > 0, c.train.patience > 0) == \
            (50_000, 5000, 256, True, True)


def test_study_config_loads():
    from tetrad.semantic_ids.study import StudyConfig, expand_methods

    c = load_config(StudyConfig, Path(__file__).parents[2] / "configs" / "sid" / "study_fine.yaml")
    assert "adaptive_k8" in expand_methods(c) and c.quantizer.codebook_size == 256 and c.data.items == 50_000


def test_commands_take_config_flag_then_overrides(tmp_path, capsys):
    from tetrad.cli import build_parser

    args = build_parser().parse_args(["sid", "train", "--config", "configs/sid/movielens.yaml", "seed=3"])
    assert (args.config, args.overrides) == ("configs/sid/movielens.yaml", ["seed=3"])
    assert cli("tokenize", "--config", str(tmp_path / "missing.yaml")) == 2
    assert "config file not found" in capsys.readouterr().err
