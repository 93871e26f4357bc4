import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tetrad.core.errors import UserError
from tetrad.llm.grpo import group_advantages, grpo_loss, grpo_token_losses, k3_kl
from tetrad.llm.logprobs import packed_continuation_logprobs, token_logprobs
from tetrad.llm.models import ModelSpec, char_tokenizer, load_policy, save_policy
from tetrad.llm.sampling import Rollouts, SamplingParams, sample
from tetrad.llm.update import PolicyUpdater, UpdateConfig, warmup_cosine

TINY = ModelSpec(kind="tiny", hidden=32, layers=1, heads=2)


@pytest.fixture
def policy():
    torch.manual_seed(0)
    return load_policy(TINY)


def test_char_tokenizer_round_trip():
    tok = char_tokenizer("0123456789+= ")
    ids = tok("12 + 3 =")["input_ids"]
    assert len(ids) == 8 and tok.decode(ids) == "12 + 3 ="
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == "12 + 3 ="


def test_sampling_layout_masks_and_stop_strings(policy):
    model, tok = policy
    torch.manual_seed(1)
    r = sample(model, tok, ["1+2 =", "34+5 ="], 3, SamplingParams(max_new_tokens=8, stop=["="]))
    assert len(r) == 6 and r.group_size == 3
    assert torch.equal(r.prompt_ids[0], r.prompt_ids[2]) and not torch.equal(r.prompt_ids[0], r.prompt_ids[3])
    for i, text in enumerate(r.texts):
        n = int(r.response_mask[i].sum())
        assert r.response_mask[i, :n].all() and not r.response_mask[i, n:].any()  # contiguous from the start
        if "=" in text:
            assert text.endswith("=") and text.count("=") == 1  # cut at the stop string
            assert tok.decode(r.response_ids[i, :n], skip_special_tokens=True) == text
    # the first M of each group, in order
    first = r.first_of_each_group(2)
    assert first.texts == [r.texts[0], r.texts[1], r.texts[3], r.texts[4]] and first.group_size == 2
    with pytest.raises(UserError):
        r.first_of_each_group(4)


def test_greedy_sampling_is_deterministic_and_seeded_sampling_repeats(policy):
    model, tok = policy
    a = sample(model, tok, ["7+8 ="], 2, SamplingParams(temperature=0, max_new_tokens=5))
    assert a.texts[0] == a.texts[1]
    torch.manual_seed(3)
    b = sample(model, tok, ["7+8 ="], 4, SamplingParams(max_new_tokens=5))
    torch.manual_seed(3)
    c = sample(model, tok, ["7+8 ="], 4, SamplingParams(max_new_tokens=5))
    assert b.texts == c.texts and torch.equal(b.response_ids, c.response_ids)


def test_seeded_sampling_leaves_the_global_stream_and_concat_repads(policy):
    model, tok = policy
    params = SamplingParams(max_new_tokens=5)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a = sample(model, tok, ["1+2 =", "34+5 ="], 3, params, seed=9)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream did not move
    b = sample(model, tok, ["1+2 =", "34+5 ="], 3, params, seed=9)
    assert a.texts == b.texts and torch.equal(a.response_ids, b.response_ids)
    short, long = (sample(model, tok, [p], 2, params, seed=s) for s, p in ((1, "1 ="), (2, "123+45+6 =")))
    both = Rollouts.concat([short, long], tok.pad_token_id)
    assert both.texts == short.texts + long.texts and both.group_size == 2 and len(both) == 4
    assert both.prompt_ids.shape[1] == long.prompt_ids.shape[1] and both.prompt_mask[:2].sum() == short.prompt_mask.sum()
    # the re-padded short rows score exactly as they did alone
    lp_both = token_logprobs(model, both.prompt_ids, both.prompt_mask, both.response_ids, both.response_mask)
    lp_short = token_logprobs(model, short.prompt_ids, short.prompt_mask, short.response_ids, short.response_mask)
    assert torch.allclose(lp_both[:2, :lp_short.shape[1]], lp_short, atol=1e-5)
    assert Rollouts.concat([short], tok.pad_token_id) is short
    with pytest.raises(UserError):
        Rollouts.concat([short, sample(model, tok, ["1 ="], 3, params, seed=1)], tok.pad_token_id)


