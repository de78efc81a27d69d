"""Word error rate with one documented normalization, used to check synthesized speech with ASR.

Normalization (applied to both reference and hypothesis): Unicode NFKC, lower case, '$N.MM' read
as 'N dollars and MM cents', '$N' as 'N dollars' and 'N%' as 'N percent', integers written as English words ("12" -> "twelve",
"1,000" -> "one thousand"), hyphens as spaces, every other punctuation mark removed except
apostrophes inside words, whitespace collapsed."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def number_words(n: int) -> str:
    """English words for a non-negative integer: 42 -> 'forty two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            return f"{number_words(n // value)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def normalize(text: str) -> str:
    """A text in the form both sides are compared in (the normalization above), so that "$5" and
    "five dollars" match."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = re.sub(r"\$(\d[\d,]*)\.(\d\d)\b", r"\1 dollars and \2 cents", text)
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(\d)\s*%", r"\1 percent", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(
        r"\d+\.\d+",
        lambda m: " point ".join(
            [
                number_words(int(m.group().split(".")[0])),
                " ".join(_ONES[int(d)] for d in m.group().split(".")[1]),
            ]
        ),
        text,
    )
    text = re.sub(
        r"\d+", lambda m: f" {number_words(int(m.group()))} " if len(m.group()) < 13 else m.group(), text
    )
    text = re.sub(r"[-\u2013\u2014/]", " ", text)
    text = re.sub(r"(?<![a-z0-9])'|'(?![a-z0-9])", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two sequences (of words, or of characters)."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, number of reference words) after normalization."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    return edit_distance(ref, hyp), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference`, both normalized; with an empty
    reference, 1 if anything was heard, else 0."""
    errors, n = word_errors(reference, hypothesis)
    return errors / n if n else float(errors > 0)
