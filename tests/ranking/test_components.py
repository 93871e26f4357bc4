import pytest
import torch

from tetrad.core.errors import UserError
from tetrad.ranking.blocks import (DenseMoE, MTmixAttBlock, MultiMixAttention, ScenarioSparseMoE, TokenExperts,
                                   transpose_mix)
from tetrad.ranking.heads import MultiTaskHeads, multitask_loss, probabilities
from tetrad.ranking.tokenizers import AutoToken

torch.manual_seed(0)


def test_autotoken_takes_top_k_features_per_token_and_ignores_the_rest():
    tok = AutoToken(n_features=10, e=4, n_tokens=3, k=2, d=5)
    with torch.no_grad():
        tok.select.zero_()
        tok.select[0, [1, 7]] = 3.0
        tok.select[1, [2, 3]] = 3.0
        tok.select[2, [0, 9]] = 3.0
    index, weight = tok.members()
    assert [sorted(r) for r in index.tolist()] == [[1, 7], [2, 3], [0, 9]]
    assert torch.allclose(weight.sum(1), torch.ones(3))
    x = torch.randn(6, 10, 4)
    y = tok(x)
    assert y.shape == (6, 3, 5)
    x2 = x.clone()
    x2[:, [4, 5, 6, 8]] = torch.randn(6, 4, 4)  # features no token selected
    assert torch.allclose(tok(x2), y, atol=1e-6)
    x3 = x.clone()
    x3[:, 7] += 1.0  # a feature of token 0 only
    d = (tok(x3) - y).abs().amax(dim=(0, 2))
    assert d[0] > 1e-4 and d[1] < 1e-6 and d[2] < 1e-6


def test_autotoken_selection_gets_gradient_only_through_the_softmax_of_selected_scores():
    tok = AutoToken(n_features=8, e=4, n_tokens=2, k=3, d=4)
    tok(torch.randn(5, 8, 4)).square().sum().backward()
    index, _ = tok.members()
    grad = tok.select.grad
    chosen = torch.zeros_like(grad, dtype=torch.bool).scatter(1, index, True)
    assert (grad[~chosen] == 0).all() and grad[chosen].abs().sum() > 0


