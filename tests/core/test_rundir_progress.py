import json

import pytest

from tetrad.core.config import RunConfig
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
    resumed = RunDir("sys", RunConfig(root=str(tmp_path), name="a", resume=True))
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
