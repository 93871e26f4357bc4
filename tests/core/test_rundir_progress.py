import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tetrad.core.config import Config, RunConfig, load_config
from tetrad.core.errors import UserError
from tetrad.core.progress import progress, progress_enabled
from tetrad.core.rundir import RunDir


def test_run_directory_layout_and_rewind(tmp_path):
    run = RunDir("sys", RunConfig(root=str(tmp_path), name="a", seed=3))
    for step in range(1, 6):
        run.log(step, {"loss": 1.0 / step, "note": "text"})
    run.write_summary({"best": 0.2})
    run.close()
    assert "seed: 3" in (run.path / "config.yaml").read_text()
    assert [m["step"] for m in run.read_metrics()] == [1, 2, 3, 4, 5]
    assert json.loads((run.path / "summary.json").read_text()) == {"best": 0.2}
    assert list(run.path.glob("events.out.tfevents.*"))
    assert run.plots.is_dir()
    with pytest.raises(UserError, match="already holds a run"):
        RunDir("sys", RunConfig(root=str(tmp_path), name="a"))
    summary_only = RunDir("sys", RunConfig(root=str(tmp_path), name="b"))
    summary_only.write_summary({"codes": 3})
    with pytest.raises(UserError, match="already holds a run"):
        RunDir("sys", RunConfig(root=str(tmp_path), name="b"))
    resumed = RunDir("sys", RunConfig(root=str(tmp_path), name="a", seed=3, resume=True))
    resumed.rewind(3)
    assert [m["step"] for m in resumed.read_metrics()] == [1, 2, 3]


def test_progress_is_quiet_off_a_terminal():
    assert not progress_enabled()  # pytest captures stderr and conftest sets CI
    assert list(progress(range(3))) == [0, 1, 2]


def test_restore_before_the_first_checkpoint_starts_over_without_duplicate_metrics(tmp_path):
    first = RunDir("sys", RunConfig(root=str(tmp_path), name="c"))
    first.log(0, {"eval": 0.5})
    first.log(1, {"loss": 1.0})
    first.close()
    again = RunDir("sys", RunConfig(root=str(tmp_path), name="c", resume=True))
    assert again.restore(True) == {"step": 0, "state": {}}
    assert again.read_metrics() == []
    assert again.restore(False)["step"] == 0


def test_finished_summary_reuses_only_a_run_of_the_same_settings(tmp_path):
    from tetrad.core.rundir import finished_summary

    cfg = RunConfig(root=str(tmp_path), name="d", seed=1)
    assert finished_summary("sys", cfg) is None
    RunDir("sys", cfg).write_summary({"auc": 0.7})
    assert finished_summary("sys", cfg.model_copy(update={"resume": True})) == {"auc": 0.7}
    with pytest.raises(UserError, match="finished with other settings"):
        finished_summary("sys", cfg.model_copy(update={"seed": 2}))


def test_marked_blocks_are_rewritten_in_place_and_the_rest_is_kept(tmp_path):
    from tetrad.core.io import write_marked_block

    doc = tmp_path / "r.md"
    write_marked_block(doc, "a", "first A", title="# Results")
    write_marked_block(doc, "b", "B")
    doc.write_text(doc.read_text() + "hand-written footer\n")
    write_marked_block(doc, "a", "second A")
    text = doc.read_text()
    assert text.startswith("# Results\n") and text.endswith("hand-written footer\n")
    assert "second A" in text and "first A" not in text and text.index("second A") < text.index("B\n")
    assert text.count("<!-- a -->") == 1 and text.count("<!-- /b -->") == 1


def test_run_names_stay_inside_the_system_folder(tmp_path):
    for name in ("../../escape", "/tmp", "a/b", ".."):
        with pytest.raises(UserError, match="plain folder name"):
            RunDir("sys", RunConfig(root=str(tmp_path / "runs")).model_copy(update={"name": name}))
    with pytest.raises(UserError, match="at most 128 bytes .got 129"):
        RunDir("sys", RunConfig(root=str(tmp_path / "runs")).model_copy(update={"name": "x" * 129}))
    with pytest.raises(UserError, match="config key 'name': .*at most 128 bytes"):
        load_config(RunConfig, None, ["name=" + "x" * 5000])
    assert list(tmp_path.iterdir()) == []


HOLD = """
import sys
from tetrad.core.config import RunConfig
from tetrad.core.errors import UserError
from tetrad.core.rundir import RunDir
try:
    RunDir("sys", RunConfig(root=sys.argv[1], name="busy", resume=True))
except UserError as e:
    print(e)
else:
    print("started")
"""


