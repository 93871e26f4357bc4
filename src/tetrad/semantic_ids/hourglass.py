"""Hourglass diagnostics of residual-quantization codes, and the fixes the paper proposes.

Codes are an items x layers integer array; a position a fix removed holds -1.

Diagnostics per layer (`layer_stats`): codes used and utilisation (used / codebook size),
entropy normalised by log(codebook size), Gini coefficient and standard deviation of the
per-code counts (over all codebook entries, unused ones counting 0), and the share of items
on the top-1 and top-10 codes. Across layers (`diagnose`): path sparsity (distinct prefixes
at each depth against the K^depth possible), fan-out (distinct next-layer codes per code)
and fan-in (distinct previous-layer codes per code) between consecutive layers, and the
collision rate (share of items whose full path another item also has).

Fixes:
- `drop_layer(codes, 1)`: the heuristic fix, remove the second layer entirely.
- `adaptive_variable_length(codes, k=...)` or `(..., entropy_target=...)`: remove the K most
  frequent second-layer codes; the items under them lose that token and get shorter IDs
  (c1, c3). The paper does not say whether the items keep their third token; we read
  "remove the token" literally, so they do. With `entropy_target`, K is the smallest value
  whose remaining second-layer distribution reaches that entropy, normalised by
  log(K_codebook - K) since the removed codes leave the vocabulary. (The diagnostics table
  keeps normalising by the full codebook, so numbers stay comparable across methods.)
- `adaptive_k_sweep(codes, K_codebook, ks)`: the adaptive fix for each K of a sweep (the paper
  varies the number of removed top tokens), with what each K does to layer 2.
- balanced RQ-KMeans (`quantizers.BalancedRQKMeans`), the beyond-the-paper option.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tetrad.core.errors import UserError
from tetrad.core.metrics import gini


def code_counts(column: np.ndarray, codebook_size: int) -> np.ndarray:
    present = column[column >= 0]
    return np.bincount(present, minlength=codebook_size).astype(np.float64)


def normalised_entropy(counts: np.ndarray) -> float:
    """Shannon entropy of the count distribution over log(number of bins): 1 is uniform."""
    total = counts.sum()
    if total == 0 or len(counts) < 2:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(counts)))


def layer_stats(column: np.ndarray, codebook_size: int) -> dict[str, float]:
    counts = code_counts(np.asarray(column), codebook_size)
    total = counts.sum()
    top = np.sort(counts)[::-1]
    used = int((counts > 0).sum())
    return {
        "items": float(total),
        "codes_used": float(used),
        "utilisation": used / codebook_size,
        "entropy": normalised_entropy(counts),
        "gini": gini(counts) if total else 0.0,
        "count_std": float(counts.std()),
        "top1_share": float(top[0] / total) if total else 0.0,
        "top10_share": float(top[:10].sum() / total) if total else 0.0,
    }


def _links(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distinct (a, b) code pairs over items that have both."""
    keep = (a >= 0) & (b >= 0)
    return np.unique(np.stack([a[keep], b[keep]], 1), axis=0)


