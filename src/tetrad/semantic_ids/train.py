"""Recipes: tokenize (embeddings -> codes), diagnose (hourglass report), train and eval (retriever).

All read one `SidConfig` and write `runs/sid/<name>/`:

    quantizer.pt        the fitted quantizer (load with `quantizers.load_quantizer`)
    codes_raw.npy       items x layers, as the quantizer assigned them
    codes.npy           after the configured fix (-1 where a fix removed a token)
    diagnostics.json/md the hourglass diagnostics of both, plots/ their figures
    checkpoints/        retriever checkpoints (train; resumable with resume=true)
    best.pt             the retriever weights of the best validation so far (scored on the test users)
    sasrec/             the SASRec baseline's checkpoint
    summary.json        final metrics

`train` runs under torchrun: every process draws the same global batch of training pairs
and takes its equal shard (as in the toy recipe); evaluation runs on rank 0.

Training to convergence: every `train.eval_every` steps the retriever is scored on the
validation targets (Recall@ the largest k, on `eval.valid_users` users); the best weights are
kept and scored on the test users, and `train.patience` validations without improvement stop
the run before `train.steps` (0: never). SASRec does the same with its own `sasrec.eval_every`
and `sasrec.patience`. The summary reports the steps run, the best step and the seconds taken.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from tetrad.core.config import Config, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, RunConfig, Share
from tetrad.core.errors import UserError
from tetrad.semantic_ids.data import DataConfig, ItemData, leave_one_out, load_item_data, training_pairs


Dropout = Annotated[float, Field(ge=0.0, lt=1.0)]


class QuantizerConfig(Config):
    kind: Literal["rq_kmeans", "balanced_rq_kmeans", "rq_vae"] = "rq_kmeans"
    layers: PositiveInt = 3
    codebook_size: PositiveInt = 256
    # k-means iterations (rq_kmeans, balanced_rq_kmeans); faiss keeps them in a 32-bit int
    niter: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    # rq_vae
    latent_dim: PositiveInt = 32
    hidden: list[PositiveInt] = [256, 128]
    steps: PositiveInt = 2000
    batch_size: PositiveInt = 1024
    lr: PositiveFloat = 1e-3
    commitment: NonNegativeFloat = 0.25
    gradient: Literal["ste", "rotation"] = "rotation"
    kmeans_init: bool = True
    dead_code_window: NonNegativeInt = 100  # 0: dead codes are never reset


class FixConfig(Config):
    kind: Literal["none", "drop_layer2", "adaptive"] = "none"
    k: PositiveInt | None = None  # adaptive: remove this many top layer-2 codes ...
    entropy_target: Share | None = None  # ... or as many as it takes to reach this normalised entropy


class ModelConfig(Config):
    d_model: PositiveInt = 128
    layers: PositiveInt = 4
    heads: PositiveInt = 6
    d_kv: PositiveInt = 64
    d_ff: PositiveInt = 1024
    dropout: Dropout = 0.1
    max_history: PositiveInt = 20


class TrainConfig(Config):
    steps: PositiveInt = 2000
    batch_size: PositiveInt = 256
    lr: PositiveFloat = 1e-3
    warmup: PositiveInt = 100  # then inverse square root decay, as TIGER
    weight_decay: NonNegativeFloat = 0.01
    eval_every: PositiveInt = 500  # validation Recall@10 (the largest eval.ks) every this many steps
    patience: NonNegativeInt = 0  # stop after this many validations without improvement (0: run all steps)
    checkpoint_every: PositiveInt = 500


class EvalConfig(Config):
    beam: PositiveInt = 20
    batch_size: PositiveInt = 128
    ks: Annotated[list[PositiveInt], Field(min_length=1)] = [5, 10]
    valid_users: NonNegativeInt = 500  # users scored at each periodic validation (0: all)
    # beam scores: softmax over the whole vocabulary (false, as Hugging Face) or over the trie's allowed tokens
    renormalise: bool = False


class SasrecConfig(Config):
    enabled: bool = True
    d_model: PositiveInt = 64
    layers: PositiveInt = 2
    heads: PositiveInt = 2
    dropout: Dropout = 0.2
    steps: PositiveInt = 1000
    batch_size: PositiveInt = 128
    lr: PositiveFloat = 1e-3
    max_len: PositiveInt = 50
    eval_every: PositiveInt = 200  # validation recall every this many steps; the best weights are kept
    patience: NonNegativeInt = 0  # stop after this many validations without improvement (0: run all steps)


class SidConfig(RunConfig):
    data: DataConfig = DataConfig()
    quantizer: QuantizerConfig = QuantizerConfig()
    fix: FixConfig = FixConfig()
    collision: Literal["token", "none"] = "token"
    # auto: EOS only where an ID would be a prefix of another; always: every ID ends with EOS
    eos: Literal["auto", "always"] = "auto"
    codes: str = ""  # a codes .npy to use instead of fitting a quantizer (diagnose / train)
    quantizer_file: str = ""  # a saved quantizer.pt to encode the items with instead of fitting one
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    sasrec: SasrecConfig = SasrecConfig()


# ---- tokenize -------------------------------------------------------------------------------------


def build_quantizer(cfg: QuantizerConfig, seed: int):
    from tetrad.semantic_ids.quantizers import make_quantizer

    if cfg.kind == "rq_vae":
        return make_quantizer("rq_vae", layers=cfg.layers, codebook_size=cfg.codebook_size,
                              latent_dim=cfg.latent_dim, hidden=tuple(cfg.hidden), steps=cfg.steps,
                              batch_size=cfg.batch_size, lr=cfg.lr, commitment=cfg.commitment,
                              gradient=cfg.gradient, kmeans_init=cfg.kmeans_init,
                              dead_code_window=cfg.dead_code_window, seed=seed)
    return make_quantizer(cfg.kind, layers=cfg.layers, codebook_size=cfg.codebook_size, niter=cfg.niter, seed=seed)


def apply_fix(codes: np.ndarray, cfg: FixConfig, codebook_size: int) -> tuple[np.ndarray, dict]:
    from tetrad.semantic_ids.hourglass import adaptive_variable_length, drop_layer

    if cfg.kind == "none":
        return codes, {}
    if codes.shape[1] < 3:
        raise UserError(f"fix '{cfg.kind}' needs at least three layers (codes have {codes.shape[1]})")
    if cfg.kind == "drop_layer2":
        return drop_layer(codes, 1), {}
    fixed, removed = adaptive_variable_length(codes, codebook_size, k=cfg.k, entropy_target=cfg.entropy_target)
    return fixed, {"removed_codes": removed.tolist(), "shortened_items": int((fixed[:, 1] < 0).sum())}


def load_codes(path: str, n_items: int, codebook_size: int) -> np.ndarray:
    """A quantizer's codes (items x layers, each in [0, codebook_size)) saved as .npy."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"codes file not found: {p}")
    codes = np.load(p)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise UserError(f"{p} must hold an items x layers integer array")
    if len(codes) != n_items:
        raise UserError(f"{p} has codes for {len(codes)} items but the data has {n_items}")
    if codes.size and (codes.min() < 0 or codes.max() >= codebook_size):
        raise UserError(f"{p} holds codes outside the codebook: they must lie in [0, {codebook_size}) "
                        f"(quantizer.codebook_size), found {int(codes.min())} to {int(codes.max())}")
    return codes.astype(np.int64)


