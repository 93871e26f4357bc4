"""The semantic-ID part of `tetrad demo`: the hourglass on a small long-tailed catalogue and its
uniform twin, the adaptive fix, and a short TIGER-style retriever run beside SASRec."""

from __future__ import annotations

import torch

from tetrad.core.config import load_config
from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig, Section

SMALL = ["data.items=4000", "data.dim=32", "data.top_clusters=16", "data.sub_clusters=8", "data.users=400",
         "quantizer.codebook_size=32", "model.d_model=64", "model.layers=1", "model.heads=4", "model.d_kv=16",
         "model.d_ff=128", "model.max_history=10", "train.steps=200", "train.batch_size=64", "train.lr=3e-3",
         "train.warmup=20", "eval.beam=10", "sasrec.steps=200", "sasrec.max_len=20"]


def demo_part(run: RunDir, cfg: DemoConfig) -> Section:
    from tetrad.semantic_ids.data import leave_one_out, load_item_data
    from tetrad.semantic_ids.hourglass import diagnose, hourglass_score, plot_diagnostics
    from tetrad.semantic_ids.study import train_and_score
    from tetrad.semantic_ids.train import SidConfig, apply_fix, build_quantizer, run_sasrec

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is faster than two fighting for a shared machine
    try:
        numbers: dict[str, float] = {}
        plots = []
        for source in ("long_tail", "uniform"):
            sid = load_config(SidConfig, None, [*SMALL, f"data.source={source}", f"seed={cfg.seed}"])
            data = load_item_data(sid.data, cfg.seed)
            codes = build_quantizer(sid.quantizer, cfg.seed).fit_encode(data.embeddings)
            score = hourglass_score(diagnose(codes, 32))
            numbers[f"{source}_layer2_entropy_dip"] = round(score["entropy_dip"], 4)
            numbers[f"{source}_layer2_gini_rise"] = round(score["gini_rise"], 4)
            plots += plot_diagnostics(codes, 32, run.plots, prefix=f"sid_{source}_")
            if source == "long_tail":
                fixed, info = apply_fix(codes, sid.fix.model_copy(update={"kind": "adaptive", "entropy_target": 0.9}), 32)
                numbers["adaptive_removed_codes"] = len(info["removed_codes"])
                numbers["layer2_top1_share_before"] = round(diagnose(codes, 32)["per_layer"][1]["top1_share"], 4)
                numbers["layer2_top1_share_after"] = round(diagnose(fixed, 32)["per_layer"][1]["top1_share"], 4)
                split = leave_one_out(data.sequences, len(data.embeddings))
                for name, c in (("rq_kmeans", codes), ("adaptive", fixed)):
                    numbers[f"tiger_{name}_recall@10"] = round(train_and_score(sid, c, split)["recall@10"], 4)
                sas = run_sasrec(sid, split, len(data.embeddings), run.path / "sid_sasrec", torch.device("cpu"))
                numbers["sasrec_recall@10"] = round(sas["recall@10"], 4)
    finally:
        torch.set_num_threads(threads)
    body = (f"RQ-KMeans (3 x 32) on a 4,000-item synthetic catalogue with Zipf-sized clusters: layer 2's "
            f"entropy dips by {numbers['long_tail_layer2_entropy_dip']:+.3f} against layers 1 and 3 (its uniform "
            f"twin: {numbers['uniform_layer2_entropy_dip']:+.3f}). The adaptive fix removes "
            f"{int(numbers['adaptive_removed_codes'])} layer-2 codes, cutting the top code's share from "
            f"{numbers['layer2_top1_share_before']:.3f} to {numbers['layer2_top1_share_after']:.3f}. A small TIGER-style "
            f"retriever (200 steps) reaches Recall@10 {numbers['tiger_rq_kmeans_recall@10']:.4f} on the raw SIDs and "
            f"{numbers['tiger_adaptive_recall@10']:.4f} on the fixed ones; SASRec {numbers['sasrec_recall@10']:.4f}. "
            f"Demo sizes: the study is `tetrad sid hourglass`.")
    return Section("Semantic IDs (sid)", body, numbers, [str(p.relative_to(run.path)) for p in plots])
