"""Pure text functions: cleanup of tokenized corpora, speakability, sentence chunking.

The same cleaned text is synthesized and written as the transcript, so what the model hears and
what it is trained to produce never drift apart. Two rules keep the transcript exactly what was
said:

- Emoji and pictographic symbols are removed (Unicode categories So and Sk, with the emoji
  modifiers, variation selectors and keycap marks that go with them), because a voice reads
  them out by name ("party popper") while the transcript would keep the picture. Kept: the
  degree sign, currency (Sc), mathematical signs (Sm) and punctuation, which are read as the
  words they stand for ("25°C", "$5", "2 + 2").
- Letters of a script the voice's language is not written in (Han, Cyrillic, Arabic... for an
  English voice) cannot be spoken: `foreign_script` names them and the turn is rejected with
  that message.

A transcript is a training label, so it is clean Unicode text (the rule `clean_text` applies before
synthesis, and `synth validate` checks every transcript against it):

- normalized to NFC (one code point for "é", whatever the source wrote);
- no control characters (C0 and C1: a tab or line break becomes a space), no format characters
  (Unicode category Cf: right-to-left overrides and the other bidirectional controls, the word
  joiner, the soft hyphen, zero-width spaces and joiners, the byte-order mark, tag characters),
  no private-use, unassigned or surrogate code points: removed, they are invisible and unspoken;
- at most MAX_COMBINING (3) combining marks on one letter (enough for every orthography the
  voices read, Vietnamese's two included): the marks past them are removed, and so is a mark
  with no letter to sit on."""

from __future__ import annotations

import re
import unicodedata

_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "`": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u00a0": " ",
        "\u2009": " ",
        "\u202f": " ",
        "\u3000": " ",
        "\u200b": None,
        "\u200c": None,
        "\u200d": None,
        "\ufeff": None,
    }
)
# Contractions split by a word tokenizer: "it ' s", "don ' t", "we ' ll", "o ' clock".
_CONTRACTION = re.compile(r"(\w) ?' ?(s|t|m|d|re|ve|ll|clock)\b", re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.!?;:%)\]}])")
_SPACE_AFTER_OPEN = re.compile(r"([(\[{$#])\s+")
_DECIMAL = re.compile(r"(\d) ?([.,:]) ?(\d)")
_DOUBLE_QUOTED = re.compile(r'"\s*([^"]*?)\s*"')
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INVISIBLE = frozenset(("Cf", "Co", "Cn", "Cs"))  # format, private use, unassigned, surrogate
MAX_COMBINING = 3
_KEPT_SYMBOLS = frozenset("\u00b0")  # the degree sign: read as "degrees", written so
_SYMBOL_MARKS = frozenset(["\u20e3", "\ufe0e", "\ufe0f"])  # keycap, text/emoji presentation
# The scripts each language's voices read; letters of any other script cannot be spoken.
SCRIPTS = {
    "ja": frozenset({"LATIN", "HIRAGANA", "KATAKANA", "CJK"}),
    "zh": frozenset({"LATIN", "CJK"}),
    "hi": frozenset({"LATIN", "DEVANAGARI"}),
    "ko": frozenset({"LATIN", "HANGUL"}),
    "ru": frozenset({"LATIN", "CYRILLIC"}),
    "uk": frozenset({"LATIN", "CYRILLIC"}),
    "el": frozenset({"LATIN", "GREEK"}),
    "ar": frozenset({"LATIN", "ARABIC"}),
}
LATIN = frozenset({"LATIN"})
_SCRIPT_NAMES = {"CJK": "Han"}


