"""Final answers: extraction from `\\boxed{...}` or a plain final answer, normalisation, equivalence.

Extraction and normalisation never raise, whatever the string (a property test holds them to it):
a response with no answer gives `None`, which never wins a vote. Equivalence takes a fast path
(equal normalised strings) before asking `math-verify`, whose result is cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_ANSWER_IS = re.compile(r"answer is[:\s]*\$?([^\n$]+)", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`) with balanced braces, else None."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0 or text[start:i].strip() not in ("\\boxed", "\\fbox"):  # "\boxed 5": the next word
        words = text[start:].split(maxsplit=2)
        return words[1] if len(words) > 1 else None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a response: the last `\\boxed{}`; else what follows "answer is"; else the
    last number. None when there is none. Never raises."""
    if not isinstance(text, str):
        return None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    said = _ANSWER_IS.findall(text)
    if said and said[-1].strip(" .:"):
        return said[-1].strip(" .:")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


_DROP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "$", "^\\circ", "^{\\circ}", "\\%", "%")


def normalise(answer: str | None) -> str | None:
    """A canonical string for voting and the fast equivalence path: spaces, `$`, `\\left/\\right`,
    `\\text{}`, a trailing period, thousands separators and zero padding removed; `\\dfrac` ->
    `\\frac`; `142.0` -> `142`. Never raises."""
    if answer is None:
        return None
    s = str(answer).strip()
    for d in _DROP:
        s = s.replace(d, "")
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s).rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    m = re.fullmatch(r"(-?)0*(\d+)(?:\.0+)?", s)
    if m:
        s = (m.group(1) if m.group(2) != "0" else "") + m.group(2)
    return s or None


@lru_cache(maxsize=65536)
def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether two answers are the same (`a` plays the gold answer for math-verify). Never raises."""
    if a is None or b is None:
        return False
    na, nb = normalise(a), normalise(b)
    if na is None or nb is None:
        return False
    if na == nb:
        return True
    try:
        from math_verify import parse, verify

        return bool(verify(parse(f"${a}$"), parse(f"${b}$")))
    except Exception:  # math-verify raises on some unparsable inputs; those answers are not equal
        return False
