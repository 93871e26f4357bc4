import json
import random

import pandas as pd
import pytest
import torch

from tetrad.core.errors import UserError
from tetrad.llm.models import ModelSpec
from tetrad.llm.update import PolicyUpdater
from tetrad.ttrl.guard import GuardConfig
from tetrad.ttrl.pretrain import PretrainConfig, model_dir, pretrain
from tetrad.ttrl.recipe import TTRLConfig, check_split, run_ttrl
from tetrad.ttrl.tasks import TaskConfig, load_tasks

TINY = ModelSpec(kind="tiny", hidden=32, layers=1, heads=2)
TASKS = TaskConfig(size=8, seed=5, knobs={"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})


def config(tmp_path, name, **kw) -> TTRLConfig:
    base = dict(root=str(tmp_path), name=name, model=TINY, tasks=TASKS, n_samples=4, n_train=2,
                batch_prompts=4, epochs=2, eval_samples=2, checkpoint_every=2,
                update={"lr": 3e-3, "micro_batch": 8, "warmup_ratio": 0.0})
    base.update(kw)
    return TTRLConfig(**base)


def training_log(tmp_path, name):
    """What training did: the per-step records without the analysis-only keys (truth-dependent)."""
    rows = [json.loads(line) for line in (tmp_path / "ttrl" / name / "metrics.jsonl").read_text().splitlines()]
    drop = ("label_accuracy", "reward_accuracy", "true_share")
    return [{k: v for k, v in r.items() if k not in drop and not k.startswith("eval/")} for r in rows if r["step"] > 0]


def final_params(tmp_path, name):
    ck = sorted((tmp_path / "ttrl" / name / "checkpoints").iterdir())[-1]
    return torch.load(ck, weights_only=True)["model"]


def same_params(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ground_truth_never_reaches_training(tmp_path):
    tasks = load_tasks(TASKS)
    run_ttrl(config(tmp_path, "truth"), tasks)
    shuffled = list(tasks.truths)
    random.Random(0).shuffle(shuffled)
    permuted = {i: t for i, t in zip(tasks.ids, shuffled)}
    assert permuted != tasks.truth_of()
    run_ttrl(config(tmp_path, "permuted"), tasks, truths=permuted)
    run_ttrl(config(tmp_path, "none"), tasks, truths=None)
    ref = final_params(tmp_path, "truth")
    assert same_params(ref, final_params(tmp_path, "permuted")) and same_params(ref, final_params(tmp_path, "none"))
    log = training_log(tmp_path, "truth")
    assert log == training_log(tmp_path, "permuted") == training_log(tmp_path, "none")
    assert any(r["loss"] != 0 for r in log)  # training did move the policy


def test_run_writes_tracking_outputs_and_summary(tmp_path):
    summary = run_ttrl(config(tmp_path, "out", epochs=3))
    path = tmp_path / "ttrl" / "out"
    problems = pd.read_parquet(path / "problems.parquet")
    visits = pd.read_parquet(path / "visits.parquet")
    assert len(problems) == 8 and (problems["visits"] == 3).all() and len(visits) == 24
    assert set(problems["category"]) <= {"stable_right", "learned", "degraded", "always_wrong"}
    assert sum(summary[f"n_{c}"] for c in ("stable_right", "learned", "degraded", "always_wrong")) == 8
    # every category is anchored to the base policy's vote: N = 4 votes of the step-0 policy each
    assert problems["base_majority_ratio"].isin([0.0, 0.25, 0.5, 0.75, 1.0]).all()
    assert problems["initial_label_acc"].mean() == pytest.approx(summary["base_label_accuracy"])
    assert {"flip_rate.png", "categories.png", "extinction_windows.png"} <= {p.name for p in (path / "plots").iterdir()}
    metrics = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    assert metrics[0]["step"] == 0 and "eval/pass@1" in metrics[0] and "eval/pass@1" in metrics[-1]
    assert metrics[0]["base_label_accuracy"] == summary["base_label_accuracy"]
    assert {"majority_ratio", "label_accuracy", "reward_accuracy", "flip_rate"} <= metrics[1].keys()
    # the stopping rule (a pass is 2 steps: it can hold at step 4 at the earliest) and its pick
    assert summary["stop_step"] in (None, 4, 5, 6) and summary["stop_eval_step"] == 6
    assert summary["best_pass@1"] == summary["stop_pass@1"] == summary["pass@1"]  # one evaluation after training
    assert 0 <= summary["pass@1"] <= 1 and summary["steps"] == 6
    # per-problem accuracies line up with their problems (means agree, none lost in the join)
    assert problems["base_accuracy"].notna().all()
    assert problems["base_accuracy"].mean() == pytest.approx(summary["base_pass@1"])


def test_guard_changes_the_update_and_a_neutral_guard_is_plain_ttrl_bit_for_bit(tmp_path):
    run_ttrl(config(tmp_path, "plain", epochs=3))
    # FRS with no penalties multiplies every advantage by exactly 1: the guard's bookkeeping alone
    # must leave the run untouched
    run_ttrl(config(tmp_path, "neutral", epochs=3, guard=GuardConfig(frs=True, lambda1=0.0, lambda2=0.0)))
    run_ttrl(config(tmp_path, "guarded", epochs=3, guard=GuardConfig(frs=True, mps=True, rcsu=True, rcsu_p_skip=1.0,
                                                                        rcsu_theta_mr=0.0, window=2)))
    plain = final_params(tmp_path, "plain")
    assert same_params(plain, final_params(tmp_path, "neutral"))
    assert not same_params(plain, final_params(tmp_path, "guarded"))
    guarded = [json.loads(line) for line in (tmp_path / "ttrl/guarded/metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("guard/rcsu_skipped", 0) for r in guarded) > 0


def test_mps_fires_on_votes_the_recipe_computes(tmp_path):
    run_ttrl(config(tmp_path, "mps", epochs=4, guard=GuardConfig(mps=True)))
    rows = [json.loads(line) for line in (tmp_path / "ttrl/mps/metrics.jsonl").read_text().splitlines()]
    assert sum(r.get("guard/mps_fired", 0) for r in rows) > 0


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    run_ttrl(config(tmp_path, "whole", guard=GuardConfig(frs=True, mps=True, rcsu=True)))
    real_step, calls = PolicyUpdater.step, []

    def crashing(self, *a, **k):
        calls.append(1)
        if len(calls) == 4:  # checkpoint written after step 2
            raise RuntimeError("interrupted")
        return real_step(self, *a, **k)

    monkeypatch.setattr(PolicyUpdater, "step", crashing)
    with pytest.raises(RuntimeError):
        run_ttrl(config(tmp_path, "cut", guard=GuardConfig(frs=True, mps=True, rcsu=True)))
    monkeypatch.setattr(PolicyUpdater, "step", real_step)
    run_ttrl(config(tmp_path, "cut", resume=True, guard=GuardConfig(frs=True, mps=True, rcsu=True)))
    assert same_params(final_params(tmp_path, "whole"), final_params(tmp_path, "cut"))
    assert training_log(tmp_path, "whole") == training_log(tmp_path, "cut")
    for table in ("visits", "problems"):  # the base vote is restored with the tracker
        assert pd.read_parquet(tmp_path / f"ttrl/cut/{table}.parquet").equals(
            pd.read_parquet(tmp_path / f"ttrl/whole/{table}.parquet"))


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="must not exceed"):
        run_ttrl(config(tmp_path, "nm", n_samples=2, n_train=4))
    with pytest.raises(UserError, match="model directory not found"):
        run_ttrl(config(tmp_path, "nomodel", model=ModelSpec(kind="hf", path=str(tmp_path / "missing"))))
    with pytest.raises(UserError, match="benchmark file not found"):
        run_ttrl(config(tmp_path, "nofile", tasks=TaskConfig(source="benchmark", path=str(tmp_path / "x.json"))))
    with pytest.raises(UserError, match="at least 1"):
        run_ttrl(config(tmp_path, "empty", tasks=TaskConfig(size=0)))


def test_pretrain_learns_saves_and_is_reused(tmp_path):
    cfg = PretrainConfig(root=str(tmp_path), model=TINY, tasks=TASKS, train_size=500, steps=40, batch_size=32,
                         eval_samples=4)
    summary = pretrain(cfg)
    assert abs(summary["share_above_50"] + summary["share_10_to_50"] + summary["share_below_10"] - 1) < 1e-9
    assert len(summary["per_problem_accuracy"]) == 8
    log = [json.loads(line) for line in (tmp_path / "ttrl/pretrain/metrics.jsonl").read_text().splitlines()]
    assert log[-1]["loss"] < log[0]["loss"]
    weights = next(model_dir(cfg).glob("*.safetensors"))
    stamp = weights.stat().st_mtime_ns
    assert pretrain(cfg) == summary and weights.stat().st_mtime_ns == stamp  # cached, not retrained
    # a TTRL run without a model section uses (and does not retrain) that base policy
    run_ttrl(config(tmp_path, "on_base", model=None, pretrain=cfg, epochs=1))
    assert weights.stat().st_mtime_ns == stamp


def test_pretrain_keeps_the_most_contested_evaluation(tmp_path):
    cfg = PretrainConfig(root=str(tmp_path), model=TINY, tasks=TASKS, train_size=500, steps=30, batch_size=32,
                         eval_samples=4, eval_every=10, keep="most_contested")
    summary = pretrain(cfg)
    log = [json.loads(line) for line in (tmp_path / "ttrl/pretrain/metrics.jsonl").read_text().splitlines()]
    measured = {r["step"]: r["share_10_to_50"] for r in log if "share_10_to_50" in r}
    assert sorted(measured) == [10, 20, 30]
    best = max(measured, key=lambda k: (measured[k], -k))  # the first of the largest
    assert summary["kept_step"] == best
    # the kept weights are re-evaluated at the end: the same sampling seed gives the same spread
    assert summary["share_10_to_50"] == measured[best]
    with pytest.raises(UserError, match="needs eval_every"):
        pretrain(PretrainConfig(root=str(tmp_path / "x"), model=TINY, tasks=TASKS, keep="most_contested"))


def test_compare_writes_the_table_between_markers_and_reuses_finished_runs(tmp_path):
    from tetrad.ttrl.compare import CompareConfig, compare

    out = tmp_path / "ttrl.md"
    out.write_text("# kept heading\n\n<!-- ttrl-compare -->\nold\n<!-- /ttrl-compare -->\n\nkept footer\n")
    cfg = CompareConfig(run=config(tmp_path, "unused", epochs=1), seeds=[0], variants=["ttrl", "rcsu_only"],
                        output=str(out), results_dir=str(tmp_path / "results"))
    compare(cfg, command="tetrad ttrl compare seeds=[0]")
    text = out.read_text()
    assert text.startswith("# kept heading") and text.rstrip().endswith("kept footer") and "old" not in text
    assert "Made by `tetrad ttrl compare seeds=[0]`" in text
    assert "| ttrl |" in text and "| rcsu_only |" in text and "| base (step 0) |" in text
    assert "labels ≠ TTRL's" in text and "- rcsu_only vs TTRL, same seeds: pass@1" in text
    assert "| stop rule's step | pass@1 at its pick | best pass@1 (hindsight) |" in text
    tables, table = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("| "):
            table.append(line)
        elif table:
            tables.append(table)
            table = []
    assert [len(t) for t in tables] == [5, 3, 4]  # means (with the base), the effect, the dynamics
    assert all(len({line.count("|") for line in t}) == 1 for t in tables)  # every row has every column
    assert "(ttrl_compare_flip_rate.png)" in text and (tmp_path / "ttrl_compare_flip_rate.png").is_file()
    assert tables[1][2].split("|")[-2].strip() == "0.000"  # rcsu's labels vs TTRL's (RCSU waits for W visits)
    assert (tmp_path / "results" / "compare-ttrl-s0.json").is_file()
    summary = tmp_path / "ttrl" / "compare-ttrl-s0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    # a finished run with no committed file (an earlier compare's) is reused, not trained again
    (tmp_path / "results" / "compare-ttrl-s0.json").unlink()
    compare(cfg, command="again")
    assert summary.stat().st_mtime_ns == stamp and "Made by `again`" in out.read_text()
    assert (tmp_path / "results" / "compare-ttrl-s0.json").is_file()


def test_two_processes_shard_sampling_and_run_ttrl_like_one(tmp_path):
    """2 processes under torchrun each sample and score half of every step's prompts, gather, and end
    where 1 process ends at the same global batch: same votes, same tracking, same weights."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    # 4 prompts a step: 2 per process, one generate call of 1 prompt each -> the same chunks either way
    cfg = config(tmp_path, "one", epochs=1, sample_chunk=1, guard=GuardConfig(frs=True, mps=True, rcsu=True))
    one = run_ttrl(cfg)
    spec = tmp_path / "two.json"
    spec.write_text(cfg.model_copy(update={"name": "two"}).model_dump_json())
    out = tmp_path / "two.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--master-port", "29633",
                    str(Path(__file__).with_name("ddp_ttrl.py")), str(spec), str(out)],
                   check=True, env=env, capture_output=True, timeout=300)
    two = torch.load(out, weights_only=False)
    visits = pd.read_parquet(tmp_path / "ttrl" / "one" / "visits.parquet")
    # every prompt's vote, label and true share (a truncated response's missing label is NaN on both sides)
    pd.testing.assert_frame_equal(pd.DataFrame(two["visits"]), visits)
    ref = final_params(tmp_path, "one")
    assert all(torch.allclose(ref[k], two["model"][k], atol=1e-5) for k in ref)
    assert any(r["loss"] != 0 for r in training_log(tmp_path, "one"))  # the steps did train
    assert two["summary"]["pass@1"] == one["pass@1"]
    with pytest.raises(UserError, match="does not split over 3 processes"):
        check_split(8, cfg, 3)
    with pytest.raises(UserError, match="sample_chunk=2 does not divide"):
        check_split(8, cfg.model_copy(update={"sample_chunk": 2, "batch_prompts": 6}), 2)


def test_the_demo_config_ships_inside_the_package():
    from importlib import resources
    from pathlib import Path

    from tetrad.ttrl.demo import quick_config

    packaged = Path(str(resources.files("tetrad.ttrl") / "quick.yaml"))
    assert packaged.is_file() and Path("configs/ttrl/quick.yaml").resolve() == packaged.resolve()
    cfg = quick_config(["seed=3"])
    assert cfg.seed == 3 and cfg.n_samples == 16 and cfg.n_train == 8 and cfg.name == "quick"


def test_mini_batches_set_the_schedule_length_and_bad_values_are_one_error(tmp_path):
    from tetrad.ttrl.recipe import optimizer_steps

    # 10 problems in steps of 4, 4, 2; 3 mini-batches: 3 + 3 + 2 (one per prompt) a pass, 2 passes
    cfg = config(tmp_path, "mb", epochs=2, batch_prompts=4, update={"mini_batches": 3})
    assert optimizer_steps(10, cfg) == 16 and optimizer_steps(10, config(tmp_path, "x", batch_prompts=4)) == 6
    run_ttrl(config(tmp_path, "mb", epochs=1, update={"lr": 3e-3, "micro_batch": 8, "mini_batches": 2}))
    ck = sorted((tmp_path / "ttrl" / "mb" / "checkpoints").iterdir())[-1]
    assert torch.load(ck, weights_only=True)["scheduler"]["last_epoch"] == 2 * 2  # 2 steps x 2 mini-batches
    with pytest.raises(UserError, match="must not exceed batch_prompts"):
        run_ttrl(config(tmp_path, "too_many", update={"mini_batches": 5}))


def test_truncated_responses_do_not_vote_in_training_or_evaluation(monkeypatch):
    """Two responses with an unclosed box, one ended by EOS and one cut at max_new_tokens: only the
    ended one answers (the last-number fallback reads "2"), in the training vote and the evaluation."""
    import string

    from tetrad.llm.models import load_policy
    from tetrad.llm.sampling import Rollouts, SamplingParams
    from tetrad.ttrl import evaluation, recipe

    _, tok = load_policy(ModelSpec(kind="tiny", chars=string.printable, hidden=16, layers=1, heads=2))
    ids = tok("\\boxed{\\frac{1}{2", add_special_tokens=False)["input_ids"]
    width = len(ids) + 1
    ended, cut = ids + [tok.eos_token_id], ids + tok("x", add_special_tokens=False)["input_ids"]

    def fake_sample(model, tokenizer, prompts, n, params, **kw):
        assert n == 2 and params.max_new_tokens == width and len(prompts) == 1
        return Rollouts(torch.zeros(2, 1, dtype=torch.long), torch.ones(2, 1, dtype=torch.long),
                        torch.tensor([ended, cut]), torch.ones(2, width, dtype=torch.long),
                        ["\\boxed{\\frac{1}{2", "\\boxed{\\frac{1}{2x"], group_size=2)

    monkeypatch.setattr(recipe, "sample", fake_sample)
    monkeypatch.setattr(evaluation, "sample", fake_sample)
    params = SamplingParams(max_new_tokens=width)
    cfg = TTRLConfig(n_samples=2, n_train=1, train_sampling=params)
    _, groups, votes = recipe.sample_and_score(None, tok, ["q"], cfg, [0, 1], "cpu", train=False)
    assert groups == [["2", None]] and votes[0].label == "2" and votes[0].ratio == 0.5
    assert evaluation.sample_answers(None, tok, ["q"], 2, params, chat=False) == [["2", None]]