@dataclass
class Tokenized:
    codes_raw: np.ndarray
    codes: np.ndarray
    fix_info: dict


def tokenize(cfg: SidConfig, data: ItemData, run_path: Path | None) -> Tokenized:
    """Fit the quantizer (or load `cfg.codes`), apply the fix, save both under `run_path`."""
    from tetrad.core.io import atomic_write, atomic_write_json
    from tetrad.semantic_ids.quantizers import save_quantizer

    if cfg.codes:
        raw = load_codes(cfg.codes, len(data.embeddings), cfg.quantizer.codebook_size)
    elif cfg.quantizer_file:
        from tetrad.semantic_ids.quantizers import load_quantizer

        q = load_quantizer(cfg.quantizer_file)
        cfg.quantizer.codebook_size = q.codebook_size  # downstream (fix, SIDs) follows the saved codebooks
        raw = q.encode(data.embeddings)
    else:
        q = build_quantizer(cfg.quantizer, cfg.seed)
        raw = q.fit_encode(data.embeddings)
        if run_path is not None:
            save_quantizer(q, run_path / "quantizer.pt")
    codes, info = apply_fix(raw, cfg.fix, cfg.quantizer.codebook_size)
    if run_path is not None:
        # codes.npy last: its presence tells a resumed run that tokenization finished
        atomic_write(run_path / "codes_raw.npy", lambda f: np.save(f, raw))
        atomic_write_json(run_path / "fix.json", {"fix": cfg.fix.model_dump(), **info})
        atomic_write(run_path / "codes.npy", lambda f: np.save(f, codes))
    return Tokenized(raw, codes, info)


