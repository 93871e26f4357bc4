import json

import numpy as np
import pytest

from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.semantic_ids.study import StudyConfig, findings, run_study


def test_study_diagnostics_resume_and_report(tmp_path):
    args = [f"root={tmp_path}", f"output={tmp_path / 'r.md'}", f"results_dir={tmp_path / 'rows'}",
            "datasets=[long_tail,uniform]", "seeds=[0,1]",
            "methods=[rq_kmeans,adaptive,balanced]", "retrieval=false", "data.items=3000", "data.dim=16",
            "data.top_clusters=16", "data.sub_clusters=8", "data.users=20", "quantizer.codebook_size=16",
            "quantizer.niter=5"]
    results = run_study(load_config(StudyConfig, None, args), command="tetrad sid hourglass ...")["results"]
    rows = sorted((tmp_path / "rows/hourglass").iterdir())
    assert len(results) == 12 and len(rows) == 12 and rows[0].name == "long_tail-s0-adaptive.json"
    assert json.loads(rows[0].read_text())["row"] == next(r for r in results if r["method"] == "adaptive")
    text = (tmp_path / "r.md").read_text()
    assert "Made by `tetrad sid hourglass ...`" in text and "| long_tail | adaptive |" in text
    assert "- long_tail, rq_kmeans: an hourglass" in text
    # the uniform twin is flat: every balanced layer holds equal counts, so its Gini is ~0
    bal = [r for r in results if r["method"] == "balanced"]
    assert all(max(layer["gini"] for layer in r["per_layer"]) < 0.01 for r in bal)
    # another run (a later session, another machine: a fresh root) reuses the committed rows and
    # runs only what is missing (here a seed); a row made with other settings is refused
    (tmp_path / "rows/hourglass/uniform-s1-balanced.json").unlink()
    again = run_study(load_config(StudyConfig, None, [f"root={tmp_path / 'other'}", *args[1:]]), command="again")
    assert [r["per_layer"] for r in again["results"]] == [r["per_layer"] for r in results]
    assert "Made by `again`" in (tmp_path / "r.md").read_text()
    with pytest.raises(UserError, match="long_tail-s0-rq_kmeans.json was made with other settings .entropy_target"):
        run_study(load_config(StudyConfig, None, [*args, "entropy_target=0.8"]), command="other")
    # tasks in worker processes give the same rows in the same order
    par = [f"root={tmp_path / 'par'}", f"output={tmp_path / 'par.md'}", f"results_dir={tmp_path / 'par-rows'}",
           *args[3:], "methods=[rq_kmeans]", "workers=2"]
    parallel = run_study(load_config(StudyConfig, None, par), command="parallel")
    assert [(r["dataset"], r["seed"], r["per_layer"]) for r in parallel["results"]] == \
        [(r["dataset"], r["seed"], r["per_layer"]) for r in results if r["method"] == "rq_kmeans"]


def test_findings_say_when_the_effect_is_absent():
    rows = [{"dataset": "uniform", "method": "rq_kmeans", "seed": s, "per_layer": [{"entropy": 0.9}] * 3,
             "hourglass": {"entropy_dip": 0.0, "gini_rise": -0.01}} for s in (0, 1)]
    cfg = load_config(StudyConfig, None, ["datasets=[uniform]", "methods=[rq_kmeans]"])
    assert findings(cfg, rows)[0].startswith("- uniform, rq_kmeans: no hourglass")


def test_recall_findings_pair_methods_by_user_with_bootstrap_intervals():
    """Recall@10 differences are paired over (seed, user) with paired_bootstrap's interval, and say
    whether the interval excludes 0; anchors appear beside the methods."""
    from tetrad.core.bootstrap import paired_bootstrap

    rng = np.random.default_rng(0)
    hits = {m: {s: (rng.random(400) < p).astype(float).tolist() for s in (0, 1)}
            for m, p in (("rq_kmeans", 0.2), ("adaptive_k2", 0.2), ("subcluster", 0.5))}
    rows = [{"dataset": "long_tail", "method": m, "seed": s, "per_layer": [{"entropy": 0.9}] * 3,
             "retrieval": {"recall@10": float(np.mean(v)), "per_user": {"recall@10": v, "ndcg@10": v}}}
            for m, by_seed in hits.items() for s, v in by_seed.items()]
    cfg = load_config(StudyConfig, None, ["datasets=[long_tail]", "methods=[rq_kmeans,adaptive_k]",
                                          "adaptive_ks=[2]"])
    line = [f for f in findings(cfg, rows) if "Recall@10" in f][0]
    mean, lo, hi = paired_bootstrap(hits["subcluster"][0] + hits["subcluster"][1],
                                    hits["rq_kmeans"][0] + hits["rq_kmeans"][1])
    assert f"subcluster {np.mean(hits['subcluster'][0] + hits['subcluster'][1]):.4f} ({mean:+.4f} [{lo:+.4f}, " \
           f"{hi:+.4f}], higher)" in line
    assert line.startswith("- long_tail, Recall@10 against rq_kmeans")
    assert "adaptive_k2" in line and "no clear difference" in line.split("adaptive_k2")[1].split(")")[0]
    assert "popularity" not in line  # no rows, no claim