def clean_text(text: str) -> str:
    """Normalize one utterance to plain written text.

    "Hello , how are you ?" -> "Hello, how are you?"; "it ' s" -> "it's"; curly quotes become
    straight; whitespace collapses to single spaces. Casing and punctuation are kept.
    """
    text = unicodedata.normalize("NFC", text).translate(_TRANSLATE)
    text = _CONTROL.sub(" ", text)
    text = unicodedata.normalize("NFC", strip_invisible(strip_symbols(text)))
    text = _SPACES.sub(" ", text).strip()
    text = _CONTRACTION.sub(r"\1'\2", text)
    text = _DECIMAL.sub(_join_number, text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _SPACE_AFTER_OPEN.sub(r"\1", text)
    text = _DOUBLE_QUOTED.sub(r'"\1"', text)
    return _SPACES.sub(" ", text).strip()


def _join_number(m: re.Match[str]) -> str:
    # "3 . 5" -> "3.5" and "10 : 30" -> "10:30"; a comma only joins digit groups ("1 , 000").
    left, sep, right = m.group(1), m.group(2), m.group(3)
    if sep == "," and not re.match(r"\d{3}\b", m.string[m.start(3) :]):
        return f"{left}, {right}"
    return f"{left}{sep}{right}"


def strip_invisible(text: str) -> str:
    """Format, private-use, unassigned and surrogate code points out, and combining marks past
    MAX_COMBINING on one letter (or with no letter before them): the module docstring's rule."""
    out: list[str] = []
    marks = 0
    for ch in text:
        if unicodedata.category(ch) in _INVISIBLE:
            continue
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
            if not out or out[-1].isspace() or marks >= MAX_COMBINING:
                continue
            marks += 1
        else:
            marks = 0
        out.append(ch)
    return "".join(out)


def unclean(text: str) -> str | None:
    """What in `text` breaks the transcript rule (the module docstring), named, or None."""
    if unicodedata.normalize("NFC", text) != text:
        return "it is not in Unicode NFC form"
    for ch in text:
        category = unicodedata.category(ch)
        if category in _INVISIBLE or category == "Cc":
            name = unicodedata.name(ch, "an unnamed character")
            return f"it holds U+{ord(ch):04X} {name} (category {category}, invisible and never spoken)"
    if strip_invisible(text) != text:
        return f"combining marks pile up on one letter (more than {MAX_COMBINING}) or sit on no letter"
    return None


def strip_symbols(text: str) -> str:
    """Emoji and other pictographic symbols out (the module docstring's rule), spaces kept."""
    return "".join(
        " "
        if unicodedata.category(ch) in ("So", "Sk") and ch not in _KEPT_SYMBOLS
        else ""
        if ch in _SYMBOL_MARKS or "\U0001f3fb" <= ch <= "\U0001f3ff"
        else ch
        for ch in text
    )


def script(ch: str) -> str:
    """The script of a letter, from its Unicode name ('LATIN', 'CJK', 'CYRILLIC'...)."""
    return unicodedata.name(ch, "UNKNOWN").split(" ")[0]


def foreign_script(text: str, language: str | None) -> str | None:
    """A message naming the letters of `text` that a voice of `language` (ISO 639-1; None:
    English) cannot read, or None when it can read them all."""
    allowed = SCRIPTS.get((language or "en")[:2].lower(), LATIN)
    foreign = [ch for ch in text if ch.isalpha() and script(ch) not in allowed]
    if not foreign:
        return None
    scripts = sorted({_SCRIPT_NAMES.get(script(ch), script(ch).title()) for ch in foreign})
    return (
        f"the text has {' and '.join(scripts)} letters ({''.join(foreign[:8])!r}), which a "
        f"{language or 'en'} voice cannot speak: give it a voice of that language, or leave it out"
    )


def is_speakable(text: str) -> bool:
    """True when the text has at least one letter or digit, so a TTS voice can say something."""
    return any(ch.isalnum() for ch in text)


_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "st",
        "jr",
        "sr",
        "vs",
        "etc",
        "no",
        "mt",
        "ave",
        "approx",
        "dept",
        "est",
        "fig",
        "inc",
        "ltd",
        "co",
    ]
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def split_sentences(text: str, max_chars: int = 400) -> list[str]:
    """Split a turn at sentence boundaries, then split any sentence longer than `max_chars` at
    clause punctuation or spaces, so that no single synthesis call gets an unbounded input."""
    sentences: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        word = text[: m.start()].rsplit(" ", 1)[-1].rstrip(".!?").lower()
        if word in _ABBREVIATIONS or "." in word or (len(word) == 1 and word.isalpha()):
            continue  # "Mr. Smith", "J. Doe", "5 p.m. today": not a sentence end
        sentences.append(text[start : m.end()].strip())
        start = m.end()
    sentences.append(text[start:].strip())
    chunks: list[str] = []
    for sentence in sentences:
        chunks.extend(_split_long(sentence, max_chars))
    return [c for c in chunks if c]


def _split_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    for pattern in (r"(?<=[,;:])\s+", r"\s+"):
        pieces = re.split(pattern, sentence)
        if len(pieces) > 1:
            return _pack(pieces, max_chars)
    # One huge word: cut it (nothing speakable is lost, it was never pronounceable whole).
    return [sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars)]


def _pack(pieces: list[str], max_chars: int) -> list[str]:
    out: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current} {piece}".strip()
        if len(candidate) <= max_chars:
            current = candidate
            continue
        if current:
            out.append(current)
        if len(piece) > max_chars:
            out.extend(_split_long(piece, max_chars))
            current = ""
        else:
            current = piece
    if current:
        out.append(current)
    return out