def reload_tokenized(run_path: Path) -> Tokenized | None:
    """What `tokenize` wrote into the run, or None if it did not finish."""
    if not (run_path / "codes.npy").is_file():
        return None
    info = json.loads((run_path / "fix.json").read_text())
    info.pop("fix")
    return Tokenized(np.load(run_path / "codes_raw.npy"), np.load(run_path / "codes.npy"), info)


def write_diagnostics(tok: Tokenized, codebook_size: int, run_path: Path) -> dict:
    from tetrad.core.io import atomic_write_json, atomic_write_text
    from tetrad.semantic_ids.hourglass import diagnose, format_table, hourglass_score, plot_diagnostics

    raw = diagnose(tok.codes_raw, codebook_size)
    fixed = diagnose(tok.codes, codebook_size)
    report = {"raw": raw, "fixed": fixed, "fix": tok.fix_info}
    if tok.codes_raw.shape[1] >= 3:
        report["hourglass"] = hourglass_score(raw)
    plot_diagnostics(tok.codes_raw, codebook_size, run_path / "plots", prefix="raw_")
    if tok.fix_info or tok.codes.shape != tok.codes_raw.shape:
        plot_diagnostics(tok.codes, codebook_size, run_path / "plots", prefix="fixed_")
    atomic_write_json(run_path / "diagnostics.json", report)
    text = "## Codes as quantized\n\n" + format_table(raw)
    if "hourglass" in report:
        h = report["hourglass"]
        text += f"\n\nLayer-2 entropy dip {h['entropy_dip']:+.3f}, Gini rise {h['gini_rise']:+.3f}."
    text += "\n\n## Codes after the fix\n\n" + format_table(fixed) + "\n"
    atomic_write_text(run_path / "diagnostics.md", text)
    return report


def run_tokenize(cfg: SidConfig, diagnose_too: bool = False) -> dict:
    from tetrad.core.rundir import RunDir
    from tetrad.core.seeding import seed_everything

    seed_everything(cfg.seed)
    run = RunDir("sid", cfg, tensorboard=False)
    data = load_item_data(cfg.data, cfg.seed, cache_dir=Path(cfg.root) / "sid" / "_cache")
    tok = tokenize(cfg, data, run.path)
    out = {"items": len(tok.codes), "layers": int(tok.codes_raw.shape[1]), "run": str(run.path)}
    if diagnose_too:
        report = write_diagnostics(tok, cfg.quantizer.codebook_size, run.path)
        out["diagnostics"] = str(run.path / "diagnostics.md")
        out["hourglass"] = report.get("hourglass")
    run.write_summary(out)
    return out


# ---- retriever ------------------------------------------------------------------------------------


