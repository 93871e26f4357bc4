import pytest
from transformers import AutoTokenizer

from tetrad.core.errors import UserError
from tetrad.llm.tokenizers import split_words, word_tokenizer

CORPUS = ["You arrive at countertop 1. On the countertop 1, you see a mug 2.",
          "Your admissible actions are: ['go to countertop 1', 'take mug 2 from countertop 1'].\n\n<action>go to countertop 1</action>"]


def test_words_keep_the_space_before_them_and_text_round_trips():
    assert split_words("go to  mug 12.\n'x'") == ["go", " to", " ", " mug", " 12", ".", "\n'", "x", "'"]
    tok = word_tokenizer(CORPUS)
    for text in CORPUS:
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids and len(ids) == len(split_words(text))
        assert tok.decode(ids) == text  # no special token added, spacing restored exactly


def test_unknown_words_map_to_unk_and_rare_words_can_be_dropped():
    tok = word_tokenizer(CORPUS)
    ids = tok("take banana 7 from countertop 1")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["take", "<unk>", "<unk>", " from", " countertop", " 1"]
    rare = word_tokenizer(CORPUS, min_frequency=2)
    assert " mug" in rare.get_vocab() and " see" not in rare.get_vocab()  # " mug" occurs twice, " see" once
    assert len(word_tokenizer(CORPUS, max_vocab=10)) == 10


def test_saved_tokenizer_loads_back_identically(tmp_path):
    tok = word_tokenizer(CORPUS)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "You see a mug 2 and a banana."
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert again.pad_token_id == tok.pad_token_id == 0 and again.unk_token == "<unk>"


def test_bad_input_is_a_user_error():
    with pytest.raises(UserError, match="no words"):
        word_tokenizer(["", "   "][:1])
    with pytest.raises(UserError, match="min_frequency"):
        word_tokenizer(CORPUS, min_frequency=0)
