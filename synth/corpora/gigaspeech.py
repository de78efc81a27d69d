"""GigaSpeech in its official layout: `GigaSpeech.json` (one object whose `audios` list gives each
audio's `aid`, `path` to its Opus file, `source` podcast/youtube/audiobook, `subsets` and
`segments` with `sid`, `begin_time`, `end_time`, `text_tn` and their own `subsets`) beside the
`audio/` folder. No Lhotse needed.

Every audio of the subset asked for (and of the `sources` asked for) is one long conversation by
the rules of synth.corpora.segments: its segments of that subset in time order, each a turn at
its own begin and end time, read from the Opus file a piece at a time. GigaSpeech labels no
speakers: every turn is by `unknown`, which metadata says stands for whoever speaks, never one
person. The transcript rule is `gigaspeech` (punctuation tags to marks, garbage utterances left
out, upper case kept unless `truecase`). Metadata keeps the subset, the audio's id, source and
title, its segment ids, and its speech style from GigaSpeech's own description of its sources:
audiobooks are read speech, podcasts spontaneous, YouTube either.

GigaSpeech.json is large (the whole corpus in one file): it is streamed, one audio at a time."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..domain import Skipped, Source
from ..errors import ConfigError, DialogError, SynthError
from ..produce.recorded import AudioFile, FilePieces, RecordedGroup
from .segments import UNKNOWN, Recording, SegmentSettings, Supervision, recording_groups

SUBSETS = ("XS", "S", "M", "L", "XL", "DEV", "TEST")
SOURCES = ("podcast", "youtube", "audiobook")
SPEECH_STYLE = {"audiobook": "read", "podcast": "spontaneous", "youtube": "read or spontaneous"}
NO_SPEAKER = ("", "N/A", "NA", "UNKNOWN", "NONE")
SPEAKERS_NOTE = (
    f"GigaSpeech labels no speakers: every turn is by '{UNKNOWN}', whoever speaks it (one or more "
    "people, not one person)"
)
_CHUNK = 1 << 20
_BLANK = re.compile(r"\s*")
_SUBSET_TAG = re.compile(r"[A-Za-z]+")


def parse_sources(text: str) -> tuple[str, ...]:
    """The `sources` option as known source names, each once; a ConfigError naming it otherwise."""
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in SOURCES]
    if bad or not names:
        raise ConfigError("sources", f"choose among {', '.join(SOURCES)} (comma-separated)", text)
    return names


def _subsets(value: Any) -> set[str]:
    """'{XL}{L}', ['{XL}', '{L}'] or ['XL'] -> {'XL', 'L'}."""
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return {tag.upper() for item in items if isinstance(item, str) for tag in _SUBSET_TAG.findall(item)}


def read_gigaspeech(
    root: Path,
    subset: str,
    sources: tuple[str, ...] = SOURCES,
    truecased: bool = False,
    session_minutes: float | None = None,
    max_turn_sec: float | None = None,
) -> Iterator[RecordedGroup | DialogError | Skipped]:
    """Each GigaSpeech audio of `subset` and `sources` as a conversation (or sessions of
    `session_minutes`), lazily."""
    root = Path(root)
    meta = root if root.is_file() else root / "GigaSpeech.json"
    if not meta.is_file():
        raise SynthError(
            f"{root}: no GigaSpeech.json (expected GigaSpeech's own layout: GigaSpeech.json, audio/)"
        )
    subset = subset.upper()
    if subset not in SUBSETS:
        raise ConfigError("subset", f"choose one of {', '.join(SUBSETS)}", subset)
    base = meta.parent
    for index, audio in _audios(meta):
        if isinstance(audio, DialogError):
            yield audio
            continue
        where = f"{meta} audio {audio.get('aid', f'#{index}')}"
        if not isinstance(audio.get("aid"), str) or not isinstance(audio.get("path"), str):
            yield DialogError("an audio without aid or path", f"{meta} audio #{index}")
            continue
        if subset not in _subsets(audio.get("subsets")):
            continue  # another subset's audio: not asked for
        kind = str(audio.get("source", "")).lower()
        if kind not in sources:
            yield Skipped(where, f"a {kind or 'unknown-source'} audio (--sources {','.join(sources)})")
            continue
        yield from _audio(audio, index, base, meta, where, subset, truecased, session_minutes, max_turn_sec)


def _audio(
    audio: dict[str, Any],
    index: int,
    base: Path,
    meta: Path,
    where: str,
    subset: str,
    truecased: bool,
    session_minutes: float | None,
    max_turn_sec: float | None,
) -> Iterator[RecordedGroup | DialogError | Skipped]:
    aid, path = audio["aid"], base / audio["path"]
    kind = str(audio["source"]).lower()
    sups: list[Supervision] = []
    notes: list[str] = []
    outside = 0
    for n, seg in enumerate(audio.get("segments") or []):
        sid = seg.get("sid", f"#{n}") if isinstance(seg, dict) else f"#{n}"
        if not isinstance(seg, dict) or not all(k in seg for k in ("sid", "begin_time", "end_time")):
            notes.append(f"{where} segment {sid}: left out, no sid, begin_time or end_time")
            continue
        if "subsets" in seg and subset not in _subsets(seg["subsets"]):
            outside += 1
            continue
        try:
            begin, end = float(seg["begin_time"]), float(seg["end_time"])
        except (TypeError, ValueError):
            notes.append(f"{where} segment {sid}: left out, its times are not numbers")
            continue
        speaker = seg.get("speaker")
        labelled = isinstance(speaker, str) and speaker.strip().upper() not in NO_SPEAKER
        sups.append(
            Supervision(
                id=str(sid),
                start=begin,
                duration=end - begin,
                text=seg.get("text_tn") if isinstance(seg.get("text_tn"), str) else None,
                speaker=speaker.strip() if labelled else None,  # type: ignore[union-attr]
            )
        )
    if not path.is_file():
        yield DialogError(f"no audio file {path} (is subset {subset} downloaded?)", where)
        return
    duration = audio.get("duration")
    recording = Recording(
        id=aid,
        open=lambda: FilePieces([AudioFile(path)], aid),
        path=path,
        where=where,
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        channels=int(audio.get("channels", 1) or 1),
    )
    extra = {
        "gigaspeech": {
            "aid": aid,
            "subset": subset,
            "source": kind,
            **{k: audio[k] for k in ("title", "url", "category") if isinstance(audio.get(k), str)},
            **({"segments_outside_subset": outside} if outside else {}),
        },
        "speech_style": SPEECH_STYLE.get(kind, "unknown"),
    }
    labelled = any(s.speaker for s in sups)
    settings = SegmentSettings(
        corpus="gigaspeech",
        prefix="gigaspeech",
        source=Source(dataset="gigaspeech", split=subset, index=index, path=str(meta), original_id=aid),
        rule="gigaspeech",
        truecased=truecased,
        session_minutes=session_minutes,
        extra=extra,
        notes=notes,
        all_unlabelled=None if labelled else SPEAKERS_NOTE,
        max_turn_sec=max_turn_sec,
    )
    yield from recording_groups(recording, sups, settings)


class _Scanner:
    """A JSON text read through a sliding buffer: values decoded one at a time."""

    def __init__(self, stream: io.TextIOBase):
        self.stream = stream
        self.decoder = json.JSONDecoder()
        self.buf, self.pos = "", 0

    def fill(self) -> bool:
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            return False
        self.buf, self.pos = self.buf[self.pos :] + chunk, 0
        return True

    def peek(self) -> str:
        """The next character that is not blank, "" at the end."""
        while True:
            self.pos = _BLANK.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos : self.pos + 1]

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            raise ValueError(f"expected {char!r}, found {found or 'the end'!r}")
        self.pos += 1

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if exc.pos >= len(self.buf) - 64 or exc.msg.startswith("Unterminated string"):
                    if self.fill():
                        continue
                raise ValueError(exc.msg) from None
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if number and end >= len(self.buf) - 64 and self.fill():
                continue  # a number at the buffer's end may go on
            self.pos = end
            return value


def _audios(meta: Path) -> Iterator[tuple[int, dict[str, Any] | DialogError]]:
    """(index, audio) for each item of the top-level object's `audios` list, streamed."""
    index = 0
    try:
        with open(meta, "rb") as raw:
            scan = _Scanner(io.TextIOWrapper(raw, encoding="utf-8-sig"))
            scan.expect("{")
            while scan.peek() != "}":
                key = scan.value()
                scan.expect(":")
                if key != "audios":
                    scan.value()
                else:
                    scan.expect("[")
                    while scan.peek() != "]":
                        item = scan.value()
                        yield (
                            index,
                            item
                            if isinstance(item, dict)
                            else DialogError("an audio that is not an object", f"{meta} audio #{index}"),
                        )
                        index += 1
                        if scan.peek() == ",":
                            scan.pos += 1
                    scan.pos += 1
                if scan.peek() == ",":
                    scan.pos += 1
    except ValueError as exc:
        yield index, DialogError(f"invalid JSON: {exc}", f"{meta} audio #{index}")
    except UnicodeDecodeError as exc:
        yield index, DialogError(f"invalid UTF-8: {exc.reason}", f"{meta} audio #{index}")
