import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tetrad.core.checkpoint import Checkpointer, load_checkpoint_file
from tetrad.core.config import RunConfig
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write
from tetrad.core.rundir import RunDir

from .toy_recipe import Crash, ToyConfig, train

TOY = Path(__file__).with_name("toy_recipe.py")


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def failing(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(UserError, match="cannot write .*f.bin: disk full"):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]  # no temporary left behind


def test_checkpoint_round_trip_and_keep(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ck = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3):
        ck.save(step, model=model, optimizer=opt, state={"visits": torch.arange(step), "label": "x"})
    assert ck.steps() == [2, 3]
    after_save = torch.rand(3)  # the RNG draw a resumed run must reproduce
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.1)
    out = ck.load(model=fresh, optimizer=fresh_opt)
    assert out["step"] == 3 and out["state"]["label"] == "x" and out["state"]["visits"].tolist() == [0, 1, 2]
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_opt.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(torch.rand(3), after_save)


def test_corrupt_or_missing_checkpoint_is_a_user_error(tmp_path):
    bad = tmp_path / "step_000000001.pt"
    bad.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(UserError, match="corrupt"):
        load_checkpoint_file(bad)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint_file(tmp_path / "nope.pt")
    with pytest.raises(UserError, match="no checkpoint"):
        Checkpointer(tmp_path / "empty").load()


def test_interrupted_then_resumed_run_equals_uninterrupted(tmp_path):
    whole = train(ToyConfig(root=str(tmp_path), name="whole"))
    with pytest.raises(Crash):
        train(ToyConfig(root=str(tmp_path), name="cut"), crash_after=13)  # last checkpoint: step 10
    resumed = train(ToyConfig(root=str(tmp_path), name="cut", resume=True))
    assert resumed["params"] == whole["params"]  # bit for bit
    logs = [json.loads(line) for line in (tmp_path / "toy/cut/metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(line) for line in (tmp_path / "toy/whole/metrics.jsonl").read_text().splitlines()]
    assert logs == ref  # steps 11-13 of the interrupted attempt were rewound, not duplicated


def test_starting_over_an_existing_run_needs_resume(tmp_path):
    train(ToyConfig(root=str(tmp_path), name="r", steps=5))
    with pytest.raises(UserError, match="resume=true"):
        RunDir("toy", RunConfig(root=str(tmp_path), name="r"))


def test_two_process_torchrun_matches_one_process(tmp_path):
    one = train(ToyConfig(root=str(tmp_path), name="one"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(TOY),
           f"root={tmp_path}", "name=two"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TOY.parents[2])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "toy/two/summary.json").read_text())
    assert two["params"] == pytest.approx(one["params"], abs=1e-5)
    assert two["full_loss"] == pytest.approx(one["full_loss"], rel=1e-4)
    assert len((tmp_path / "toy/two/metrics.jsonl").read_text().splitlines()) == 20  # rank 0 alone logs


def test_a_half_written_last_metrics_line_is_dropped_on_resume(tmp_path):
    run = RunDir("sys", RunConfig(root=str(tmp_path), name="r"))
    run.log(1, {"loss": 1.0})
    run.checkpointer.save(1)
    run.log(2, {"loss": 0.5})
    run.close()
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 3, "lo')  # killed in the middle of a write
    again = RunDir("sys", RunConfig(root=str(tmp_path), name="r", resume=True))
    assert again.restore(True)["step"] == 1
    assert again.read_metrics() == [{"step": 1, "loss": 1.0}]


def test_a_step_logged_after_its_checkpoint_is_not_logged_twice_on_resume(tmp_path):
    run = RunDir("sys", RunConfig(root=str(tmp_path), name="r"))
    run.log(4, {"loss": 1.0})
    run.checkpointer.save(4)  # the last step's checkpoint, then its evaluation, then a crash
    run.log(4, {"auc": 0.7})
    run.close()
    again = RunDir("sys", RunConfig(root=str(tmp_path), name="r", resume=True))
    assert again.restore(True)["step"] == 4
    again.log(4, {"auc": 0.7})  # the resumed run evaluates again
    assert again.read_metrics() == [{"step": 4, "loss": 1.0}, {"step": 4, "auc": 0.7}]


def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before_with_a_warning(tmp_path, capsys):
    model = torch.nn.Linear(2, 1)
    run = RunDir("sys", RunConfig(root=str(tmp_path), name="r"))
    run.checkpointer.save(1, model=model)
    at_step_1 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    run.checkpointer.save(2, model=model)
    run.close()
    run.checkpointer.path_for(2).write_bytes(b"half a checkpoint")
    fresh = torch.nn.Linear(2, 1)
    again = RunDir("sys", RunConfig(root=str(tmp_path), name="r", resume=True))
    assert again.restore(True, model=fresh)["step"] == 1
    assert torch.equal(fresh.weight, at_step_1)
    err = capsys.readouterr().err
    assert err.startswith("tetrad: warning: checkpoint") and "step_000000002.pt is corrupt" in err
    assert again.checkpointer.steps() == [1]  # the abandoned later one no longer crowds out intact ones


def test_stale_temporaries_of_interrupted_writes_are_removed(tmp_path):
    run = RunDir("sys", RunConfig(root=str(tmp_path), name="r"))
    run.checkpointer.save(1)
    run.close()
    stale = [run.checkpointer.directory / ".step_000000002.pt.k3j4.tmp", run.path / ".summary.json.x1y2.tmp"]
    for path in stale:
        path.write_bytes(b"killed mid-write")
    RunDir("sys", RunConfig(root=str(tmp_path), name="r", resume=True))
    assert not any(path.exists() for path in stale)
    assert run.checkpointer.steps() == [1]
