import json

import pytest

from tetrad.cli import main


def run_cli(argv):
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_eval_alfworld_on_a_game_folder_with_skills_on_and_off(alfworld_games, tmp_path, capsys):
    root, _, _ = alfworld_games
    code = run_cli(["agents", "eval", "--policy", "expert", "--skills", "both", "env=alfworld",
                    f"games={root}", "task_types=[pick_and_place_simple,look_at_obj_in_light]", "workers=0",
                    "n_envs=2", "max_steps=150", f"root={tmp_path}", "name=e"])
    assert code == 0
    summary = json.loads((tmp_path / "agents" / "e" / "summary.json").read_text())
    assert summary["skills_on"]["success"] == 1.0 and summary["skills_off"]["success"] == 1.0
    assert set(summary["skills_on"]["success_per_type"]) == {"pick_and_place_simple", "look_at_obj_in_light"}
    episodes = [json.loads(line) for line in (tmp_path / "agents" / "e" / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 4 and sum(e["skills"] for e in episodes) == 2
    capsys.readouterr()
    assert run_cli(["agents", "summarize", str(tmp_path / "agents" / "e")]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == {k: summary[k] for k in ("skills_on", "skills_off")}
    assert run_cli(["agents", "summarize", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def test_eval_shop_random_policy(tmp_path):
    code = run_cli(["agents", "eval", "--policy", "random", "--skills", "off", "env=shop", "n_games=20",
                    "n_products=300", "workers=0", f"root={tmp_path}", "name=s"])
    assert code == 0
    summary = json.loads((tmp_path / "agents" / "s" / "summary.json").read_text())
    assert "skills_on" not in summary and summary["skills_off"]["episodes"] == 20
    assert 0.0 <= summary["skills_off"]["score"] < 0.5


def test_user_mistakes_exit_2(tmp_path, capsys):
    assert run_cli(["agents", "eval", "--policy", "telepathy", "env=shop", f"root={tmp_path}"]) == 2
    assert "unknown policy 'telepathy'" in capsys.readouterr().err
    assert run_cli(["agents", "eval", "--policy", "llm", "model={kind: gpt9}", "env=shop", f"root={tmp_path}"]) == 2
    assert "config key 'model.kind'" in capsys.readouterr().err
    assert run_cli(["agents", "eval", f"games={tmp_path / 'none'}", f"root={tmp_path}", "name=x"]) == 2
    assert "game folder not found" in capsys.readouterr().err
    assert run_cli(["agents", "make-games", "--out", str(tmp_path), "--n", "1", "--task-types", "juggle"]) == 2
    assert "unknown task type 'juggle'" in capsys.readouterr().err


def test_make_catalogue_and_expert_trajectories(alfworld_games, tmp_path, capsys):
    _, folders, _ = alfworld_games
    assert run_cli(["agents", "make-catalogue", "--out", str(tmp_path / "c.json"), "--n", "50"]) == 0
    assert len(json.loads((tmp_path / "c.json").read_text())) == 50
    assert run_cli(["agents", "expert-trajectories", "--games", str(folders[0]), "--out",
                    str(tmp_path / "t.jsonl")]) == 0
    assert "expert won 1/1" in capsys.readouterr().out
