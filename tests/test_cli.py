import json
import subprocess
import sys

import pytest

from tetrad.cli import GROUPS


def tetrad(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tetrad", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("group", [[], ["demo"], *[[g] for g in GROUPS]])
def test_help_works(group):
    proc = tetrad(*group, "--help")
    assert proc.returncode == 0 and "usage: tetrad" in proc.stdout


def test_top_level_lists_every_group():
    out = tetrad("--help").stdout
    for group in ["demo", *GROUPS]:
        assert group in out


def test_bad_override_exits_2_with_one_line():
    proc = tetrad("demo", "sed=1")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "tetrad: error: unknown config key 'sed'"


@pytest.mark.parametrize("error", [MemoryError("Unable to allocate 1.07 PiB for an array"),
                                   RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1")])
def test_an_allocation_that_fails_is_one_line_and_exit_2(error, monkeypatch, capsys):
    from tetrad import cli

    def handler(args):
        raise error

    monkeypatch.setattr(cli, "_run_demo", handler)
    with pytest.raises(SystemExit) as exit:
        cli.main(["demo"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tetrad: error: out of memory (is a size setting too large")
    assert str(error) in err


def test_other_runtime_errors_are_not_called_out_of_memory(monkeypatch):
    from tetrad import cli

    def handler(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "_run_demo", handler)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["demo"])


def test_demo_writes_report(tmp_path):
    proc = tetrad("demo", f"root={tmp_path}", "name=t", "parts=[movielens]")
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "demo/t/report.md").read_text()
    assert "MovieLens-100k" in report and "Systems not built yet" in report
    summary = json.loads((tmp_path / "demo/t/summary.json").read_text())
    numbers = summary["MovieLens-100k (shared data)"]
    # popularity must beat random by a wide margin on MovieLens, or the data or metric is wrong
    assert numbers["popularity_recall@10"] > 5 * numbers["random_recall@10"]
    assert (tmp_path / "demo/t/plots/movielens_popularity.png").stat().st_size > 1000
    again = tetrad("demo", f"root={tmp_path}", "name=t", "parts=[nope]")
    assert again.returncode == 2 and "unknown demo part 'nope'" in again.stderr
