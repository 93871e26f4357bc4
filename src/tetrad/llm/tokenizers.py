"""A word-level tokenizer built locally from a corpus, for tiny models over long text prompts.

`char_tokenizer` (in `models`) makes one token per character, so an ALFWorld prompt (task,
skills, history, a few dozen admissible commands) becomes thousands of tokens. Here a token is a
word or a punctuation mark, with the whitespace before it attached (" countertop", " 1", "'"),
as GPT-2's pre-tokenizer splits text: decoding concatenates the tokens, so any text made of
known words round-trips exactly. Words outside the vocabulary map to `<unk>`.

    tok = word_tokenizer(training_texts, min_frequency=1)
    ids = tok("go to countertop 1")["input_ids"]

No special token is added to encoded text (no BOS); `</s>` ends responses where a recipe wants
it. The result is a `transformers.PreTrainedTokenizerFast`, saved and loaded like any Hugging
Face tokenizer (`tetrad.llm.models.save_policy`).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from tetrad.core.errors import UserError

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
# a word (letters, digits, underscore) or one other non-space character, with at most one
# whitespace character before it; a longer run of whitespace is a token of its own, less the
# character the next word takes (as GPT-2 splits)
WORD_PATTERN = r"\s?\w+|\s?[^\w\s]|\s+(?!\S)|\s+"


def split_words(text: str) -> list[str]:
    """The pieces `word_tokenizer` looks up (its pre-tokenizer), for counting and tests."""
    import re

    return re.findall(WORD_PATTERN, text)


def word_tokenizer(texts: Iterable[str], min_frequency: int = 1, max_vocab: int | None = None):
    """A word-level fast tokenizer whose vocabulary is the pieces of `texts` seen at least
    `min_frequency` times (the `max_vocab` most frequent, ties broken alphabetically)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if min_frequency < 1:
        raise UserError(f"tokenizer min_frequency must be at least 1 (got {min_frequency})")
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split_words(text))
    words = sorted((w for w, c in counts.items() if c >= min_frequency), key=lambda w: (-counts[w], w))
    if max_vocab is not None:
        words = words[:max(0, max_vocab - len(SPECIALS))]
    if not words:
        raise UserError("cannot build a tokenizer: the corpus has no words")
    vocab = {t: i for i, t in enumerate(SPECIALS + [w for w in words if w not in SPECIALS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(WORD_PATTERN), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")
    fast.padding_side = "left"
    return fast
