"""`tetrad demo` part: a quick MTmixAtt vs RankMixer run on a small synthetic log."""

from __future__ import annotations

from tetrad.core.rundir import RunDir
from tetrad.demo import DemoConfig, Section

MODELS = ("mtmixatt", "rankmixer")


def demo_part(run: RunDir, cfg: DemoConfig) -> Section:
    from tetrad.ranking.train import DataConfig, TrainConfig, train

    data = DataConfig(source="synthetic", path=str(run.path / "ranking-data"))
    data.synthetic.rows, data.synthetic.users, data.synthetic.items = 20_000, 500, 2_000
    data.synthetic.seed = cfg.seed
    numbers: dict[str, float] = {}
    for name in MODELS:
        s = train(TrainConfig(name=name, root=str(run.path), seed=cfg.seed, data=data,
                              model={"name": name, "preset": "tiny", "hash_buckets": 5_000},
                              batch_size=256, epochs=1, lr=0.003, checkpoint_every=10_000))
        numbers[f"{name}_dense_params"] = float(s["dense_params"])
        for k in ("ctr_auc", "ctr_gauc", "ctcvr_auc", "ctcvr_gauc"):
            numbers[f"{name}_{k}"] = round(s[k], 4)
            numbers[f"oracle_{k}"] = round(s[f"oracle/{k}"], 4)
    body = (f"A 20,000-impression synthetic log (3 scenarios, 43 features, click -> conversion funnel, true "
            f"probabilities known) and one epoch of MTmixAtt and RankMixer at the tiny preset, matched in dense "
            f"parameters ({int(numbers['mtmixatt_dense_params']):,} vs {int(numbers['rankmixer_dense_params']):,}). "
            f"CTR AUC: MTmixAtt {numbers['mtmixatt_ctr_auc']:.4f}, RankMixer {numbers['rankmixer_ctr_auc']:.4f}, "
            f"oracle {numbers['oracle_ctr_auc']:.4f}; CTCVR AUC: {numbers['mtmixatt_ctcvr_auc']:.4f}, "
            f"{numbers['rankmixer_ctcvr_auc']:.4f}, oracle {numbers['oracle_ctcvr_auc']:.4f}. So little data is "
            f"a smoke test, not a verdict: `tetrad ranking compare` makes the comparison.")
    return Section("MTmixAtt ranking (synthetic multi-scenario log)", body, numbers)