@pytest.mark.parametrize("n_features,n_tokens", [(11, 12), (43, 12), (10, 3)])
def test_autotoken_and_random_grouping_start_with_every_feature_in_some_token(n_features, n_tokens):
    # a feature in no token's top-k gets no gradient and never comes back: the init must cover all
    k = max(2, -(-n_features // n_tokens))
    for seed in range(5):
        torch.manual_seed(seed)
        for grouping in ("auto", "random"):
            index, weight = AutoToken(n_features, 4, n_tokens, k, 5, grouping=grouping, seed=seed).members()
            used = set(index[weight > 0].tolist())
            assert used == set(range(n_features)), (grouping, seed, sorted(set(range(n_features)) - used))
    torch.manual_seed(0)
    a = AutoToken(n_features, 4, n_tokens, k, 5).members()[0]
    torch.manual_seed(1)
    assert not torch.equal(a, AutoToken(n_features, 4, n_tokens, k, 5).members()[0])  # seeded, not fixed


def test_manual_and_random_grouping_fix_the_members():
    tok = AutoToken(6, 4, 2, 3, 4, grouping="manual", groups=[[0, 1], [2, 3, 4]])
    index, weight = tok.members()
    assert weight[0, 2] == 0 and set(index[0, :2].tolist()) == {0, 1} and set(index[1].tolist()) == {2, 3, 4}
    r1 = AutoToken(6, 4, 2, 3, 4, grouping="random", seed=1).members()[0]
    r2 = AutoToken(6, 4, 2, 3, 4, grouping="random", seed=1).members()[0]
    assert torch.equal(r1, r2)
    with pytest.raises(UserError, match="manual grouping"):
        AutoToken(6, 4, 2, 2, 4, grouping="manual", groups=[[0, 1, 2], [3]])
    with pytest.raises(UserError, match="unknown grouping"):
        AutoToken(6, 4, 2, 2, 4, grouping="kmeans")
    with pytest.raises(UserError, match="top-k >= 2"):  # one feature per token: the grouping could not learn
        AutoToken(11, 4, 12, 1, 4)


def test_multi_mix_attention_inits_and_mixes_tokens_per_head():
    orth = MultiMixAttention(n_tokens=6, d=8, heads=2, init="orthogonal")
    for m in orth.mix:
        assert torch.allclose(m @ m.T, torch.eye(6), atol=1e-5)
    x = torch.randn(3, 6, 8)
    out = orth(x)
    # head 0 of token t is M_0[t] applied to head 0 of all tokens; head 1 does not leak in
    assert torch.allclose(out[..., :4], torch.einsum("ts,bsc->btc", orth.mix[0], x[..., :4]), atol=1e-5)
    assert (MultiMixAttention(6, 8, 2, "zero")(x) == 0).all()
    with pytest.raises(UserError):
        MultiMixAttention(6, 8, 2, "fancy")


def test_transpose_mixing_is_rankmixers_head_regrouping():
    x = torch.arange(2 * 3 * 6, dtype=torch.float).view(2, 3, 6)  # 3 tokens, 3 heads of width 2
    y = transpose_mix(x)
    for h in range(3):
        assert torch.equal(y[:, h], torch.cat([x[:, t, 2 * h:2 * h + 2] for t in range(3)], -1))
    assert torch.equal(transpose_mix(y), x)  # its own inverse when heads = tokens


def per_expert_outputs(experts: TokenExperts, x: torch.Tensor) -> torch.Tensor:
    """[B, T, E, d]: every expert of every token run on its own, as separate small matmuls (the
    unfused computation), reading the expert's slice of the fused weights."""
    h = experts.hidden
    out = torch.empty(x.shape[0], x.shape[1], experts.n, x.shape[2])
    for t in range(x.shape[1]):
        for e in range(experts.n):
            cols = slice(e * h, (e + 1) * h)
            hidden = torch.nn.functional.gelu(x[:, t] @ experts.w1[t, :, cols] + experts.b1[t, cols])
            out[:, t, e] = hidden @ experts.w2[t, cols] + experts.b2[t, e]
    return out


def test_fused_experts_equal_the_per_expert_computation_with_the_same_weights():
    torch.manual_seed(3)
    experts = TokenExperts(t=3, n=4, d=6, hidden=5)
    with torch.no_grad():
        experts.b1.normal_()
        experts.b2.normal_()
    x, gates = torch.randn(7, 3, 6), torch.rand(7, 3, 4)
    want = (per_expert_outputs(experts, x) * gates.unsqueeze(-1)).sum(2)
    assert torch.allclose(experts(x, gates), want, atol=1e-5)
    assert torch.allclose(experts(x), per_expert_outputs(experts, x).sum(2), atol=1e-5)  # no gates: all weight 1
    grad = torch.autograd.grad(experts(x, gates).square().sum(), experts.w2)[0]
    grad_want = torch.autograd.grad(want.square().sum(), experts.w2)[0]
    assert torch.allclose(grad, grad_want, atol=1e-4)


def test_scenario_sparse_moe_always_uses_the_scenarios_own_expert_plus_top_k():
    moe = ScenarioSparseMoE(t=2, d=4, hidden=8, n_scenarios=3, n_shared=0, top_k=0, gamma=1.0)
    x = torch.randn(5, 2, 4)
    scen = torch.tensor([0, 1, 2, 1, 0])
    out = moe(x, scen)
    logits = moe.router(x) + torch.nn.functional.one_hot(scen, 3).unsqueeze(1)
    experts = per_expert_outputs(moe.experts, x)  # [B, T, S, d]
    want = torch.stack([experts[b, :, s] * torch.sigmoid(logits[b, :, s]).unsqueeze(-1)
                        for b, s in enumerate(scen.tolist())])
    assert torch.allclose(out, want, atol=1e-6)
    moe.top_k = 1  # own + the best other expert: two active per token
    out1 = moe(x, scen)
    others = logits.masked_fill(torch.nn.functional.one_hot(scen, 3).unsqueeze(1).bool(), float("-inf"))
    best = others.argmax(-1)
    g_best = torch.sigmoid(logits.gather(-1, best.unsqueeze(-1)))
    extra = experts.gather(2, best[..., None, None].expand(-1, -1, 1, 4)).squeeze(2) * g_best
    assert torch.allclose(out1, want + extra, atol=1e-5)
    shared = ScenarioSparseMoE(t=2, d=4, hidden=8, n_scenarios=3, n_shared=2, top_k=0, gamma=1.0)
    with torch.no_grad():
        shared.experts.w1[:, :, :24].copy_(moe.experts.w1)
        shared.experts.w2[:, :24].copy_(moe.experts.w2)
        shared.router.w.copy_(moe.router.w)
    shared_out = per_expert_outputs(shared.experts, x)[:, :, 3:].sum(2)  # the 2 shared experts, always on
    assert torch.allclose(shared(x, scen), want + shared_out, atol=1e-5)


def test_dense_moe_sigmoid_uses_all_experts_relu_gates_switch_experts_off():
    moe = DenseMoE(t=2, d=4, hidden=8, n_experts=3, n_shared=1, gate="sigmoid")
    x = torch.randn(7, 2, 4)
    g = torch.sigmoid(moe.gate(x))
    per = per_expert_outputs(moe.experts, x)
    want = (per[:, :, :3] * g.unsqueeze(-1)).sum(2) + per[:, :, 3]  # routed by sigmoid gates + shared
    assert torch.allclose(moe(x), want, atol=1e-5)
    relu = DenseMoE(t=2, d=4, hidden=8, n_experts=3, n_shared=0, gate="relu")
    with torch.no_grad():
        relu.gate.b[:, 2] = -100.0  # expert 2 always gated off
    y = relu(x)
    assert relu.aux_loss > 0
    with torch.no_grad():
        relu.experts.w2[:, 16:24] += 5.0  # expert 2's output layer
        relu.experts.b2[:, 2] += 5.0
    assert torch.allclose(relu(x), y)  # an expert with gate 0 adds nothing: sparse inference = dense


def test_postnorm_r_adds_the_layer_input_to_the_postnorm_output():
    torch.manual_seed(1)
    a = MTmixAttBlock(4, 8, 2, 8, 2, 1, 3, norm="postnorm_r")
    b = MTmixAttBlock(4, 8, 2, 8, 2, 1, 3, norm="postnorm")
    b.load_state_dict(a.state_dict())
    x, s = torch.randn(3, 4, 8), torch.tensor([0, 1, 2])
    assert torch.allclose(a(x, s), b(x, s) + x, atol=1e-6)
    p = MTmixAttBlock(4, 8, 2, 8, 2, 1, 3, norm="prenorm")
    assert p(x, s).shape == x.shape
    with pytest.raises(UserError):
        MTmixAttBlock(4, 8, 2, 8, 2, 1, 3, norm="sandwich")


def test_heads_esmm_funnel_and_main_scenario_has_no_adapter():
    heads = MultiTaskHeads(6, [8, 4], n_scenarios=3, adapter_rank=2)
    rep, scen = torch.randn(9, 6), torch.tensor([0, 1, 2] * 3)
    ctr, cvr = heads(rep, scen)
    p_ctr, p_ctcvr = probabilities(ctr, cvr)
    assert torch.allclose(p_ctr, torch.sigmoid(ctr))
    assert torch.allclose(p_ctcvr, torch.sigmoid(ctr) * torch.sigmoid(cvr))  # ESMM: pCTCVR = pCTR x pCVR
    with torch.no_grad():
        heads.ctr.adapter_b.normal_()
    ctr2, _ = heads(rep, scen)
    assert torch.allclose(ctr2[scen == 0], ctr[scen == 0]) and not torch.allclose(ctr2[scen > 0], ctr[scen > 0])
    per_task = torch.randn(9, 2, 6)  # MMoE / PLE give one representation per task
    assert heads(per_task, scen)[0].shape == (9,)


def test_multitask_loss_is_mean_bce_of_ctr_and_ctcvr_and_stays_finite():
    ctr, cvr = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 0.1, -0.7])
    click, conv = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, 0.0, 0.0])
    p_ctr = torch.sigmoid(ctr)
    bce = torch.nn.functional.binary_cross_entropy
    want = (bce(p_ctr, click) + bce(p_ctr * torch.sigmoid(cvr), conv)) / 2
    assert torch.allclose(multitask_loss(ctr, cvr, click, conv), want, atol=1e-6)
    extreme = multitask_loss(torch.tensor([60.0, -60.0]), torch.tensor([60.0, 60.0]), torch.tensor([0.0, 1.0]),
                             torch.tensor([0.0, 1.0]))
    assert torch.isfinite(extreme)
