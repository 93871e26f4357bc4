"""Final answers: extraction from `\\boxed{...}` or a plain final answer, normalisation, equivalence.

Extraction and normalisation never raise, whatever the string (a property test holds them to it):
a response with no answer gives `None`, which never wins a vote. Equivalence takes fast paths
before asking `math-verify`: equal normalised strings are equal; two integers are equal only as
strings (normalised integers are canonical); two plain numbers (integers, decimals, `a/b`) are
equal exactly when their rational values are (`1/2` = `0.5`; `0.333` != `1/3`, where math-verify
would round). Only what remains goes to `math-verify` (a few milliseconds a pair, each call
bounded by its own timeout), and every result is cached.
"""

from __future__ import annotations

import re
from fractions import Fraction
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


def extract_answer(text: str, finished: bool = True) -> str | None:
    """The final answer of a response: the last `\\boxed{}`; else what follows "answer is"; else the
    last number. None when there is none. A response cut at the token limit (`finished=False`)
    answers only with a complete `\\boxed{}`: its last number is wherever the cut fell
    (`\\boxed{\\frac{1}{2` is no answer, not "2"), so it does not vote. Never raises."""
    if not isinstance(text, str):
        return None
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    if not finished:
        return None
    said = _ANSWER_IS.findall(text)
    if said and said[-1].strip(" .:"):
        return said[-1].strip(" .:")
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


_DROP = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "$", "^\\circ", "^{\\circ}", "\\%", "%")


@lru_cache(maxsize=65536)
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


_INTEGER = re.compile(r"-?\d+")
_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_VERIFY_TIMEOUT_S = 2  # math-verify's own per-call limit (whole seconds): no single pair can stall a vote


def _fast_equal(na: str, nb: str) -> bool | None:
    """Decide two normalised answers without math-verify where a fast path applies, else None."""
    if na == nb:
        return True
    if _INTEGER.fullmatch(na) and _INTEGER.fullmatch(nb):
        return False
    if _PLAIN_NUMBER.fullmatch(na) and _PLAIN_NUMBER.fullmatch(nb):
        try:
            return Fraction(na) == Fraction(nb)
        except (ValueError, ZeroDivisionError):  # "1/0": let math-verify judge it
            pass
    return None


@lru_cache(maxsize=65536)
def _parsed(answer: str):
    from math_verify import parse

    return parse(f"${answer}$", parsing_timeout=_VERIFY_TIMEOUT_S)


@lru_cache(maxsize=65536)
def _verify(gold: str, pred: str) -> bool:
    """math-verify's verdict (`gold` first: argument order matters to it); never raises."""
    try:
        from math_verify import verify

        g, p = _parsed(gold), _parsed(pred)
        return bool(g and p and verify(g, p, timeout_seconds=_VERIFY_TIMEOUT_S))
    except Exception:  # math-verify raises on some unparsable inputs; those answers are not equal
        return False


@lru_cache(maxsize=65536)
def answers_equal(a: str | None, b: str | None) -> bool:
    """Whether answer `b` matches the reference answer `a` (`a` plays math-verify's gold). Never raises."""
    if a is None or b is None:
        return False
    na, nb = normalise(a), normalise(b)
    if na is None or nb is None:
        return False
    fast = _fast_equal(na, nb)
    return fast if fast is not None else _verify(a, b)


@lru_cache(maxsize=65536)
def fast_same_answer(a: str, b: str) -> bool | None:
    """`same_answer` for two present answers when the fast paths decide it, else None (math-verify's call)."""
    if a == b:
        return True
    na, nb = normalise(a), normalise(b)
    if na is None or nb is None:
        return False
    return _fast_equal(na, nb)


def same_answer(a: str | None, b: str | None) -> bool:
    """Whether two sampled answers are the same answer, for grouping votes and spotting label flips:
    neither is a reference, so math-verify may match them in either direction. Two missing answers
    are the same (no answer twice is no flip); a missing and a present one are not. Never raises."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    return answers_equal(a, b) or answers_equal(b, a)