def test_study_with_retrieval_runs_the_k_sweep_and_the_anchors(tmp_path):
    args = [f"root={tmp_path}", f"output={tmp_path / 'r.md'}", f"results_dir={tmp_path}", "datasets=[long_tail]", "seeds=[0]",
            "retrieval_seeds=[0]", "methods=[rq_kmeans,adaptive_k]", "adaptive_ks=[1,2]", "data.items=600",
            "data.dim=8", "data.top_clusters=4", "data.sub_clusters=4", "data.users=40", "data.item_zipf=1.0",
            "quantizer.codebook_size=8", "quantizer.niter=3", "model.d_model=16", "model.layers=1",
            "model.heads=2", "model.d_kv=8", "model.d_ff=32", "train.steps=6", "train.eval_every=2",
            "train.patience=1", "train.batch_size=16", "eval.beam=10", "sasrec.steps=4", "sasrec.eval_every=2",
            "sasrec.d_model=8"]
    out = run_study(load_config(StudyConfig, None, args), command="tetrad sid hourglass ...")
    by_method = {r["method"]: r for r in out["results"]}
    assert list(by_method) == ["rq_kmeans", "adaptive_k1", "adaptive_k2", "subcluster", "popularity", "sasrec"]
    assert [len(by_method[f"adaptive_k{k}"]["fix"]["removed_codes"]) for k in (1, 2)] == [1, 2]
    for m, r in by_method.items():
        assert len(r["retrieval"]["per_user"]["recall@10"]) == 40  # every test user
        if m not in ("subcluster", "popularity"):
            assert 2 <= r["retrieval"]["best_step"] <= r["retrieval"]["steps"] <= 6
        if m.startswith(("rq_", "adaptive")):  # the same weights scored with the other beam normalisation
            other = r["retrieval"]["other_normalisation"]
            assert len(other["per_user"]["recall@10"]) == 40 and "other_normalisation" not in other
    assert not by_method["adaptive_k2"]["retrieval"]["eos"]  # collision tokens: no EOS needed
    text = (tmp_path / "r.md").read_text()
    assert "| long_tail | subcluster |" in text and "### Paired differences to rq_kmeans" in text
    assert "| long_tail | adaptive_k2 | " in text.split("### Paired differences")[1]
    # the default scores over the whole vocabulary; the other normalisation is the renormalised one
    k1 = by_method["adaptive_k1"]["retrieval"]
    whole, renorm = k1["recall@10"], k1["other_normalisation"]["recall@10"]
    assert f"| long_tail | adaptive_k1 | {whole:.4f} | {renorm:.4f} | {renorm - whole:+.4f} [" in \
        text.split("### Beam normalisation (Recall@10)")[1]


def test_seeds_of_runs_a_dataset_or_method_on_fewer_seeds(tmp_path):
    args = [f"root={tmp_path}", f"output={tmp_path / 'r.md'}", f"results_dir={tmp_path / 'rows'}",
            "datasets=[long_tail,uniform]", "seeds=[0,1]", "methods=[rq_kmeans,adaptive_k]", "adaptive_ks=[1,2]",
            "retrieval=false", "data.items=1000", "data.dim=8", "data.top_clusters=8", "data.sub_clusters=4",
            "data.users=20", "quantizer.codebook_size=8", "quantizer.niter=3"]
    seeds_of = "seeds_of={uniform: [0], adaptive_k: [0], uniform/adaptive_k: []}"
    results = run_study(load_config(StudyConfig, None, [*args, seeds_of]), command="c")["results"]
    assert sorted((r["dataset"], r["seed"], r["method"]) for r in results) == [
        ("long_tail", 0, "adaptive_k1"), ("long_tail", 0, "adaptive_k2"), ("long_tail", 0, "rq_kmeans"),
        ("long_tail", 1, "rq_kmeans"), ("uniform", 0, "rq_kmeans")]
    assert "uniform on seed 0 only, adaptive_k on seed 0 only, no uniform/adaptive_k;" in (tmp_path / "r.md").read_text()
    for bad, match in (("seeds_of={movielens: [0]}", "seeds_of names 'movielens'"),
                       ("seeds_of={uniform: [2]}", r"seeds_of.uniform must be a subset of seeds \[0, 1\]")):
        with pytest.raises(UserError, match=match):
            run_study(load_config(StudyConfig, None, [*args, bad]), command="c")
