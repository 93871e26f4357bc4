import numpy as np
import pytest

from tetrad.core.errors import UserError
from tetrad.semantic_ids.sids import EOS, PAD, Trie, build_sids


def test_collision_token_makes_ids_unique_and_layer_specific():
    codes = np.array([[0, 1], [0, 1], [1, 0]])
    s = build_sids(codes, 4)
    assert s.tokens.tolist() == [[2, 7, 10], [2, 7, 11], [3, 6, 10]]  # layer 1: 2+c, layer 2: 6+c, collision: 10+
    assert s.vocab_size == 12 and len(np.unique(s.tokens, axis=0)) == 3
    none = build_sids(codes, 4, collision="none")
    uniq, groups = none.item_groups()
    assert len(uniq) == 2 and [g.tolist() for g in groups] == [[0, 1], [2]]


def test_variable_length_ids_with_collision_suffixes_decode_without_eos():
    """Every ID ends in its collision token, so none is a prefix of another and EOS is not added."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, (300, 3))
    codes[codes[:, 1] < 2, 1] = -1  # the adaptive fix's removal: (c1, c3) beside (c1, c2, c3)
    codes[:20, 2] = -1  # and trailing removals, which without the suffix would make prefixes
    s = build_sids(codes, 4)
    assert not s.eos and EOS not in s.tokens and sorted(set(s.lengths.tolist())) == [2, 3, 4]
    rows = [tuple(r[:n]) for r, n in zip(s.tokens.tolist(), s.lengths)]
    assert len(set(rows)) == len(rows)
    assert not any(a != b and b[:len(a)] == a for a in rows for b in rows)  # no ID is a prefix of another
    uniq, groups = s.item_groups()
    trie = Trie.build(uniq)  # refuses prefix pairs
    for item in range(0, 300, 7):  # walking an item's tokens ends on a leaf that holds exactly that item
        node = trie.walk(s.tokens[item, : s.lengths[item]])
        assert trie.allowed(node) == [] and groups[int(trie.leaf_group[node])].tolist() == [item]
    assert build_sids(codes, 4, eos=True).eos  # still available on request (eos=always)


def test_eos_only_where_ids_would_be_prefixes_of_others():
    inner = np.array([[0, -1, 1], [0, 2, 1], [1, -1, 0]])  # layer-specific tokens: (c1, c3) is no prefix of (c1, c2, c3)
    s = build_sids(inner, 4, collision="none")
    assert not s.eos and s.lengths.tolist() == [2, 3, 2] and s.tokens[0].tolist() == [2, 11, PAD]
    trailing = np.array([[0, 1, -1], [0, 1, 2], [1, 0, 3]])  # (c1, c2) is a prefix of (c1, c2, c3)
    s = build_sids(trailing, 4, collision="none")
    assert s.eos and s.lengths.tolist() == [3, 4, 4]
    assert s.tokens[0].tolist() == [2, 7, EOS, PAD]
    trie = Trie.build(np.unique(s.tokens, axis=0))
    assert trie.depth == 4
    assert sorted(trie.allowed(trie.walk([2, 7]))) == [EOS, 12]
    assert trie.allowed(trie.walk([2, 7, EOS])) == []
    with pytest.raises(UserError, match="need the end-of-ID token"):
        build_sids(trailing, 4, collision="none", eos=False)


def test_trie_walk_and_leaves():
    rows = np.array([[2, 3, 5], [2, 4, 5], [3, 3, 6]])
    trie = Trie.build(rows)
    assert sorted(trie.allowed(0)) == [2, 3]
    for g, row in enumerate(rows):
        assert int(trie.leaf_group[trie.walk(row)]) == g
    assert trie.walk([2, 9]) == -1
    with pytest.raises(UserError, match="prefixes of others"):
        Trie.build(np.array([[2, 3, PAD], [2, 3, 4]]))


def test_bad_codes():
    with pytest.raises(UserError, match="must lie in"):
        build_sids(np.array([[0, 9]]), 4)
    with pytest.raises(UserError, match="non-empty"):
        build_sids(np.zeros((0, 3)), 4)
