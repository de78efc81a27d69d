"""Cutting a turn that is longer than a model's audio window into pieces that fit: at sentence
ends, between words, where the turn's own word timings say the speaker paused (pure). Each piece
keeps at most `edge_sec` of the pause on either side, so no word is ever cut."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import CannotSplit

_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")


@dataclass(frozen=True)
class AudioSpan:
    """Samples [start, end) of the turn's audio and the words [first, last) it holds."""

    start: int
    end: int
    first: int
    last: int


def sentence_end(word: str) -> bool:
    """Whether a word ends a sentence, so that a piece may end after it."""
    return bool(_SENTENCE_END.search(word))


def split_turn(
    words: list[dict[str, Any]], num_samples: int, rate: int, limit: int, edge_sec: float = 0.1
) -> list[AudioSpan]:
    """Pieces of at most `limit` samples covering the turn's words in order. `words` are
    {"word", "start", "end"} in seconds from the start of the turn's audio."""
    if num_samples <= limit:
        return [AudioSpan(0, num_samples, 0, len(words))]
    cuts = []  # (cut after word j, end of the piece before, start of the piece after)
    for j in range(len(words) - 1):
        if not sentence_end(words[j]["word"]):
            continue
        end, nxt = float(words[j]["end"]), float(words[j + 1]["start"])
        mid = (end + nxt) / 2
        cuts.append((j, round(min(mid, end + edge_sec) * rate), round(max(mid, nxt - edge_sec) * rate)))
    pieces: list[AudioSpan] = []
    start, first = 0, 0
    while num_samples - start > limit:
        fitting = [c for c in cuts if c[0] >= first and c[1] - start <= limit]
        if not fitting:
            raise CannotSplit(
                f"from word {first + 1} ({words[first]['word']!r}) on there is no sentence end within "
                f"{limit / rate:g} s to cut at"
            )
        j, end, nxt = fitting[-1]
        pieces.append(AudioSpan(start, end, first, j + 1))
        start, first = nxt, j + 1
    pieces.append(AudioSpan(start, num_samples, first, len(words)))
    return pieces