def _schedule(step: int, warmup: int) -> float:
    """Linear warm-up, then inverse square root decay (TIGER's schedule), as a multiplier of lr."""
    step = max(step, 1)
    return step / warmup if step < warmup else math.sqrt(warmup / step)


def evaluate_retriever(model, sids, histories, targets, cfg: SidConfig, device, per_user: bool = False) -> dict:
    """Recall@k and NDCG@k of the beam search's top items (each user's values too with `per_user`)."""
    from tetrad.semantic_ids.anchors import score_ranking
    from tetrad.semantic_ids.retriever import constrained_beam_search, history_tokens, rank_items
    from tetrad.semantic_ids.sids import Trie

    uniq, groups = sids.item_groups()
    trie = Trie.build(uniq)
    k_max = max(cfg.eval.ks)
    if cfg.eval.beam < k_max and cfg.collision == "token":
        raise UserError(f"eval.beam ({cfg.eval.beam}) must be at least the largest k ({k_max})")
    model.eval()
    ranked = []
    for start in range(0, len(targets), cfg.eval.batch_size):
        ids, mask = history_tokens(sids, histories[start:start + cfg.eval.batch_size], cfg.model.max_history)
        g, _ = constrained_beam_search(model, ids.to(device), mask.to(device), trie, cfg.eval.beam,
                                       renormalise=cfg.eval.renormalise)
        ranked.append(rank_items(g.cpu(), groups, k_max))
    model.train()
    return score_ranking(np.concatenate(ranked), targets, cfg.eval.ks, per_user)


def build_sids_for(cfg: SidConfig, codes: np.ndarray):
    from tetrad.semantic_ids.sids import build_sids

    return build_sids(codes, cfg.quantizer.codebook_size, collision=cfg.collision,
                      eos=True if cfg.eos == "always" else None)


def _make_model(cfg: SidConfig, vocab: int):
    from tetrad.semantic_ids.retriever import make_t5

    m = cfg.model
    return make_t5(vocab, d_model=m.d_model, layers=m.layers, heads=m.heads, d_kv=m.d_kv, d_ff=m.d_ff,
                   dropout=m.dropout)


def make_optimizer(model, cfg: TrainConfig):
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _schedule(s + 1, cfg.warmup))


def retriever_step(model, opt, sched, sids, histories, targets, max_history: int, device) -> float:
    """One teacher-forced step: cross-entropy of the targets' SID tokens given the histories."""
    from tetrad.semantic_ids.retriever import history_tokens, target_labels

    ids, mask = history_tokens(sids, histories, max_history)
    labels = target_labels(sids, targets)
    loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def save_best(path: Path, model, step: int, value: float) -> None:
    from tetrad.core.io import atomic_write

    payload = {"step": step, "valid": value, "model": model.state_dict()}
    atomic_write(path, lambda f: torch.save(payload, f))