def test_a_second_process_on_the_same_run_fails_with_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", HOLD, str(tmp_path)], capture_output=True, text=True,
                              env=env, timeout=120).stdout.strip()

    run = RunDir("sys", RunConfig(root=str(tmp_path), name="busy"))
    assert other_process() == f"run {run.path} is in use by another process: wait for it to end, or choose another name"
    run.close()  # (or the process ends, however it ends)
    assert other_process() == "started"


def test_output_locations_that_cannot_be_made_are_one_line_naming_the_path(tmp_path):
    from tetrad.core.io import atomic_write_text

    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(UserError, match=f"cannot create run directory {tmp_path}/file/sys/r: "):
        RunDir("sys", RunConfig(root=str(tmp_path / "file"), name="r"))
    with pytest.raises(UserError, match="cannot create run directory .*/x{300}/sys/r: File name too long"):
        RunDir("sys", RunConfig(root=str(tmp_path / ("x" * 300)), name="r"))
    with pytest.raises(UserError, match=f"cannot write {tmp_path}/file/summary.json: "):
        atomic_write_text(tmp_path / "file" / "summary.json", "{}")


class Section(Config):
    width: int = 8


class Tuned(RunConfig):
    lr: float = 0.1
    model: Section = Section()


def test_resume_with_other_settings_is_refused_naming_the_keys(tmp_path):
    RunDir("sys", Tuned(root=str(tmp_path), name="t")).close()
    with pytest.raises(UserError, match=r"was made with other settings \(lr, model.width\)"):
        RunDir("sys", Tuned(root=str(tmp_path), name="t", lr=0.2, model=Section(width=4), resume=True))
    assert "lr: 0.1" in (tmp_path / "sys/t/config.yaml").read_text()  # the saved settings are kept
    RunDir("sys", Tuned(root=str(tmp_path), name="t", resume=True)).close()  # the same settings resume


def test_committed_summary_is_reused_across_sessions_and_refused_under_other_settings(tmp_path):
    from tetrad.core.config import RunConfig
    from tetrad.core.rundir import committed_summary

    calls = []

    def run(cfg):
        calls.append(cfg.name)
        return {"auc": 0.7 + cfg.seed}

    cfg = RunConfig(name="a", seed=0, root=str(tmp_path / "runs"))
    assert committed_summary("sys", cfg, tmp_path / "results", run) == {"auc": 0.7}
    # another session: no run directory, another root; the committed file alone answers
    moved = cfg.model_copy(update={"root": str(tmp_path / "elsewhere"), "resume": True})
    assert committed_summary("sys", moved, tmp_path / "results", run) == {"auc": 0.7} and calls == ["a"]
    with pytest.raises(UserError, match="other settings \\(seed\\)"):
        committed_summary("sys", cfg.model_copy(update={"seed": 1}), tmp_path / "results", run)


def test_committed_summary_resumes_an_interrupted_run_instead_of_refusing_its_directory(tmp_path):
    from tetrad.core.rundir import committed_summary

    cfg = RunConfig(name="a", seed=0, root=str(tmp_path / "runs"))
    interrupted = RunDir("sys", cfg)
    interrupted.log(1, {"loss": 1.0})  # stopped before its summary
    interrupted.close()
    seen = []

    def run(c):
        seen.append(c.resume)
        done = RunDir("sys", c)  # refuses the directory unless resuming
        done.write_summary({"auc": 0.7})
        done.close()
        return {"auc": 0.7}

    assert committed_summary("sys", cfg, tmp_path / "results", run) == {"auc": 0.7} and seen == [True]
    fresh = cfg.model_copy(update={"name": "b"})
    assert committed_summary("sys", fresh, tmp_path / "results", run) == {"auc": 0.7} and seen == [True, False]


def test_a_committed_file_from_before_a_setting_existed_matches_while_the_setting_keeps_its_default(tmp_path):
    import json

    from tetrad.core.config import RunConfig
    from tetrad.core.rundir import committed_summary

    class Later(RunConfig):  # a setting added after the file below was written
        budget: str = "shared"

    path = tmp_path / "results" / "a.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"settings": {"seed": 0}, "summary": {"auc": 0.7}}))
    never = lambda cfg: pytest.fail("the committed file should answer")  # noqa: E731
    assert committed_summary("sys", Later(name="a", seed=0), tmp_path / "results", never) == {"auc": 0.7}
    with pytest.raises(UserError, match="other settings \\(budget\\)"):
        committed_summary("sys", Later(name="a", seed=0, budget="extra"), tmp_path / "results", never)
    path.write_text(json.dumps({"settings": {"seed": 0, "retired": 1}, "summary": {"auc": 0.7}}))
    with pytest.raises(UserError, match="other settings \\(retired\\)"):
        committed_summary("sys", Later(name="a", seed=0), tmp_path / "results", never)