def test_logprobs_ignore_padding_and_match_a_manual_forward(policy):
    model, tok = policy
    prompt = torch.tensor([tok("12+3 =")["input_ids"]])
    resp = torch.tensor([tok("15")["input_ids"] + [tok.eos_token_id]])
    ones = torch.ones_like
    alone = token_logprobs(model, prompt, ones(prompt), resp, ones(resp))
    full = torch.cat([prompt, resp], 1)
    logits = model(full).logits[0, prompt.shape[1] - 1:-1]
    manual = torch.log_softmax(logits, -1).gather(-1, resp[0].unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(alone[0], manual, atol=1e-5)
    # the same pair left-padded (prompt) and right-padded (response) inside a batch
    pad = tok.pad_token_id
    p2 = torch.cat([torch.full((1, 3), pad), prompt], 1)
    r2 = torch.cat([resp, torch.full((1, 2), pad)], 1)
    m_p = torch.cat([torch.zeros(1, 3, dtype=torch.long), ones(prompt)], 1)
    m_r = torch.cat([ones(resp), torch.zeros(1, 2, dtype=torch.long)], 1)
    padded = token_logprobs(model, p2, m_p, r2, m_r)
    assert torch.allclose(padded[0, :resp.shape[1]], alone[0], atol=1e-5)
    assert (padded[0, resp.shape[1]:] == 0).all()


def test_packed_continuations_score_as_if_each_followed_its_prompt_alone(policy):
    model, tok = policy
    prompts = [tok("12+3 =")["input_ids"], tok("7*8=")["input_ids"]]  # of different lengths
    continuations = [[tok("15")["input_ids"], tok("1")["input_ids"], tok("153")["input_ids"]],
                     [tok("56")["input_ids"]]]
    logp, mask = packed_continuation_logprobs(model, prompts, continuations, tok.pad_token_id)
    flat = [(p, c) for p, conts in zip(prompts, continuations) for c in conts]
    assert logp.shape[0] == len(flat) == 4
    for row, (p, c) in enumerate(flat):
        alone = token_logprobs(model, torch.tensor([p]), torch.ones(1, len(p), dtype=torch.long),
                               torch.tensor([c]), torch.ones(1, len(c), dtype=torch.long))[0]
        assert mask[row].sum() == len(c) and (logp[row, len(c):] == 0).all()
        assert torch.allclose(logp[row, :len(c)], alone, atol=1e-5)
    # gradients reach the prompt's tokens through the continuations
    logp.sum().backward()
    assert model.get_input_embeddings().weight.grad[prompts[0][0]].abs().sum() > 0


def test_group_advantages_by_hand():
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]), 4)
    # group 1: mean 0.5, population std 0.5 -> +-1; group 2: identical rewards -> 0
    assert torch.allclose(adv, torch.tensor([1.0, -1, -1, 1, 0, 0, 0, 0]), atol=1e-5)
    assert torch.allclose(group_advantages(torch.tensor([3.0, 1.0]), 2, normalise_std=False), torch.tensor([1.0, -1]))
    with pytest.raises(UserError):
        group_advantages(torch.ones(5), 2)
    with pytest.raises(UserError):
        group_advantages(torch.tensor([1.0, float("nan")]), 2)


def test_clipped_loss_and_k3_by_hand():
    old = torch.zeros(1, 2)
    logp = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    pos = grpo_token_losses(logp, old, torch.tensor([2.0]), clip_eps=0.2)
    assert torch.allclose(pos, torch.tensor([[-1.2 * 2, -0.5 * 2]]))  # min(rho A, clip(rho) A) for A > 0
    neg = grpo_token_losses(logp, old, torch.tensor([-2.0]), clip_eps=0.2)
    assert torch.allclose(neg, torch.tensor([[1.5 * 2, 0.8 * 2]]))
    mask = torch.tensor([[1.0, 0.0]])
    assert torch.isclose(grpo_loss(logp, old, torch.tensor([2.0]), mask), torch.tensor(-2.4))
    assert torch.isclose(grpo_loss(logp, old, torch.tensor([2.0]), mask, n_tokens=4), torch.tensor(-0.6))
    assert torch.equal(k3_kl(logp, logp), torch.zeros(1, 2))
    d = torch.tensor(0.3)
    assert torch.isclose(k3_kl(torch.tensor(0.0), d), torch.exp(d) - d - 1) and k3_kl(torch.tensor(0.0), d) > 0