def diagnose(codes, codebook_size: int) -> dict[str, Any]:
    """Every hourglass diagnostic of `codes` (items x layers, -1 for removed positions)."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or len(codes) == 0:
        raise UserError(f"codes must be a non-empty items x layers array (got shape {codes.shape})")
    n, layers = codes.shape
    out: dict[str, Any] = {"items": n, "layers": layers, "codebook_size": codebook_size,
                           "per_layer": [layer_stats(codes[:, i], codebook_size) for i in range(layers)]}
    sparsity = []
    for depth in range(1, layers + 1):
        distinct = len(np.unique(codes[:, :depth], axis=0))
        possible = float(codebook_size) ** depth
        sparsity.append({"depth": depth, "distinct_prefixes": distinct, "possible": possible,
                         "fill": distinct / possible})
    out["path_sparsity"] = sparsity
    flows = []
    for i in range(layers - 1):
        links = _links(codes[:, i], codes[:, i + 1])
        fan_out = np.bincount(links[:, 0]) if len(links) else np.zeros(1)
        fan_in = np.bincount(links[:, 1]) if len(links) else np.zeros(1)
        fan_out, fan_in = fan_out[fan_out > 0], fan_in[fan_in > 0]
        flows.append({"from": i + 1, "to": i + 2, "links": len(links),
                      "fan_out_mean": float(fan_out.mean()) if len(fan_out) else 0.0,
                      "fan_out_max": float(fan_out.max()) if len(fan_out) else 0.0,
                      "fan_in_mean": float(fan_in.mean()) if len(fan_in) else 0.0,
                      "fan_in_max": float(fan_in.max()) if len(fan_in) else 0.0})
    out["flows"] = flows
    _, group_sizes = np.unique(codes, axis=0, return_counts=True)
    out["collision_rate"] = float(group_sizes[group_sizes > 1].sum() / n)
    out["distinct_paths"] = int(len(group_sizes))
    out["max_items_per_path"] = int(group_sizes.max())
    return out


def hourglass_score(report: dict[str, Any]) -> dict[str, float]:
    """How far layer 2 concentrates against its neighbours: entropy drop and Gini rise.

    entropy_dip = mean entropy of layers 1 and 3 minus layer 2's (> 0: an hourglass);
    gini_rise = layer 2's Gini minus the mean of layers 1 and 3's.
    """
    per = report["per_layer"]
    if len(per) < 3:
        raise UserError("the hourglass needs at least three layers")
    return {"entropy_dip": (per[0]["entropy"] + per[2]["entropy"]) / 2 - per[1]["entropy"],
            "gini_rise": per[1]["gini"] - (per[0]["gini"] + per[2]["gini"]) / 2}


def format_table(report: dict[str, Any]) -> str:
    """A Markdown table of the per-layer diagnostics, then sparsity, flows and collisions."""
    lines = ["| layer | used | utilisation | entropy | Gini | count std | top-1 | top-10 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, s in enumerate(report["per_layer"], 1):
        lines.append(f"| {i} | {int(s['codes_used'])} | {s['utilisation']:.3f} | {s['entropy']:.3f} | "
                     f"{s['gini']:.3f} | {s['count_std']:.1f} | {s['top1_share']:.3f} | {s['top10_share']:.3f} |")
    lines += ["", "| depth | distinct prefixes | possible | fill |", "| --- | --- | --- | --- |"]
    lines += [f"| {s['depth']} | {s['distinct_prefixes']} | {s['possible']:.3g} | {s['fill']:.2e} |"
              for s in report["path_sparsity"]]
    lines += ["", "| layers | links | fan-out mean / max | fan-in mean / max |", "| --- | --- | --- | --- |"]
    lines += [f"| {f['from']}->{f['to']} | {f['links']} | {f['fan_out_mean']:.1f} / {int(f['fan_out_max'])} | "
              f"{f['fan_in_mean']:.1f} / {int(f['fan_in_max'])} |" for f in report["flows"]]
    lines += ["", f"Collision rate {report['collision_rate']:.3f} ({report['distinct_paths']} distinct paths "
              f"for {report['items']} items, at most {report['max_items_per_path']} on one path)."]
    return "\n".join(lines)


def plot_diagnostics(codes, codebook_size: int, directory, prefix: str = "") -> list:
    """Sorted code frequency per layer (log scale) and the layer-to-layer flow heatmaps."""
    from tetrad.core.plots import new_figure, save_figure

    codes = np.asarray(codes)
    paths = []
    fig, ax = new_figure()
    for i in range(codes.shape[1]):
        counts = np.sort(code_counts(codes[:, i], codebook_size))[::-1]
        ax.semilogy(np.arange(1, codebook_size + 1), np.maximum(counts, 0.5), label=f"layer {i + 1}")
    ax.set(xlabel="code rank", ylabel="items (0 drawn at 0.5)", title="sorted code frequency per layer")
    ax.legend()
    paths.append(save_figure(fig, f"{directory}/{prefix}code_frequency.png"))
    pairs = codes.shape[1] - 1
    if pairs > 0:
        fig, axes = new_figure(4.0 * pairs, 3.6)
        fig.clf()
        for i in range(pairs):
            ax = fig.add_subplot(1, pairs, i + 1)
            a, b = codes[:, i], codes[:, i + 1]
            keep = (a >= 0) & (b >= 0)
            flow = np.zeros((codebook_size, codebook_size))
            np.add.at(flow, (a[keep], b[keep]), 1)
            rows = np.argsort(-flow.sum(1), kind="stable")
            cols = np.argsort(-flow.sum(0), kind="stable")
            ax.imshow(np.log1p(flow[rows][:, cols]), aspect="auto", cmap="magma")
            ax.set(xlabel=f"layer {i + 2} code (by frequency)", ylabel=f"layer {i + 1} code (by frequency)",
                   title=f"flow {i + 1}->{i + 2}, log(1 + items)")
        paths.append(save_figure(fig, f"{directory}/{prefix}layer_flow.png"))
    return paths


# ---- fixes ----------------------------------------------------------------------------------------


def drop_layer(codes, layer: int = 1) -> np.ndarray:
    """Codes without column `layer` (0-based; the paper's heuristic fix drops the second, 1)."""
    codes = np.asarray(codes)
    if not 0 <= layer < codes.shape[1]:
        raise UserError(f"cannot drop layer {layer} of codes with {codes.shape[1]} layers")
    return np.delete(codes, layer, axis=1)


def top_codes_for_entropy(column: np.ndarray, codebook_size: int, target: float) -> int:
    """Smallest K such that removing the K most frequent codes leaves normalised entropy >= target.

    The removed codes leave the layer's vocabulary, so the remaining entropy is normalised by
    log(codebook_size - K).
    """
    if not 0 < target <= 1:
        raise UserError(f"entropy target must lie in (0, 1] (got {target})")
    counts = np.sort(code_counts(column, codebook_size))[::-1]
    for k in range(codebook_size - 1):
        rest = counts[k:]
        if rest.sum() and normalised_entropy(rest) >= target:
            return k
    raise UserError(f"no number of removed codes reaches entropy target {target}")


def adaptive_variable_length(codes, codebook_size: int, k: int | None = None,
                             entropy_target: float | None = None, layer: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Remove the `k` most frequent codes of `layer`: those items' entries become -1 (a shorter ID).

    Returns (codes with -1 at removed positions, the removed code values).
    """
    codes = np.array(codes, dtype=np.int64)
    if (k is None) == (entropy_target is None):
        raise UserError("adaptive variable-length SIDs need exactly one of k or entropy_target")
    column = codes[:, layer]
    if entropy_target is not None:
        k = top_codes_for_entropy(column, codebook_size, entropy_target)
    if not 0 <= k < codebook_size:
        raise UserError(f"k must lie in [0, {codebook_size}) (got {k})")
    counts = code_counts(column, codebook_size)
    removed = np.argsort(-counts, kind="stable")[:k]
    removed = removed[counts[removed] > 0]
    codes[np.isin(column, removed), layer] = -1
    return codes, removed


def adaptive_k_sweep(codes, codebook_size: int, ks, layer: int = 1) -> list[dict[str, Any]]:
    """The adaptive fix for each K in `ks`: per K the removed codes, the share of items whose ID
    got shorter, and the layer's normalised entropy over the codes left (log(codebook - K)) and
    top-1 share among the items that keep the token."""
    codes = np.asarray(codes)
    rows = []
    for k in ks:
        fixed, removed = adaptive_variable_length(codes, codebook_size, k=int(k), layer=layer)
        column = fixed[:, layer]
        counts = np.delete(code_counts(column, codebook_size), removed)
        kept = counts.sum()
        rows.append({"k": int(k), "removed_codes": removed.tolist(), "shortened_share": float((column < 0).mean()),
                     "entropy_left": normalised_entropy(counts),
                     "top1_share_left": float(counts.max() / kept) if kept else 0.0})
    return rows
