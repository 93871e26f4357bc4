import json

from tetrad.core.config import load_config
from tetrad.semantic_ids.study import StudyConfig, findings, run_study


def test_study_diagnostics_resume_and_report(tmp_path):
    args = [f"root={tmp_path}", f"output={tmp_path / 'r.md'}", "datasets=[long_tail,uniform]", "seeds=[0,1]",
            "methods=[rq_kmeans,adaptive,balanced]", "retrieval=false", "data.items=3000", "data.dim=16",
            "data.top_clusters=16", "data.sub_clusters=8", "data.users=20", "quantizer.codebook_size=16",
            "quantizer.niter=5"]
    run_study(load_config(StudyConfig, None, args), command="tetrad sid hourglass ...")
    results = json.loads((tmp_path / "sid/hourglass/results.json").read_text())
    assert len(results) == 12 and sum(r.get("cell_done", False) for r in results) == 4
    text = (tmp_path / "r.md").read_text()
    assert "Made by `tetrad sid hourglass ...`" in text and "| long_tail | adaptive |" in text
    assert "- long_tail, rq_kmeans: an hourglass" in text
    # the uniform twin is flat: every balanced layer holds equal counts, so its Gini is ~0
    bal = [r for r in results if r["method"] == "balanced"]
    assert all(max(layer["gini"] for layer in r["per_layer"]) < 0.01 for r in bal)
    # resume keeps finished cells and only re-renders
    again = run_study(load_config(StudyConfig, None, [*args, "resume=true"]), command="again")
    assert [r["per_layer"] for r in again["results"]] == [r["per_layer"] for r in results]
    # cells in worker processes give the same rows in the same order
    par = [f"root={tmp_path / 'par'}", f"output={tmp_path / 'par.md'}", *args[2:], "methods=[rq_kmeans]", "workers=2"]
    parallel = run_study(load_config(StudyConfig, None, par), command="parallel")
    assert [(r["dataset"], r["seed"], r["per_layer"]) for r in parallel["results"]] == \
        [(r["dataset"], r["seed"], r["per_layer"]) for r in results if r["method"] == "rq_kmeans"]


def test_findings_say_when_the_effect_is_absent():
    rows = [{"dataset": "uniform", "method": "rq_kmeans", "seed": s, "per_layer": [{"entropy": 0.9}] * 3,
             "hourglass": {"entropy_dip": 0.0, "gini_rise": -0.01}} for s in (0, 1)]
    cfg = load_config(StudyConfig, None, ["datasets=[uniform]", "methods=[rq_kmeans]"])
    assert findings(cfg, rows)[0].startswith("- uniform, rq_kmeans: no hourglass")


def test_recall_findings_pair_methods_by_seed():
    """The Recall@10 line compares methods seed by seed (same catalogue and users), with the spread."""
    rec = {("rq_kmeans", 0): 0.10, ("rq_kmeans", 1): 0.20, ("adaptive", 0): 0.13, ("adaptive", 1): 0.18}
    rows = [{"dataset": "long_tail", "method": m, "seed": s, "per_layer": [{"entropy": 0.9}] * 3,
             "retrieval": {"recall@10": v}} for (m, s), v in rec.items()]
    cfg = load_config(StudyConfig, None, ["datasets=[long_tail]", "methods=[rq_kmeans,adaptive]"])
    line = [f for f in findings(cfg, rows) if "Recall@10" in f][0]
    assert line == ("- long_tail, Recall@10 against rq_kmeans 0.1500: adaptive 0.1550 (difference +0.0050 ± 0.0354, "
                    "higher in 1 of 2 seeds).")
