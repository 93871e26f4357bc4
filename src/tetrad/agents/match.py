"""Exact-match features for a scoring policy (DrQA's, Chen et al., 2017).

Each token of a candidate action gets a code saying whether its *word* occurs in each part of the
prompt: the task line (bit 0), the skill block (bit 1), the history (bit 2), the current
observation (bit 3). A word is the token's lower-cased letters and digits, so " black", "black"
and " Black" are one word, and a punctuation token has none (code 0).

Bits 4-7 say the same of the token's *entity*: a word followed by a number, such as ALFWorld's
"cabinet 3" or "mug 2" (both tokens of the pair get the pair's bits). Word bits alone cannot tell
"cabinet 3, visited" from "cabinet 1 visited, cabinet 3 not", since "cabinet" and "3" each occur
somewhere in the history; the entity bits can, and also mark the object the record says was taken.

Bits 8-9 belong to the whole candidate: how many times the episode's record of past actions
(ALFWorld's "All actions you took so far") already holds this exact action, 0, 1, 2 or 3+, on
every token of the candidate. With entity bits alone a policy oscillated between two visited
receptacles (`go to fridge 1` / `go to sinkbasin 1`, `open drawer 4` / `close drawer 4`): both
carry the history bit, so nothing tells the one just left from the one left long ago. A prompt
without a record gives 0.

The model adds a learned embedding of the code to the token's embedding
(`tetrad.llm.models.add_token_features`), so "copy the word the task names" is one learned
vector rather than a pairing of every word with its action form, which a model trained from
scratch did not learn (docs/results/agents.md).

`match_codes` is the one function behaviour cloning, evaluation and RL all call, on the prompt
text and the candidate's token ids as the policy encodes them. With a subword tokenizer
(SmolLM2's), a piece matches only if the whole word is that piece.
"""

from __future__ import annotations

import re
from collections import Counter

from tetrad.agents.environments import NO_RECORD, RECORD_SEPARATOR
from tetrad.agents.rollout import prompt_sections

SECTIONS = ("task", "skills", "history", "observation")
MAX_REPEATS = 3  # repeat counts above this share one code
N_CODES = 2 ** (2 * len(SECTIONS)) * (MAX_REPEATS + 1)  # word bits, entity bits, then the repeat count


def word_of(text: str) -> str:
    return "".join(re.findall(r"[0-9a-z]+", text.lower()))


def section_words(prompt: str) -> list[set[str]]:
    parts = prompt_sections(prompt)
    return [set(re.findall(r"[0-9a-z]+", parts[name].lower())) for name in SECTIONS]


def section_entities(prompt: str) -> list[set[str]]:
    """Per part of the prompt, its entities: "<word> <number>" pairs, lower-cased."""
    parts = prompt_sections(prompt)
    return [{" ".join(pair) for pair in re.findall(r"([a-z]+)\s+(\d+)\b", parts[name].lower())}
            for name in SECTIONS]


def token_entities(words: list[str]) -> list[str]:
    """Each token's entity (a word token followed by a number token, both get "word number"), or ""."""
    out = [""] * len(words)
    for i in range(len(words) - 1):
        if words[i].isalpha() and words[i + 1].isdigit():
            out[i] = out[i + 1] = f"{words[i]} {words[i + 1]}"
    return out


def action_counts(prompt: str) -> Counter:
    """How often each action occurs in the prompt's record of the episode's past actions."""
    record = prompt_sections(prompt)["record"].strip()
    return Counter(record.split(RECORD_SEPARATOR)) if record and record != NO_RECORD else Counter()


def match_codes(prompt: str, candidates: list[str], token_ids: list[list[int]], tokenizer) -> list[list[int]]:
    """Per candidate (its action text and its token ids), per token: the bit code of the prompt
    parts that contain the token's word (bits 0-3) and its entity (bits 4-7), plus the
    candidate's repeat count in the record (bits 8-9)."""
    words, entities, counts = section_words(prompt), section_entities(prompt), action_counts(prompt)
    n = len(SECTIONS)
    out = []
    for action, ids in zip(candidates, token_ids, strict=True):
        repeats = min(counts[action], MAX_REPEATS) << (2 * n)
        token_words = [word_of(piece) for piece in tokenizer.convert_ids_to_tokens(ids)]
        # punctuation tokens carry no word and do not break an entity ("cabinet", " ", "3")
        kept = [i for i, w in enumerate(token_words) if w]
        token_entity = [""] * len(token_words)
        for i, e in zip(kept, token_entities([token_words[i] for i in kept])):
            token_entity[i] = e
        codes = []
        for w, e in zip(token_words, token_entity):
            code = sum(1 << k for k, found in enumerate(words) if w and w in found)
            code += sum(1 << (n + k) for k, found in enumerate(entities) if e and e in found)
            codes.append(code + repeats)
        out.append(codes)
    return out