def test_warmup_then_cosine():
    f = warmup_cosine(100, 0.1, 0.0)
    assert [round(f(s), 6) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert math.isclose(f(55), 0.5, abs_tol=1e-9) and f(100) == pytest.approx(0.0) and f(30) > f(60)


def _rollouts(model, tok, seed=0):
    torch.manual_seed(seed)
    return sample(model, tok, ["1+1 =", "2+5 =", "9+9 =", "3+4 ="], 4, SamplingParams(max_new_tokens=4))


def test_update_raises_logprob_of_rewarded_responses(policy):
    model, tok = policy
    r = _rollouts(model, tok)
    reward = torch.tensor([1.0, 0, 0, 0] * 4)
    with torch.no_grad():
        before = token_logprobs(model, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask).sum(1)
    up = PolicyUpdater(model, UpdateConfig(lr=1e-2, warmup_ratio=0.0, micro_batch=16))
    for _ in range(3):
        up.step(r, reward)
    with torch.no_grad():
        after = token_logprobs(model, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask).sum(1)
    rewarded = torch.arange(16) % 4 == 0
    assert ((after - before)[rewarded]).mean() > 0 > ((after - before)[~rewarded]).mean()


def test_accumulation_matches_one_big_batch():
    def trained(micro):
        torch.manual_seed(0)
        model, tok = load_policy(TINY)
        r = _rollouts(model, tok)
        up = PolicyUpdater(model, UpdateConfig(lr=1e-2, micro_batch=micro, kl_coef=0.1, epochs=2))
        up.step(r, torch.arange(16.0) % 3)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.allclose(trained(16), trained(6), atol=1e-5)  # float summation order only


def test_hook_sits_between_advantages_and_update(policy):
    model, tok = policy
    r = _rollouts(model, tok)
    seen = []

    def zero(adv, rollouts, context):
        seen.append((adv.clone(), context["tag"]))
        return torch.zeros_like(adv)

    before = [p.detach().clone() for p in model.parameters()]
    up = PolicyUpdater(model, UpdateConfig(lr=1e-2, warmup_ratio=0.0), hooks=[zero])
    up.step(r, torch.tensor([1.0, 0, 0, 0] * 4), {"tag": "x"})
    assert seen[0][1] == "x" and torch.allclose(seen[0][0], group_advantages(torch.tensor([1.0, 0, 0, 0] * 4), 4))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # zero advantages: no change


def test_loading_errors_and_hf_round_trip(tmp_path, policy):
    with pytest.raises(UserError, match="not found"):
        load_policy(ModelSpec(kind="hf", path=str(tmp_path / "missing")))
    with pytest.raises(UserError, match="no config.json"):
        load_policy(ModelSpec(kind="hf", path=str(tmp_path)))
    model, tok = policy
    save_policy(model, tok, tmp_path / "m")
    again, tok2 = load_policy(ModelSpec(kind="hf", path=str(tmp_path / "m")))
    ids = torch.tensor([tok("1+2 =")["input_ids"]])
    assert tok2("1+2 =")["input_ids"] == ids[0].tolist()
    assert torch.allclose(model(ids).logits, again(ids).logits)
    for garbage in ("{garbage", '{"model_type": "nonsense"}', '{"model_type": "llama", "hidden_size": "x"}'):
        (tmp_path / "m" / "config.json").write_text(garbage)
        with pytest.raises(UserError, match="cannot load the model in"):
            load_policy(ModelSpec(kind="hf", path=str(tmp_path / "m")))


DDP_SCRIPT = Path(__file__).with_name("ddp_update.py")


def test_two_processes_take_the_same_step_as_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = []
    for nproc in (1, 2):
        out = tmp_path / f"params{nproc}.pt"
        subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}",
                        "--master-port", str(29611 + nproc), str(DDP_SCRIPT), str(out)],
                       check=True, env=env, capture_output=True, timeout=300)
        outs.append(torch.load(out))
    assert not torch.equal(outs[0]["start"], outs[0]["end"])
    assert torch.allclose(outs[0]["end"], outs[1]["end"], atol=1e-5)
    assert outs[0]["loss"] == pytest.approx(outs[1]["loss"], abs=1e-6)


@pytest.mark.slow
def test_smollm2_loads_from_the_gguf_wheel_and_scores_responses():
    model, tok = load_policy(ModelSpec(kind="smollm2"))
    assert sum(p.numel() for p in model.parameters()) > 100e6
    torch.manual_seed(0)
    r = sample(model, tok, ["What is 2+2?"], 2, SamplingParams(max_new_tokens=8), chat=True)
    lp = token_logprobs(model, r.prompt_ids, r.prompt_mask, r.response_ids, r.response_mask)
    assert torch.isfinite(lp).all() and (lp <= 0).all()