def run_train(cfg: SidConfig) -> dict:
    from tetrad.core.distributed import all_gather_objects, barrier, cleanup, init_distributed, is_main, shard
    from tetrad.core.early_stopping import EarlyStopping
    from tetrad.core.progress import progress
    from tetrad.core.rundir import RunDir
    from tetrad.core.seeding import seed_everything

    info = init_distributed()
    seed_everything(cfg.seed)
    run = RunDir("sid", cfg)
    data = load_item_data(cfg.data, cfg.seed, cache_dir=Path(cfg.root) / "sid" / "_cache")
    split = leave_one_out(data.sequences, len(data.embeddings))
    tok = reload_tokenized(run.path) if cfg.resume else None
    if tok is None:
        # every rank fits the same quantizer from the same seed; only rank 0 writes the files
        tok = tokenize(cfg, data, run.path if is_main() else None)
    # diagnostics.md is written last: a run stopped before it gets its diagnostics on resume
    if is_main() and not (run.path / "diagnostics.md").is_file():
        write_diagnostics(tok, cfg.quantizer.codebook_size, run.path)
    barrier()
    sids = build_sids_for(cfg, tok.codes)
    hist, target = training_pairs(split.train, cfg.model.max_history)

    model = _make_model(cfg, sids.vocab_size).to(info.device)
    if info.world_size > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt, sched = make_optimizer(model, cfg.train)
    begin = run.restore(cfg.resume, model=model, optimizer=opt, scheduler=sched)
    start, state = begin["step"], begin["state"]
    stopper = EarlyStopping(cfg.train.patience)
    stopper.load_state_dict(state.get("early_stopping", {}))
    seconds = state.get("seconds", 0.0)  # training time of earlier sessions (resume=true)
    started = time.perf_counter()
    valid_n = cfg.eval.valid_users or len(split.valid[1])
    bare = model.module if info.world_size > 1 else model
    monitor = f"recall@{max(cfg.eval.ks)}"
    step = start
    for step in progress(range(start + 1, (start if stopper.stop else cfg.train.steps) + 1), desc="retriever"):
        idx = torch.randint(0, len(target), (cfg.train.batch_size,))[shard(cfg.train.batch_size)].tolist()
        loss = retriever_step(model, opt, sched, sids, [hist[i] for i in idx], [target[i] for i in idx],
                              cfg.model.max_history, info.device)
        metrics = {"loss": loss, "lr": sched.get_last_lr()[0]}
        stop = False
        if step % cfg.train.eval_every == 0:
            if is_main():
                valid = evaluate_retriever(bare, sids, split.valid[0][:valid_n], split.valid[1][:valid_n], cfg,
                                           info.device)
                metrics.update({f"valid_{k}": v for k, v in valid.items()})
                if stopper.update(step, valid[monitor]):
                    save_best(run.path / "best.pt", bare, step, valid[monitor])
            stop = all_gather_objects(stopper.stop)[0]  # rank 0 validates; every rank stops with it
        run.log(step, metrics)
        if step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps or stop:
            run.checkpointer.save(step, model=model, optimizer=opt, scheduler=sched,
                                  state={"early_stopping": stopper.state_dict(),
                                         "seconds": seconds + time.perf_counter() - started})
        if stop:
            break
    seconds += time.perf_counter() - started
    summary = {}
    if is_main():
        if stopper.best_step >= 0:  # the test scores the best validated weights, not the last
            bare.load_state_dict(torch.load(run.path / "best.pt", weights_only=True)["model"])
        summary = {"tiger": evaluate_retriever(bare, sids, *split.test, cfg, info.device),
                   "steps": step, "best_step": stopper.best_step,
                   "best_valid": stopper.best if stopper.best_step >= 0 else None,
                   "stopped_early": stopper.stop, "train_seconds": seconds,
                   "sid_length_mean": float(sids.lengths.mean()), "vocab": sids.vocab_size,
                   "items": len(sids.tokens)}
        if cfg.sasrec.enabled:
            summary["sasrec"] = run_sasrec(cfg, split, len(data.embeddings), run.path / "sasrec", info.device)
        run.write_summary(summary)
    run.close()
    barrier()
    cleanup()
    return summary


