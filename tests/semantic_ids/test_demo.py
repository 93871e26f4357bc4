import json

import pytest

from tetrad.demo import run_demo


@pytest.mark.slow
def test_sid_demo_part(tmp_path):
    run = run_demo([f"root={tmp_path}", "name=t", "parts=[sid]"])
    numbers = json.loads((run.path / "summary.json").read_text())["Semantic IDs (sid)"]
    assert numbers["long_tail_layer2_entropy_dip"] > 0.05 > numbers["uniform_layer2_entropy_dip"]
    assert numbers["layer2_top1_share_after"] < numbers["layer2_top1_share_before"]
    # both retrievers beat random ranking (10 / 4000 items) by a wide margin
    assert numbers["sasrec_recall@10"] > 0.01 and numbers["tiger_rq_kmeans_recall@10"] > 0.02
    assert "Semantic IDs (sid)" in (run.path / "report.md").read_text()
    assert (run.path / "plots/sid_long_tail_code_frequency.png").is_file()