def test_the_update_scores_tokens_at_the_sampling_temperature(policy):
    """Sampled at temperature 0.6, the update's log-probs are the sampler's own: the on-policy ratio
    is 1. The sampler's log-probs come from `generate`'s processed scores (logits / 0.6, top-p 1)."""
    model, tok = policy
    torch.manual_seed(0)
    enc = tok(["1+1 =", "9+9 ="], return_tensors="pt", padding=True)
    out = model.generate(**enc, do_sample=True, temperature=0.6, top_p=1.0, top_k=0, max_new_tokens=4,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, output_scores=True,
                         return_dict_in_generate=True)
    resp = out.sequences[:, enc["input_ids"].shape[1]:]
    ended = (resp == tok.eos_token_id).long().cumsum(1)
    mask = ((ended == 0) | ((ended == 1) & (resp == tok.eos_token_id))).long()  # up to the first EOS
    sampler = torch.stack([torch.log_softmax(s.float(), -1) for s in out.scores], 1)
    sampler = sampler.gather(-1, resp.unsqueeze(-1)).squeeze(-1) * mask
    r = Rollouts(enc["input_ids"], enc["attention_mask"], resp, mask, ["", ""])

    def ratio(temperature):
        up = PolicyUpdater(model, UpdateConfig(), temperature=temperature)
        with torch.no_grad():
            return torch.exp(up._logp(up.model, r) - sampler)[mask.bool()]

    assert mask.sum() > 2 and torch.allclose(ratio(0.6), torch.tensor(1.0), atol=1e-4)
    assert not torch.allclose(ratio(1.0), torch.tensor(1.0), atol=1e-2)  # the old default is not on-policy
    with pytest.raises(UserError, match="sampling temperature"):
        PolicyUpdater(model, UpdateConfig(), temperature=0.0)
    from tetrad.core.config import load_config

    with pytest.raises(UserError, match="logp_temperature"):
        load_config(UpdateConfig, None, ["logp_temperature=0.6"])  # no second temperature to disagree


def test_mini_batches_take_one_step_per_slice_of_prompts():
    """mini_batches=2 on 4 prompts: two optimizer steps (and schedule steps), the first trained on
    prompts 0-1 only, the second on 2-3 only, both against log-probs of the policy that sampled."""
    def fresh():
        torch.manual_seed(0)
        model, tok = load_policy(TINY)
        return model, tok, _rollouts(model, tok)

    model, tok, r = fresh()
    reward = torch.arange(16.0) % 3
    up = PolicyUpdater(model, UpdateConfig(lr=1e-2, warmup_ratio=0.0, mini_batches=2, total_steps=10))
    events, after_first = [], []
    real_logp = up._logp

    def logp(m, mb):
        prompts = {tok.decode(p[p != tok.pad_token_id].tolist()) for p in mb.prompt_ids}
        events.append(("train" if torch.is_grad_enabled() else "old", frozenset(prompts)))
        return real_logp(m, mb)

    def stepped(*_):
        events.append(("step", None))
        after_first.append([p.detach().clone() for p in model.parameters()])

    up._logp = logp
    up.optimizer.register_step_post_hook(stepped)
    up.step(r, reward)
    first, second = frozenset({"1+1 =", "2+5 ="}), frozenset({"9+9 =", "3+4 ="})
    assert events == [("old", first), ("old", second), ("train", first), ("step", None), ("train", second),
                      ("step", None)]
    assert up.scheduler.last_epoch == 2
    # the first step is exactly a one-step update on the first two prompts alone
    model2, _, r2 = fresh()
    PolicyUpdater(model2, UpdateConfig(lr=1e-2, warmup_ratio=0.0, total_steps=10)).step(r2.select(range(8)), reward[:8])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(after_first[0], model2.parameters()))
    # more mini-batches than prompts: one per prompt; a bad value is a one-line config error
    up = PolicyUpdater(fresh()[0], UpdateConfig(lr=1e-2, mini_batches=9))
    up.step(r, reward)
    assert up.scheduler.last_epoch == 4
    from tetrad.core.config import load_config

    with pytest.raises(UserError, match="config key 'mini_batches'"):
        load_config(UpdateConfig, None, ["mini_batches=0"])