def run_sasrec(cfg: SidConfig, split, n_items: int, directory: Path, device, per_user: bool = False) -> dict:
    """Train (or reload) the SASRec baseline on the same split and score it on the test users.

    Batches of `training_windows` are drawn epoch by epoch; every `sasrec.eval_every` steps the
    validation recall (largest k, `eval.valid_users` users) is measured, the best weights kept,
    and `sasrec.patience` validations without improvement stop training. The checkpoint holds
    the best weights; the result adds the steps run, the best step and the training seconds.
    """
    from tetrad.core.checkpoint import Checkpointer
    from tetrad.core.early_stopping import EarlyStopping
    from tetrad.semantic_ids.anchors import score_ranking
    from tetrad.semantic_ids.retriever import SASRec, left_pad, training_windows

    s = cfg.sasrec
    k = max(cfg.eval.ks)
    gen = torch.Generator().manual_seed(cfg.seed)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        model = SASRec(n_items, s.d_model, s.layers, s.heads, s.max_len, s.dropout).to(device)

    def ranked_for(histories) -> np.ndarray:
        model.eval()
        out = np.concatenate([model.top_k(left_pad([[i + 1 for i in h] for h in histories[a:a + 256]], s.max_len)
                                          .to(device), k).cpu().numpy() - 1 for a in range(0, len(histories), 256)])
        model.train()
        return out

    ckpt = Checkpointer(directory, keep=1)
    if ckpt.latest() is not None:
        info = ckpt.load(model=model, restore_rng=False)["state"]
    else:
        inputs, targets = training_windows([[i + 1 for i in t] for t in split.train if len(t) >= 2], s.max_len)
        if not inputs:
            raise UserError("no SASRec training windows: users need at least 4 interactions")
        valid_n = cfg.eval.valid_users or len(split.valid[1])
        valid_hist, valid_target = split.valid[0][:valid_n], split.valid[1][:valid_n]
        opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
        stopper = EarlyStopping(s.patience)
        best_state = {n: v.detach().clone() for n, v in model.state_dict().items()}
        started = time.perf_counter()
        order = torch.randperm(len(inputs), generator=gen)
        at, step = 0, 0
        for step in range(1, s.steps + 1):
            if at + s.batch_size > len(order):  # a new epoch
                order, at = torch.randperm(len(inputs), generator=gen), 0
            batch = order[at:at + s.batch_size].tolist()
            at += s.batch_size
            loss = model.loss(left_pad([inputs[i] for i in batch], s.max_len).to(device),
                              left_pad([targets[i] for i in batch], s.max_len).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % s.eval_every == 0:
                recall = score_ranking(ranked_for(valid_hist), valid_target, [k])[f"recall@{k}"]
                if stopper.update(step, recall):
                    best_state = {n: v.detach().clone() for n, v in model.state_dict().items()}
                if stopper.stop:
                    break
        if stopper.best_step >= 0:
            model.load_state_dict(best_state)
        info = {"steps": step, "best_step": stopper.best_step if stopper.best_step >= 0 else step,
                "train_seconds": time.perf_counter() - started}
        ckpt.save(step, model=model, state=info)
    return {**score_ranking(ranked_for(split.test[0]), split.test[1], cfg.eval.ks, per_user), **info}


def run_eval(cfg: SidConfig, split_name: str = "test") -> dict:
    """Score the retriever of run `cfg.name` on the test (or valid) users: its best validated
    weights (`best.pt`, what the run's summary scored), else its latest checkpoint."""
    from tetrad.core.checkpoint import Checkpointer
    from tetrad.core.io import atomic_write_json
    from tetrad.core.seeding import seed_everything

    seed_everything(cfg.seed)
    path = Path(cfg.root) / "sid" / cfg.name
    tok = reload_tokenized(path)
    if tok is None:
        raise UserError(f"no trained run at {path}: run `tetrad sid train` with name={cfg.name} first")
    data = load_item_data(cfg.data, cfg.seed, cache_dir=Path(cfg.root) / "sid" / "_cache")
    split = leave_one_out(data.sequences, len(data.embeddings))
    if len(tok.codes) != len(data.embeddings):
        raise UserError(f"run {path} was tokenized for {len(tok.codes)} items but the data has {len(data.embeddings)}")
    sids = build_sids_for(cfg, tok.codes)
    model = _make_model(cfg, sids.vocab_size)
    if (path / "best.pt").is_file():
        best = torch.load(path / "best.pt", weights_only=True)
        model.load_state_dict(best["model"])
        step = best["step"]
    else:
        step = Checkpointer(path / "checkpoints").load(model=model, restore_rng=False)["step"]
    hist, targets = split.test if split_name == "test" else split.valid
    out = {"step": step, "split": split_name, **evaluate_retriever(model, sids, hist, targets, cfg, torch.device("cpu"))}
    atomic_write_json(path / f"eval_{split_name}.json", out)
    return out
