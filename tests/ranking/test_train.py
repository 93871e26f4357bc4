import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as pds
import pytest
import torch

from tetrad.core.checkpoint import load_checkpoint_file
from tetrad.core.errors import UserError
from tetrad.ranking.data import iter_batches
from tetrad.ranking.export import export_onnx, load_trained
from tetrad.ranking.heads import probabilities
from tetrad.ranking.train import DataConfig, TrainConfig, _stream, prepare_dataset, train, warmup

REPO = Path(__file__).resolve().parents[2]


def cfg(tmp_path, log, **over) -> TrainConfig:
    base = {"root": str(tmp_path), "name": "r", "data": {"source": "dir", "path": str(log)},
            "model": {"hash_buckets": 2_000}, "batch_size": 96, "steps": 12, "log_every": 4,
            "checkpoint_every": 4, "lr": 3e-3}
    for k, v in over.items():
        base[k] = {**base[k], **v} if isinstance(v, dict) else v
    return TrainConfig.model_validate(base)


def final_params(run_dir: Path) -> torch.Tensor:
    ck = sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1]
    return torch.cat([v.flatten().float() for v in load_checkpoint_file(ck)["model"].values()])


def test_train_reports_metrics_per_task_scenario_and_the_oracle(tmp_path, small_log):
    log, schema, _ = small_log
    s = train(cfg(tmp_path, log, steps=40))
    for task in ("ctr", "ctcvr"):
        for m in ("auc", "gauc", "logloss"):
            assert np.isfinite(s[f"{task}_{m}"]) and np.isfinite(s[f"oracle/{task}_{m}"])
            for name in schema.scenarios:
                assert f"{task}_{m}/{name}" in s
    assert 0.5 < s["ctr_auc"] <= s["oracle/ctr_auc"] + 0.02  # it learned, and cannot beat the truth by much
    assert s["eval_rows"] == 1_200 and s["dense_params"] > 0
    summary = json.loads((tmp_path / "ranking/r/summary.json").read_text())
    assert summary["ctr_auc"] == s["ctr_auc"]


def test_resumed_run_equals_uninterrupted_run(tmp_path, small_log):
    log, _, _ = small_log
    train(cfg(tmp_path, log, name="whole"))
    # an interruption after the step-8 checkpoint: the copy loses the last checkpoint and the summary
    shutil.copytree(tmp_path / "ranking/whole", tmp_path / "ranking/cut")
    for stale in ("checkpoints/step_000000012.pt", "summary.json"):
        (tmp_path / "ranking/cut" / stale).unlink()
    train(cfg(tmp_path, log, name="cut", resume=True))
    assert torch.equal(final_params(tmp_path / "ranking/whole"), final_params(tmp_path / "ranking/cut"))
    metrics = [(tmp_path / f"ranking/{name}/metrics.jsonl").read_text().splitlines() for name in ("whole", "cut")]
    assert [json.loads(line)["step"] for line in metrics[1]] == [4, 8, 12, 12]  # the evaluation once
    assert [json.loads(line).keys() for line in metrics[0]] == [json.loads(line).keys() for line in metrics[1]]
    with pytest.raises(UserError, match="resume=true"):
        train(cfg(tmp_path, log, name="whole"))


# MTmixAtt; a baseline with its own routing (ReLU-gated MoE, dense in training, with an L1 term in
# the loss); a multi-task reference (one representation per task)
@pytest.mark.parametrize("model", ["mtmixatt", pytest.param("rankmixer_moe", marks=pytest.mark.slow),
                                   pytest.param("mmoe", marks=pytest.mark.slow)])
