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


def test_variable_length_ids_end_with_eos_and_stay_prefix_free():
    codes = np.array([[0, -1, 1], [0, 2, 1], [1, -1, 0]])
    s = build_sids(codes, 4, collision="none")
    assert s.eos and s.lengths.tolist() == [3, 4, 3]
    assert s.tokens[0].tolist() == [2, 11, EOS, PAD]
    trie = Trie.build(np.unique(s.tokens, axis=0))
    assert trie.depth == 4
    assert sorted(trie.allowed(trie.walk([2]))) == [8, 11]
    assert trie.allowed(trie.walk([2, 11])) == [EOS]
    with pytest.raises(UserError, match="end-of-ID token"):
        build_sids(codes, 4, eos=False)


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
