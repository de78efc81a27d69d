"""Word timings: where each word of a transcript is in its audio. Pure functions on plain
records, shared by the engines (which know where their symbols are), the pipeline (which moves
them through trimming, joining and padding) and the forced aligner (recorded speech).

The contract (docs/dataset-format.md): the words of a turn's transcript in order, so that joined
by single spaces they give the transcript back, each with a start and end inside the turn,
monotonic."""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WordTiming:
    """One word and its span, in seconds (relative to whatever the holder says: the engine's
    audio, a turn, or the conversation timeline)."""

    word: str
    start: float
    end: float

    def to_dict(self, offset: float = 0.0, digits: int = 3) -> dict[str, Any]:
        return {
            "word": self.word,
            "start": round(self.start + offset, digits),
            "end": round(self.end + offset, digits),
        }

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> WordTiming:
        return cls(str(obj["word"]), float(obj["start"]), float(obj["end"]))


Words = tuple[WordTiming, ...]


def shift(words: Sequence[WordTiming], offset: float, lo: float = 0.0, hi: float | None = None) -> Words:
    """Move every word by `offset` seconds and clip it into [lo, hi] (trimmed edges)."""

    def clip(t: float) -> float:
        t = max(lo, t + offset)
        return t if hi is None else min(hi, t)

    return tuple(WordTiming(w.word, clip(w.start), clip(w.end)) for w in words)


def monotonic(words: Sequence[WordTiming]) -> Words:
    """Starts never go back, each end is at or after its start and at or before the next start."""
    out: list[WordTiming] = []
    for w in words:
        start = max(w.start, out[-1].start if out else w.start)
        out.append(WordTiming(w.word, start, max(w.end, start)))
    for i in range(len(out) - 1):
        if out[i].end > out[i + 1].start:
            out[i] = WordTiming(out[i].word, out[i].start, out[i + 1].start)
    return tuple(out)


def regroup(text: str, timed: Sequence[WordTiming]) -> Words:
    """The words of `text` (split on whitespace) timed from `timed`, whose words spell the same
    characters but may be cut differently (a sentence chunk cut inside a huge word): each word
    runs from the start of the timed word holding its first character to the end of the one
    holding its last."""
    targets = text.split()
    if [w.word for w in timed] == targets:
        return tuple(timed)
    owner: list[int] = []
    for i, w in enumerate(timed):
        owner.extend([i] * len(w.word))
    out, pos = [], 0
    for word in targets:
        first = owner[min(pos, len(owner) - 1)] if owner else 0
        last = owner[min(pos + len(word) - 1, len(owner) - 1)] if owner else 0
        pos += len(word)
        if timed:
            out.append(WordTiming(word, timed[first].start, timed[last].end))
        else:
            out.append(WordTiming(word, 0.0, 0.0))
    return monotonic(out)


def align_units(
    words: Sequence[str],
    word_units: Sequence[Sequence[Hashable]],
    stream: Sequence[tuple[Hashable, float, float]],
) -> Words:
    """Time each word from a timed stream of units (phonemes with their spans) that a model
    produced for the whole text, given each word's own units (the word phonemized alone).

    The two unit sequences are matched with difflib (they differ only where context changes a
    pronunciation, or the engine expands a token such as a number); a word spans its matched
    units. Words with no matched unit share the time between their neighbours by length."""
    target: list[Hashable] = []
    owner: list[int] = []
    for i, units in enumerate(word_units):
        target.extend(units)
        owner.extend([i] * len(units))
    spans: list[list[float] | None] = [None] * len(words)
    matcher = difflib.SequenceMatcher(None, target, [u for u, _, _ in stream], autojunk=False)
    for a, b, size in matcher.get_matching_blocks():
        for k in range(size):
            i, (_, start, end) = owner[a + k], stream[b + k]
            span = spans[i]
            if span is None:
                spans[i] = [start, end]
            else:
                span[0], span[1] = min(span[0], start), max(span[1], end)
    begin = stream[0][1] if stream else 0.0
    finish = stream[-1][2] if stream else 0.0
    return monotonic(fill_gaps(words, spans, begin, finish))


def fill_gaps(words: Sequence[str], spans: list[list[float] | None], begin: float, finish: float) -> Words:
    """Give unmatched words the time between their matched neighbours, split by length."""
    out: list[WordTiming] = []
    i = 0
    while i < len(words):
        span = spans[i]
        if span is not None:
            out.append(WordTiming(words[i], span[0], span[1]))
            i += 1
            continue
        j = i
        while j < len(words) and spans[j] is None:
            j += 1
        lo = out[-1].end if out else begin
        nxt = spans[j] if j < len(words) else None
        hi = nxt[0] if nxt is not None else finish
        hi = max(hi, lo)
        total = sum(len(w) for w in words[i:j]) or 1
        t = lo
        for w in words[i:j]:
            step = (hi - lo) * len(w) / total
            out.append(WordTiming(w, t, t + step))
            t += step
        i = j
    return tuple(out)


def word_errors(text: str, words: Any, start: float, end: float, slack: float = 0.002) -> list[str]:
    """What is wrong with a turn's `words` record against its transcript and span (for
    `synth validate`): empty when they follow the contract."""
    if not isinstance(words, list):
        return ["'words' is not a list"]
    try:
        timed = [WordTiming.from_dict(w) for w in words]
    except (KeyError, TypeError, ValueError):
        return ["'words' entries need word, start and end"]
    errors = []
    if " ".join(w.word for w in timed) != " ".join(text.split()):
        errors.append("'words' do not spell the transcript")
    for k, w in enumerate(timed):
        if not (start - slack <= w.start <= w.end <= end + slack):
            errors.append(f"word {k} ({w.word!r}) at {w.start}-{w.end} is outside the turn {start}-{end}")
            break
        if k and w.start < timed[k - 1].start:
            errors.append(f"word {k} ({w.word!r}) starts before the word before it")
            break
    return errors
