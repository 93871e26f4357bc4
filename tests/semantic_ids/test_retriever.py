import numpy as np
import pytest
import torch

from tetrad.semantic_ids.retriever import (SASRec, constrained_beam_search, history_tokens, left_pad, make_t5,
                                           rank_items, target_labels, training_windows)
from tetrad.semantic_ids.sids import PAD, Trie, build_sids


def tiny_t5(vocab, seed=0):
    torch.manual_seed(seed)
    return make_t5(vocab, d_model=32, layers=1, heads=2, d_kv=16, d_ff=64, dropout=0.0).eval()


@torch.no_grad()
def exhaustive_scores(model, ids, mask, rows, trie=None):
    """Sum of token log-probs of every ID row for every user (no search at all); with `trie`,
    each step's softmax is over the tokens the trie allows after that row's prefix."""
    n = len(rows)
    out = torch.zeros(len(ids), n)
    for u in range(len(ids)):
        dec = torch.cat([torch.full((n, 1), PAD), torch.from_numpy(rows)], 1)
        logits = model(input_ids=ids[u:u + 1].expand(n, -1), attention_mask=mask[u:u + 1].expand(n, -1),
                       decoder_input_ids=dec[:, :-1]).logits
        if trie is not None:
            allowed = torch.zeros_like(logits, dtype=torch.bool)
            for r, row in enumerate(rows.tolist()):
                for t in range(len(row)):
                    allowed[r, t, trie.allowed(trie.walk(row[:t])) or [PAD]] = True
            logits = logits.masked_fill(~allowed, float("-inf"))
        logp = logits.log_softmax(-1)
        tok = torch.from_numpy(rows)
        lp = logp.gather(2, tok.unsqueeze(-1)).squeeze(-1)
        out[u] = torch.where(tok == PAD, torch.zeros_like(lp), lp).sum(1)  # PAD after EOS costs nothing
    return out


@pytest.mark.parametrize("variable", [False, True])
def test_beam_as_wide_as_the_catalogue_finds_the_exact_ranking(variable):
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (40, 3))
    if variable:
        codes[codes[:, 1] == 0, 1] = -1  # an adaptive-fix-like removal: shorter IDs with EOS
    sids = build_sids(codes, 4)
    uniq, groups = sids.item_groups()
    trie = Trie.build(uniq)
    model = tiny_t5(sids.vocab_size)
    ids, mask = history_tokens(sids, [list(rng.integers(0, 40, 5)) for _ in range(6)], 20)
    found, scores = constrained_beam_search(model, ids, mask, trie, beam=len(uniq))
    exact = exhaustive_scores(model, ids, mask, uniq)
    best = exact.argsort(1, descending=True)
    assert (found[:, :10] == best[:, :10]).all()
    torch.testing.assert_close(scores, exact.gather(1, found), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variable", [False, True])
def test_renormalised_scores_sum_to_one_over_allowed_tokens(variable):
    """With the softmax over each node's allowed tokens, the scores of all IDs are a distribution."""
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 4, (40, 3))
    if variable:
        codes[codes[:, 1] == 0, 1] = -1
        codes[:5, 2] = -1
    sids = build_sids(codes, 4, collision="none")
    uniq, _ = sids.item_groups()
    trie = Trie.build(uniq)
    model = tiny_t5(sids.vocab_size)
    ids, mask = history_tokens(sids, [list(rng.integers(0, 40, 5)) for _ in range(6)], 20)
    found, scores = constrained_beam_search(model, ids, mask, trie, beam=len(uniq), renormalise=True)
    assert (found >= 0).all()
    torch.testing.assert_close(scores.exp().sum(1), torch.ones(6), rtol=1e-4, atol=1e-4)
    exact = exhaustive_scores(model, ids, mask, uniq, trie)
    torch.testing.assert_close(scores, exact.gather(1, found), rtol=1e-4, atol=1e-4)
    assert (found[:, :5] == exact.argsort(1, descending=True)[:, :5]).all()
    _, plain = constrained_beam_search(model, ids, mask, trie, beam=len(uniq))
    assert (plain.exp().sum(1) < 0.5).all()  # the default leaves the disallowed tokens' mass out


def test_matches_hugging_face_generate_with_prefix_constraints():
    rng = np.random.default_rng(1)
    sids = build_sids(rng.integers(0, 8, (300, 3)), 8)
    uniq, _ = sids.item_groups()
    trie = Trie.build(uniq)
    model = tiny_t5(sids.vocab_size, seed=3)
    ids, mask = history_tokens(sids, [list(rng.integers(0, 300, 8)) for _ in range(8)], 20)
    found, scores = constrained_beam_search(model, ids, mask, trie, beam=10)

    def allowed(_, prefix):
        return trie.allowed(trie.walk(prefix[1:].tolist())) or [PAD]

    out = model.generate(input_ids=ids, attention_mask=mask, num_beams=10, num_return_sequences=10,
                         max_new_tokens=sids.max_len, prefix_allowed_tokens_fn=allowed, length_penalty=0.0,
                         do_sample=False, output_scores=True, return_dict_in_generate=True)
    rows = out.sequences[:, 1:].view(8, 10, -1)
    hf = torch.tensor([[int(trie.leaf_group[trie.walk(r.tolist())]) for r in user] for user in rows])
    assert (hf == found).all()
    torch.testing.assert_close(out.sequences_scores.view(8, 10), scores, rtol=1e-4, atol=1e-4)


