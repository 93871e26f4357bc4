"""Training and inference throughput, FLOPs per sample and MFU of every ranking model.

    python benchmarks/ranking_throughput.py [--preset 15m] [--batch 512] [--steps 5] [--threads 2] [--rounds 1]

For each model at the preset (baselines' backbones matched to MTmixAtt's):
training samples/s (forward + backward + Adam), inference samples/s (no grad), FLOPs per
sample of one forward pass (counted by torch.utils.flop_counter: matmuls, convolutions,
attention) and MFU = achieved training FLOP/s / peak, where training FLOPs = 3 x forward
and the peak is the best dense fp32 matmul rate (a 2048^3 matmul) measured in this same run,
before the first model and after each.
Inputs are synthetic batches in the schema of the default synthetic log. Prints a markdown
table; medians over `--steps` timed steps after one warm-up step, pooled over `--rounds`
sweeps of all models: on a machine shared with other jobs, interleaving the models spreads
the load over all of them, so the ratios between models are fairer than the absolute rates.

    python benchmarks/ranking_throughput.py --stream runs/data/ranking-10m [--batch 4096]

instead decodes every training batch of a dataset folder (as `tetrad ranking train` streams
it) and reports rows, rows/s and the process's peak resident memory: the data path's memory
does not grow with the dataset.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from tetrad.data.ctr_synthetic import SyntheticCTRConfig, synthetic_schema
from tetrad.data.ctr_synthetic import CTRSchema
from tetrad.ranking.data import Batch, FeatureSet, iter_batches, select_features
from tetrad.ranking.heads import multitask_loss
from tetrad.ranking.models import BACKBONES, ModelConfig, build_model, dense_parameter_count


def random_batch(features: FeatureSet, n: int, gen: torch.Generator) -> Batch:
    cat = torch.stack([torch.randint(0, f.cardinality, (n,), generator=gen) for f in features.categorical], 1)
    num = torch.rand(n, len(features.numeric), generator=gen) * 10
    mh = [torch.randint(0, f.cardinality + 1, (n, f.max_len), generator=gen) for f in features.multihot]
    scen = torch.randint(0, features.n_scenarios, (n,), generator=gen)
    click = (torch.rand(n, generator=gen) < 0.2).float()
    return Batch(cat, num, mh, scen, torch.zeros(n, dtype=torch.long), click, click * (torch.rand(n) < 0.3))


def peak_matmul_flops(size: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * size ** 3 / min(times)


def forward_flops(model, batch: Batch) -> float:
    """Counted in training mode: in eval mode nn.TransformerEncoderLayer takes a fused kernel
    that the counter does not see."""
    model.train()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*batch.inputs())
    return counter.get_total_flops() / len(batch)


def measure(name: str, preset: str, features: FeatureSet, batch: Batch, steps: int) -> dict:
    """One sweep's step times (seconds) of `name`, training and inference, and its size and FLOPs."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, preset=preset, hash_buckets=20_000), features)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train_step():
        ctr, cvr = model(*batch.inputs())
        loss = multitask_loss(ctr, cvr, batch.click, batch.conversion) + model.aux_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn) -> list[float]:
        fn()  # warm-up
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return times

    t_train = timed(train_step)
    model.eval()
    with torch.no_grad():
        t_infer = timed(lambda: model(*batch.inputs()))
    return {"model": name, "dense_params": dense_parameter_count(model), "flops": forward_flops(model, batch),
            "train_times": t_train, "infer_times": t_infer}


def stream(path: Path, batch_size: int) -> None:
    features = select_features(CTRSchema.load(path))
    rows, t = 0, time.perf_counter()
    for b in iter_batches(path / "train", features, batch_size, drop_last=False):
        rows += len(b)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"streamed {rows:,} rows of {path / 'train'} in batches of {batch_size} in {seconds:.0f} s "
          f"({rows / seconds:,.0f} rows/s); peak resident memory {peak:,.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="15m")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="sweeps over all models, interleaved")
    ap.add_argument("--models", nargs="*", default=list(BACKBONES))
    ap.add_argument("--stream", type=Path, default=None, help="a dataset folder to stream instead")
    args = ap.parse_args()
    if args.stream is not None:
        return stream(args.stream, args.batch)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    features = select_features(synthetic_schema(SyntheticCTRConfig()))
    batch = random_batch(features, args.batch, torch.Generator().manual_seed(0))
    # the peak is re-measured after every model and the best kept: on a shared machine one
    # measurement can land in a busy moment and make every MFU look too high
    peak = peak_matmul_flops()
    rows: dict[str, dict] = {}
    for _ in range(args.rounds):
        for m in args.models:
            r = measure(m, args.preset, features, batch, args.steps)
            if m in rows:
                rows[m]["train_times"] += r["train_times"]
                rows[m]["infer_times"] += r["infer_times"]
            else:
                rows[m] = r
            peak = max(peak, peak_matmul_flops())
    for r in rows.values():
        r["train_sps"] = len(batch) / statistics.median(r["train_times"])
        r["infer_sps"] = len(batch) / statistics.median(r["infer_times"])
    ref = rows.get("rankmixer")
    print(f"preset {args.preset}, batch {args.batch}, {args.threads} threads, median of {args.steps} steps x "
          f"{args.rounds} rounds; measured fp32 matmul peak {peak / 1e9:.1f} GFLOP/s\n")
    print("| model | dense params | MFLOPs/sample (fwd) | train samples/s | infer samples/s | train MFU "
          "| train vs RankMixer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows.values():
        mfu = 3 * r["flops"] * r["train_sps"] / peak
        rel = f"{r['train_sps'] / ref['train_sps']:.2f}x" if ref else "–"
        print(f"| {r['model']} | {r['dense_params']:,} | {r['flops'] / 1e6:.1f} | {r['train_sps']:,.0f} | "
              f"{r['infer_sps']:,.0f} | {100 * mfu:.1f}% | {rel} |")


if __name__ == "__main__":
    main()