def test_two_processes_match_one_at_the_same_global_batch(tmp_path, small_log, model):
    log, _, _ = small_log
    train(cfg(tmp_path, log, name="one", steps=6, lr=1e-3, model={"name": model}))
    overrides = [f"root={tmp_path}", "name=two", "data.source=dir", f"data.path={log}", "model.hash_buckets=2000",
                 f"model.name={model}", "batch_size=96", "steps=6", "checkpoint_every=4", "lr=0.001"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "tetrad.ranking.train", *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = final_params(tmp_path / "ranking/one"), final_params(tmp_path / "ranking/two")
    assert torch.allclose(one, two, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("model", ["mtmixatt", "rankmixer"])  # rankmixer: its size was searched at training
def test_onnx_export_predicts_what_pytorch_predicts(tmp_path, small_log, model):
    log, _, features = small_log
    train(cfg(tmp_path, log, name="exp", steps=4, model={"name": model}))
    model, feats = load_trained(tmp_path / "ranking/exp")
    path = export_onnx(model, feats, tmp_path / "m.onnx")
    batch = next(iter_batches(log / "eval", features, 37))  # a batch size the export never saw
    with torch.no_grad():
        want = [t.numpy() for t in probabilities(*model(*batch.inputs()))]
    cat, num, mh, scen = batch.inputs()
    feed = {"categorical": cat.numpy(), "numeric": num.numpy(), "scenario": scen.numpy(),
            **{f"multihot_{f.name}": t.numpy() for f, t in zip(features.multihot, mh)}}
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["p_ctr", "p_ctcvr"], feed)
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_config_mistakes_are_user_errors(tmp_path, small_log):
    log, _, _ = small_log
    with pytest.raises(UserError, match="unknown feature"):
        train(cfg(tmp_path, log, data={"features": ["user_id", "shoe_size"]}))
    with pytest.raises(UserError, match="larger than"):
        train(cfg(tmp_path, log, name="big", batch_size=100_000))
    with pytest.raises(UserError, match="schema.json"):
        train(cfg(tmp_path, log, name="x", data={"path": str(tmp_path / "none")}))
    generated = {"source": "synthetic", "path": str(tmp_path / "syn"), "synthetic": {"rows": 2_000, "users": 50,
                                                                                    "items": 100}}
    prepare_dataset(DataConfig.model_validate(generated))
    with pytest.raises(UserError, match=r"other settings \(rows\)"):  # a stale log is never trained on silently
        prepare_dataset(DataConfig.model_validate({**generated, "synthetic": {**generated["synthetic"], "rows": 3_000}}))


def test_validation_slice_is_held_out_and_learning_rate_warms_up(tmp_path, small_log):
    log, schema, features = small_log
    fit_rows = schema.extra["train_rows"] - 960
    per_epoch = fit_rows // 96
    batches = list(itertools.islice(_stream(log / "train", features, 96, 0, per_epoch), per_epoch + 1))
    assert torch.equal(batches[per_epoch].categorical, batches[0].categorical)  # a new epoch before the slice
    tail = pds.dataset(str(log / "train")).to_table().slice(fit_rows).to_pandas()
    held = next(iter_batches(log / "train", features, 960, skip_rows=fit_rows))
    assert held.user.tolist() == tail["user_id"].tolist()
    factors = [warmup(100, 0.1)(i) for i in range(12)]
    assert factors[0] == 0.1 and factors[9] == factors[11] == 1.0 and factors == sorted(factors)
    s = train(cfg(tmp_path, log, name="v", steps=10, valid_rows=960, warmup_fraction=0.5, bootstrap=20))
    assert s["valid/eval_rows"] == 960 and np.isfinite(s["valid/ctr_auc"]) and s["eval_rows"] == 1_200
    assert len(s["bootstrap/ctr_auc"]) == 20 and min(s["bootstrap/ctr_gauc"]) < s["ctr_gauc"] < max(
        s["bootstrap/ctr_gauc"])
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "ranking/v/metrics.jsonl").read_text().splitlines()
           if "lr" in json.loads(line)]
    assert lrs[0] < lrs[-1] == 3e-3  # logged every 4 steps: warming up at step 4, full from step 5
    trial = train(cfg(tmp_path, log, name="trial", steps=4, valid_rows=960, final_eval=False))
    assert "valid/ctr_auc" in trial and "ctr_auc" not in trial  # a learning-rate trial never sees the eval split
