import numpy as np
import pytest

from tetrad.core.errors import UserError
from tetrad.data.catalogue import make_catalogue
from tetrad.semantic_ids.hourglass import (adaptive_k_sweep, adaptive_variable_length, diagnose, drop_layer, format_table,
                                           hourglass_score, layer_stats, normalised_entropy, plot_diagnostics, top_codes_for_entropy)
from tetrad.semantic_ids.quantizers import RQKMeans


def test_layer_stats_on_known_counts():
    uniform = layer_stats(np.repeat(np.arange(4), 5), 4)
    assert uniform["entropy"] == pytest.approx(1.0) and uniform["gini"] == pytest.approx(0.0)
    assert uniform["utilisation"] == 1.0 and uniform["top1_share"] == 0.25 and uniform["count_std"] == 0
    one = layer_stats(np.zeros(10, dtype=int), 4)
    assert one["entropy"] == 0.0 and one["gini"] == pytest.approx(0.75) and one["top1_share"] == 1.0
    assert one["codes_used"] == 1 and one["utilisation"] == 0.25
    removed = layer_stats(np.array([0, 0, -1, 1]), 2)  # -1 (removed by a fix) is not counted
    assert removed["items"] == 3 and removed["top1_share"] == pytest.approx(2 / 3)


def test_diagnose_paths_flows_and_collisions():
    codes = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 0], [1, 1, 0]])
    r = diagnose(codes, 2)
    assert [s["distinct_prefixes"] for s in r["path_sparsity"]] == [2, 3, 4]
    assert r["path_sparsity"][2]["possible"] == 8
    f12 = r["flows"][0]  # 0 -> {0, 1}, 1 -> {1}; code 1 of layer 2 comes from {0, 1}
    assert f12["fan_out_max"] == 2 and f12["fan_in_max"] == 2 and f12["links"] == 3
    assert r["collision_rate"] == pytest.approx(2 / 5) and r["max_items_per_path"] == 2
    assert "| 2 | 2 | 1.000 |" in format_table(r)


@pytest.fixture(scope="module")
def twin_codes():
    out = {}
    for name, zipf in (("long_tail", 1.2), ("uniform", 0.0)):
        cat = make_catalogue(items=8000, dim=32, top_clusters=16, sub_clusters=8, zipf=zipf, users=10, seed=0)
        out[name] = RQKMeans(3, 32, seed=0).fit_encode(cat.embeddings)
    return out


def test_hourglass_appears_with_a_long_tail_and_not_without(twin_codes):
    tail = hourglass_score(diagnose(twin_codes["long_tail"], 32))
    flat = hourglass_score(diagnose(twin_codes["uniform"], 32))
    assert tail["entropy_dip"] > 0.05 and tail["gini_rise"] > 0.05
    assert abs(flat["entropy_dip"]) < 0.03 and abs(flat["gini_rise"]) < 0.03


def test_adaptive_fix_removes_top_codes_and_raises_layer2_entropy(twin_codes):
    codes = twin_codes["long_tail"]
    before = layer_stats(codes[:, 1], 32)
    fixed, removed = adaptive_variable_length(codes, 32, k=3)
    counts = np.bincount(codes[:, 1], minlength=32)
    assert set(removed) == set(np.argsort(-counts)[:3])
    assert (fixed[:, 1] == -1).sum() == counts[removed].sum()
    np.testing.assert_array_equal(fixed[:, [0, 2]], codes[:, [0, 2]])  # layers 1 and 3 untouched
    assert layer_stats(fixed[:, 1], 32)["top1_share"] < before["top1_share"]
    k = top_codes_for_entropy(codes[:, 1], 32, 0.9)
    assert k > 0
    remaining = lambda kk: normalised_entropy(np.sort(counts)[::-1][kk:])  # noqa: E731  over the 32 - kk codes left
    assert remaining(k) >= 0.9 > remaining(k - 1)
    by_target, removed_t = adaptive_variable_length(codes, 32, entropy_target=0.9)
    assert len(removed_t) == k
    layer2 = by_target[:, 1]
    kept = np.delete(np.bincount(layer2[layer2 >= 0], minlength=32), removed_t)
    assert normalised_entropy(kept) >= 0.9 > normalised_entropy(counts)  # the fix raises layer-2 entropy
    with pytest.raises(UserError, match="exactly one of k or entropy_target"):
        adaptive_variable_length(codes, 32)


def test_k_sweep_removes_nested_top_codes_and_flattens_layer2(twin_codes):
    codes = twin_codes["long_tail"]
    counts = np.bincount(codes[:, 1], minlength=32)
    sweep = adaptive_k_sweep(codes, 32, [1, 2, 4, 8])
    assert [r["k"] for r in sweep] == [1, 2, 4, 8]
    for r in sweep:
        fixed, removed = adaptive_variable_length(codes, 32, k=r["k"])
        assert r["removed_codes"] == removed.tolist() and len(removed) == r["k"]
        assert r["shortened_share"] == pytest.approx(counts[removed].sum() / len(codes))
    # each K removes the K most frequent codes: nested sets, more items shortened, a flatter rest
    assert all(set(a["removed_codes"]) < set(b["removed_codes"]) for a, b in zip(sweep, sweep[1:]))
    assert all(a["shortened_share"] < b["shortened_share"] for a, b in zip(sweep, sweep[1:]))
    assert all(counts[r["removed_codes"]].min() >= np.delete(counts, r["removed_codes"]).max() for r in sweep)
    assert sweep[-1]["entropy_left"] > normalised_entropy(counts)
    assert sweep[0]["top1_share_left"] == pytest.approx(np.sort(counts)[-2] / (len(codes) - counts.max()))


def test_drop_layer_and_plots(twin_codes, tmp_path):
    codes = twin_codes["long_tail"]
    np.testing.assert_array_equal(drop_layer(codes, 1), codes[:, [0, 2]])
    with pytest.raises(UserError, match="cannot drop layer 5"):
        drop_layer(codes, 5)
    paths = plot_diagnostics(codes, 32, tmp_path)
    assert [p.name for p in paths] == ["code_frequency.png", "layer_flow.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