def test_fewer_items_than_beams_pads_with_minus_one():
    sids = build_sids(np.array([[0, 1], [1, 0], [1, 1]]), 2)
    uniq, groups = sids.item_groups()
    found, _ = constrained_beam_search(tiny_t5(sids.vocab_size), *history_tokens(sids, [[0], [1, 2]], 20),
                                       Trie.build(uniq), beam=5)
    assert sorted(found[0, :3].tolist()) == [0, 1, 2] and (found[:, 3:] == -1).all()
    ranked = rank_items(found, groups, 5)
    assert (ranked[:, 3:] == -1).all() and sorted(ranked[1, :3]) == [0, 1, 2]


def test_retriever_learns_a_deterministic_successor():
    """Next item = (last item + 1) mod n: a trained retriever must put it first for most users."""
    torch.manual_seed(0)
    n = 64
    rng = np.random.default_rng(0)
    sids = build_sids(np.stack([np.arange(n) // 8, np.arange(n) % 8], 1), 8)
    model = make_t5(sids.vocab_size, d_model=64, layers=1, heads=2, d_kv=32, d_ff=128, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(250):
        last = rng.integers(0, n, 64)
        hist = [[(x - 2) % n, (x - 1) % n, x] for x in last]
        ids, mask = history_tokens(sids, hist, 20)
        loss = model(input_ids=ids, attention_mask=mask, labels=target_labels(sids, list((last + 1) % n))).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    uniq, groups = sids.item_groups()
    hist = [[(x - 2) % n, (x - 1) % n, x] for x in range(n)]
    found, _ = constrained_beam_search(model, *history_tokens(sids, hist, 20), Trie.build(uniq), beam=5)
    top1 = rank_items(found, groups, 1)[:, 0]
    assert (top1 == (np.arange(n) + 1) % n).mean() > 0.8


def test_sasrec_learns_a_deterministic_successor():
    torch.manual_seed(0)
    n = 50
    model = SASRec(n, d_model=32, layers=1, heads=2, max_len=8, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        starts = rng.integers(0, n, 32)
        seqs = [[(s + j) % n + 1 for j in range(6)] for s in starts]
        loss = model.loss(left_pad([q[:-1] for q in seqs], 8), left_pad([q[1:] for q in seqs], 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    top = model.top_k(left_pad([[(s + j) % n + 1 for j in range(3)] for s in range(n)], 8), 1)[:, 0]
    assert (top.numpy() == (np.arange(n) + 3) % n + 1).mean() > 0.9


def test_training_windows_score_every_interaction_once_with_context():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 100, n)) for n in (2, 3, 9, 10, 11, 40)]
    inputs, targets = training_windows(seqs, 8)
    assert all(len(i) == len(t) <= 8 for i, t in zip(inputs, targets))
    scored = sorted(x for t in targets for x in t if x)
    assert scored == sorted(x for s in seqs for x in s[1:])  # each interaction after the first, once
    _, long = training_windows([seqs[-1]], 8)
    for tgt in long[:-1]:  # windows cut from inside the sequence score only targets with >= 4 items in view
        assert [bool(x) for x in tgt] == [False] * 4 + [True] * 4
    # inputs are the items right before the targets
    inputs, targets = training_windows([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]], 4)
    assert inputs == [[7, 8, 9, 10], [5, 6, 7, 8], [3, 4, 5, 6], [1, 2, 3, 4]]
    assert targets == [[0, 0, 10, 11], [0, 0, 8, 9], [0, 0, 6, 7], [2, 3, 4, 5]]


def test_sasrec_ignores_left_padding():
    """Padding positions are masked as keys: changing what sits there changes no real position's state."""
    torch.manual_seed(0)
    model = SASRec(20, d_model=16, layers=2, heads=2, max_len=6, dropout=0.0).eval()
    seq = left_pad([[3, 4, 5], [7, 8, 9, 10, 11, 12]], 6)
    before = model(seq)
    with torch.no_grad():
        model.positions.weight[:3] += 5.0  # what the padding of the first row carries into attention
    after = model(seq)
    torch.testing.assert_close(after[0, 3:], before[0, 3:])
    assert not torch.allclose(after[1], before[1])  # (the full row does see those positions)
    assert torch.isfinite(after).all()
    # the tied item table starts at unit-scale logits (std d^-1/2 per entry), not sqrt(d)
    assert 0.5 < model.logits(model(seq))[:, -1].std() < 2.0
