"""Exact-match features for a scoring policy (DrQA's, Chen et al., 2017).

Each token of a candidate action gets a code saying whether its *word* occurs in each part of the
prompt: the task line (bit 0), the skill block (bit 1), the history (bit 2), the current
observation (bit 3). A word is the token's lower-cased letters and digits, so " black", "black"
and " Black" are one word, and a punctuation token has none (code 0). The model adds a learned
embedding of the code to the token's embedding (`tetrad.llm.models.add_token_features`), so
"copy the word the task names" is one learned vector rather than a pairing of every word with
its action form, which a model trained from scratch did not learn (docs/results/agents.md).

`match_codes` is the one function behaviour cloning, evaluation and RL all call, on the prompt
text and the candidate's token ids as the policy encodes them. With a subword tokenizer
(SmolLM2's), a piece matches only if the whole word is that piece.
"""

from __future__ import annotations

import re

from tetrad.agents.rollout import prompt_sections

SECTIONS = ("task", "skills", "history", "observation")
N_CODES = 2 ** len(SECTIONS)


def word_of(text: str) -> str:
    return "".join(re.findall(r"[0-9a-z]+", text.lower()))


def section_words(prompt: str) -> list[set[str]]:
    parts = prompt_sections(prompt)
    return [set(re.findall(r"[0-9a-z]+", parts[name].lower())) for name in SECTIONS]


def match_codes(prompt: str, token_ids: list[list[int]], tokenizer) -> list[list[int]]:
    """Per candidate, per token: the bit code of the prompt parts that contain the token's word."""
    words = section_words(prompt)
    out = []
    for ids in token_ids:
        codes = []
        for piece in tokenizer.convert_ids_to_tokens(ids):
            w = word_of(piece)
            codes.append(sum(1 << k for k, found in enumerate(words) if w and w in found))
        out.append(codes)
    return out
