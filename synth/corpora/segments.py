"""Long recordings with time-stamped segments (Lhotse supervisions, GigaSpeech segments) as
conversations: the rules both readers share.

A recording is one conversation, or with `session_minutes` consecutive pieces of about that
many minutes, cut only between segments (never inside one, never where two overlap). Each segment
that is kept becomes one turn, in time order, with its speaker, read from its channels, at the
corpus's own start and end (`Span`): real gaps and overlaps. A conversation's time 0 is its
recording's start (a cut's start for a Lhotse cut), and for a later piece its first segment's
start; `recording.offset_sec` in metadata says which, and every turn keeps its segment id and its
start and end in the recording (`segment_id`, `source_start`, `source_end`).

Left out, each noted with its recording and segment (metadata `source_notes`, the run summary):
a segment with no text, one longer than the speech profile allows (llama-omni: 30 s), a transcript that its rule cleans to nothing (GigaSpeech's garbage
utterances, Switchboard's noise-only segments), one with a tag its rule does not know, times that
are not inside the recording, and a segment that starts before the same speaker's previous one
ends (a speaker cannot overlap themself). A recording with nothing left is reported as skipped.

Speakers: the corpus's labels, kept. A segment without one is by `unknown` (`unknown_ch<N>` on
channel N of a recording with several channels): never a person made up. A label that the corpus
puts on more than one channel of one recording (Lhotse's Switchboard recipe labels both sides of
a call `<call>A`) is kept per channel as `<label>_ch<N>`; metadata `speaker_labels` says which.

Transcript rules (`transcript_style` in metadata names the one applied, `transcript_case` what
was done to the case):
- `plain`: the text as given, whitespace and spacing around punctuation normalized.
- `gigaspeech`: `<COMMA>` `<PERIOD>` `<QUESTIONMARK>` `<EXCLAMATIONPOINT>` become , . ? ! on the
  word before; the garbage tags `<SIL>` `<MUSIC>` `<NOISE>` `<OTHER>` are removed, and a segment
  of nothing else is left out (GigaSpeech's authors say to discard those); any other <TAG> leaves
  the segment out.
- `switchboard` (the LDC conventions of Switchboard's MS98 transcripts and Fisher): noise and
  event tags in brackets (`[laughter]`, `[noise]`, `[vocalized-noise]`, `[silence]`, `[cough]`...)
  removed; a word said laughing `[laughter-yes]` -> `yes`; a mispronounced word
  `[wea[sonable]-/reasonable]` -> `reasonable` (the word meant); a partial word keeps what was
  said and a hyphen where it was cut off (`absolute[ly]-` -> `absolute-`, `-[th]at` -> `-at`);
  `<b_aside>`, `<e_aside>`, braces, `~` and pronunciation-variant suffixes (`_1`) removed;
  uncertain words `((word))` kept without the parentheses; a segment with unintelligible speech
  `(( ))` is left out (its transcript lacks what was said).
- `auto` (Lhotse): per recording, `gigaspeech` when its texts hold GigaSpeech's tags,
  `switchboard` when they hold bracketed noise tags, partial words, asides or `((`, else `plain`.
Case is kept as given; with `truecase`, the transcripts of a recording written all in upper case
are truecased (lower case, a capital at each sentence start, and `I`), others kept as given."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dialogs.text import clean_text, is_speakable
from ..domain import Skipped, Source
from ..errors import ConfigError, InvalidConversationId
from ..ids import check_conversation_id, slug
from ..produce.recorded import Pieces, RecordedGroup, Span, Utterance
from .librispeech import truecase

RULES = ("auto", "plain", "gigaspeech", "switchboard")
TOLERANCE_SEC = 0.01  # times within this of each other are the same (validate's tolerance)
UNKNOWN = "unknown"

GIGASPEECH_PUNCTUATION = {"<COMMA>": ",", "<PERIOD>": ".", "<QUESTIONMARK>": "?", "<EXCLAMATIONPOINT>": "!"}
GIGASPEECH_GARBAGE = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")
_TAG = re.compile(r"<[A-Za-z_]+>")
_GIGASPEECH_MARKS = re.compile(r"<(?:COMMA|PERIOD|QUESTIONMARK|EXCLAMATIONPOINT|SIL|MUSIC|NOISE|OTHER)>")
_SWITCHBOARD_MARKS = re.compile(
    r"\[(?:laugh|noise|vocalized|silence|lipsmack|breath|cough|sigh|sneeze|mn\b)[^\]]*\]"
    r"|\w\[[^\]\s]*\]-|-\[[^\]\s]*\]\w|<[be]_aside>|\(\(",
    re.I,
)
_ASIDE = re.compile(r"^<[be]_aside>$", re.I)
_LAUGHING = re.compile(r"^\[laughter-(.+)\]$", re.I)
_MISPRONOUNCED = re.compile(r"^\[(.+)/([^/\[\]]+)\]$")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_UNCERTAIN = re.compile(r"\(\((.*?)\)\)")
_VARIANT = re.compile(r"_\d+$")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def _gigaspeech(text: str) -> tuple[str | None, str]:
    tags = _TAG.findall(text)
    unknown = [t for t in tags if t not in GIGASPEECH_PUNCTUATION and t not in GIGASPEECH_GARBAGE]
    if unknown:
        return None, f"a tag the GigaSpeech rule does not know ({unknown[0]})"
    said = _TAG.sub(lambda m: " " + GIGASPEECH_PUNCTUATION.get(m.group(0), "") + " ", text)
    said = clean_text(said)
    if not is_speakable(said):
        garbage = [t for t in tags if t in GIGASPEECH_GARBAGE]
        if garbage:
            return None, f"a garbage utterance ({' '.join(dict.fromkeys(garbage))})"
        return None, "no words"
    return said, ""


def _switchboard_token(token: str) -> str:
    if _ASIDE.match(token):
        return ""
    m = _LAUGHING.match(token)
    if m:
        return _switchboard_token(m.group(1))
    m = _MISPRONOUNCED.match(token)
    if m:
        return m.group(2)
    if "[" in token or "]" in token:  # a noise tag, or a partial word: what was said, its hyphen
        said = _BRACKETED.sub("", token).replace("[", "").replace("]", "")
        if not any(ch.isalnum() for ch in said):
            return ""
        token = said
    return _VARIANT.sub("", token.replace("{", "").replace("}", "").replace("~", ""))


def _switchboard(text: str) -> tuple[str | None, str]:
    if any(not inner.strip() for inner in _UNCERTAIN.findall(text)):
        return None, "unintelligible speech marked (( ))"
    text = _UNCERTAIN.sub(lambda m: " " + m.group(1) + " ", text)
    said = clean_text(" ".join(_switchboard_token(t) for t in text.split()))
    if not is_speakable(said):
        return None, "only noise or event tags"
    return said, ""


def _plain(text: str) -> tuple[str | None, str]:
    said = clean_text(text)
    return (said, "") if is_speakable(said) else (None, "no words")


CLEANERS: dict[str, Callable[[str], tuple[str | None, str]]] = {
    "plain": _plain,
    "gigaspeech": _gigaspeech,
    "switchboard": _switchboard,
}


def clean_transcript(text: str, rule: str) -> tuple[str | None, str]:
    """(the clean transcript, "") or (None, why the segment is left out), by `rule`."""
    return CLEANERS[rule](text)


def detect_rule(texts: Sequence[str]) -> str:
    """The transcript convention of one recording's texts (see the module's `auto`)."""
    joined = "\n".join(texts)
    if _GIGASPEECH_MARKS.search(joined):
        return "gigaspeech"
    if _SWITCHBOARD_MARKS.search(joined):
        return "switchboard"
    return "plain"


def truecase_text(text: str) -> str:
    """'HELLO, I'M HERE. ARE YOU?' -> "Hello, I'm here. Are you?" (each sentence truecased)."""
    return " ".join(truecase(part) for part in _SENTENCE_END.split(text))


def _case(texts: Sequence[str]) -> str:
    letters = "".join(ch for t in texts for ch in t if ch.isalpha())
    if letters and letters.isupper():
        return "upper"
    if letters and letters.islower():
        return "lower"
    return "mixed"


@dataclass(frozen=True)
class Supervision:
    """A time-stamped segment of a recording as the corpus gives it (times in the recording)."""

    id: str
    start: float
    duration: float
    text: str | None
    speaker: str | None = None
    channels: tuple[int, ...] | None = None  # None: every channel of the recording
    meta: Mapping[str, Any] = field(default_factory=dict)  # per-speaker facts (gender), kept

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Recording:
    """What the readers know of one long recording: its id, how to open it for pieces, its
    length (None: unknown) and number of channels, the file named in turns (`source_file`), and
    where it is described (for messages)."""

    id: str
    open: Callable[[], Pieces]
    path: Path
    where: str
    duration: float | None = None
    channels: int = 1
    offset: float = 0.0  # the conversation's time 0 in the recording (a cut's start)
    end: float | None = None  # where a cut ends (segments past it are outside the cut)


def conversation_id(prefix: str, recording_id: str, piece: int) -> str:
    """`<prefix>_<recording id>_<piece:03d>`; a recording id that is not a safe name is slugged
    and given a short hash of itself, so two ids never meet."""
    candidate = f"{prefix}_{recording_id}_{piece:03d}"
    try:
        return check_conversation_id(candidate)
    except InvalidConversationId:
        digest = hashlib.sha1(recording_id.encode()).hexdigest()[:8]
        return f"{prefix}_{slug(recording_id)[:80]}_{digest}_{piece:03d}"


def check_name(name: str) -> str:
    """The corpus name, checked: it goes into conversation ids and voice ids."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,39}", name):
        raise ConfigError("name", "use up to 40 lower-case letters, digits, '_' and '-'", name)
    return name


def check_session_minutes(minutes: float | None) -> None:
    """Refuses a session length that is not above 0 (a ConfigError naming session_minutes)."""
    if minutes is not None and not minutes > 0:
        raise ConfigError("session_minutes", "must be more than 0 minutes", minutes)


def pieces_of(kept: Sequence[Supervision], minutes: float | None) -> list[list[Supervision]]:
    """The whole recording, or consecutive pieces of at least `minutes` (from their first
    segment's start to the latest end), each cut at the first boundary after that where no
    segment crosses it; a last piece shorter than half of `minutes` joins the one before."""
    if not minutes or not kept:
        return [list(kept)]
    target = minutes * 60
    pieces: list[list[Supervision]] = []
    current: list[Supervision] = []
    reach = 0.0
    for sup in kept:
        if current and reach - current[0].start >= target and sup.start >= reach - TOLERANCE_SEC:
            pieces.append(current)
            current = []
        current.append(sup)
        reach = sup.end if len(current) == 1 else max(reach, sup.end)
    if pieces and reach - current[0].start < target / 2:
        pieces[-1].extend(current)
    else:
        pieces.append(current)
    return pieces


def _labels(sups: Sequence[Supervision], channels: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Segment id -> speaker label, and what metadata says of the labels."""
    seen: dict[str, set[tuple[int, ...] | None]] = {}
    for s in sups:
        if s.speaker:
            seen.setdefault(s.speaker, set()).add(s.channels)
    split = {
        label
        for label, chans in seen.items()
        if len(chans) > 1 and all(c is not None and len(c) == 1 for c in chans)
    }
    out: dict[str, str] = {}
    unlabelled = 0
    for s in sups:
        one = s.channels[0] if s.channels is not None and len(s.channels) == 1 else None
        if not s.speaker:
            unlabelled += 1
            out[s.id] = f"{UNKNOWN}_ch{one}" if channels > 1 and one is not None else UNKNOWN
        elif s.speaker in split:
            out[s.id] = f"{s.speaker}_ch{one}"
        else:
            out[s.id] = s.speaker
    info: dict[str, Any] = {"source": "corpus" if not unlabelled else "corpus, where it gives them"}
    if unlabelled:
        info["unlabelled_segments"] = unlabelled
        info["unlabelled_as"] = f"{UNKNOWN} (not one person: the corpus does not say who speaks)"
    if split:
        info["kept_per_channel"] = sorted(split)
    return out, info


@dataclass(frozen=True)
class SegmentSettings:
    """What a reader says of its recordings' conversations. `rule`: a transcript rule or
    `auto`; `truecased`: truecase a recording written all in upper case; `session_minutes`: cut
    into pieces of about that long (None: one conversation); `extra`: the reader's own metadata;
    `notes`: what the reader left out already; `all_unlabelled`: metadata's word on the speakers
    of a corpus that labels none (GigaSpeech); `max_turn_sec`: the longest turn the speech profile
    allows (llama-omni: Whisper's 30 s window), longer segments are left out."""

    corpus: str
    prefix: str
    source: Source
    rule: str
    truecased: bool = False
    session_minutes: float | None = None
    extra: Mapping[str, Any] | None = None
    notes: Sequence[str] = ()
    all_unlabelled: str | None = None
    max_turn_sec: float | None = None


@dataclass(frozen=True)
class _Kept:
    """The segments of a recording that become turns (time order), their clean texts and
    speaker labels, and what metadata says of them (shared by every piece)."""

    segments: list[Supervision]
    texts: dict[str, str]
    labels: dict[str, str]
    rule: str
    case: str  # metadata's transcript_case
    speaker_labels: Any  # metadata's speaker_labels
    by_channel: dict[str, list[str]]  # channel -> the labels heard on it


_CASE_NOTES = {
    "upper": "upper case, as the corpus gives it",
    "lower": "lower case, as the corpus gives it",
    "mixed": "as the corpus gives it",
}
_TRUECASED_NOTE = "truecased from upper case: a capital at each sentence start and for I"


class RecordingGroups:
    """The conversations of one recording (see the module): its segments screened (times, text,
    length), their transcripts cleaned, their speakers labelled, each speaker's self-overlaps left
    out, and what is kept cut into pieces; everything left out is noted in the piece it falls in."""

    def __init__(self, recording: Recording, settings: SegmentSettings):
        self.recording, self.settings = recording, settings
        self.left: list[tuple[float | None, str]] = [(None, note) for note in settings.notes]  # (when, what)

    def __call__(self, sups: Sequence[Supervision]) -> Iterator[RecordedGroup | Skipped]:
        ordered = sorted(sups, key=lambda s: (s.start, s.end, s.id))
        kept = self._keep(ordered)
        if not kept.segments:
            left = self.left
            reason = "no segment left" + (f" ({len(left)} left out: {left[0][1]})" if left else "")
            yield Skipped(self.recording.where, reason)
            return
        self.left.sort(key=lambda x: -float("inf") if x[0] is None else x[0])  # in the recording's order
        pieces = pieces_of(kept.segments, self.settings.session_minutes)
        for n in range(len(pieces)):
            yield self._group(kept, pieces, n)

    def _leave_out(self, sup: Supervision, why: str) -> None:
        self.left.append((sup.start, f"{self.recording.where} segment {sup.id}: left out, {why}"))

    def _keep(self, ordered: list[Supervision]) -> _Kept:
        """The segments that become turns, with their texts and labels."""
        settings = self.settings
        rule = detect_rule([s.text for s in ordered if s.text]) if settings.rule == "auto" else settings.rule
        timed = self._timed(ordered)
        texts, cased = self._texts(timed, rule)
        labels, label_info = _labels([s for s in timed if s.id in texts], self.recording.channels)
        segments = self._not_self_overlapping(timed, texts, labels)
        truecased = settings.truecased and cased == "upper"
        return _Kept(
            segments,
            texts,
            labels,
            rule,
            _TRUECASED_NOTE if truecased else _CASE_NOTES[cased],
            settings.all_unlabelled or label_info,
            _speakers_by_channel(segments, labels),
        )

    def _timed(self, ordered: list[Supervision]) -> list[Supervision]:
        """The segments with a unique id, a length, times inside the recording (or cut), text,
        and no longer than the speech profile allows; the others left out, each saying why."""
        ids: set[str] = set()
        timed: list[Supervision] = []
        for sup in ordered:
            if sup.id in ids:
                self._leave_out(sup, "another segment of this recording has its id")
                continue
            ids.add(sup.id)
            why = self._unfit(sup)
            if why:
                self._leave_out(sup, why)
            else:
                timed.append(sup)
        return timed

    def _unfit(self, sup: Supervision) -> str:
        """Why a segment's times, text or length leave it out ("" if they do not)."""
        recording, max_turn_sec = self.recording, self.settings.max_turn_sec
        end = recording.end if recording.end is not None else recording.duration
        low = recording.offset if recording.end is not None else 0.0
        if not sup.duration > 0:
            return f"its duration is {sup.duration:g} s"
        if sup.start < low - TOLERANCE_SEC or (end is not None and sup.end > end + TOLERANCE_SEC):
            inside = "cut" if recording.end is not None else "recording"
            return f"{sup.start:.3f}-{sup.end:.3f} s is not inside its {inside}" + (
                f" ({low:.3f}-{end:.3f} s)" if end is not None else ""
            )
        if sup.text is None or not sup.text.strip():
            return "it has no text"
        if max_turn_sec is not None and sup.duration > max_turn_sec + TOLERANCE_SEC:
            return (
                f"it lasts {sup.duration:.2f} s, longer than the speech profile's {max_turn_sec:g} s "
                "(Whisper's window; --speech-profile rate:N keeps it)"
            )
        return ""

    def _texts(self, timed: list[Supervision], rule: str) -> tuple[dict[str, str], str]:
        """Segment id -> its transcript cleaned by `rule` (truecased if asked and all upper
        case), and the case the corpus gives them in; a segment cleaned to nothing left out."""
        texts: dict[str, str] = {}
        for sup in timed:
            said, why = clean_transcript(sup.text or "", rule)
            if said is None:
                self._leave_out(sup, why)
            else:
                texts[sup.id] = said
        cased = _case(list(texts.values()))
        if self.settings.truecased and cased == "upper":
            texts = {k: truecase_text(v) for k, v in texts.items()}
        return texts, cased

    def _not_self_overlapping(
        self, timed: list[Supervision], texts: Mapping[str, str], labels: Mapping[str, str]
    ) -> list[Supervision]:
        """The segments with a text, less each that starts before its speaker's previous one ends
        (a speaker cannot overlap themself)."""
        kept: list[Supervision] = []
        speaker_end: dict[str, tuple[float, str]] = {}
        for sup in timed:
            if sup.id not in texts:
                continue
            label = labels[sup.id]
            before = speaker_end.get(label)
            if before is not None and sup.start < before[0] - TOLERANCE_SEC:
                self._leave_out(
                    sup, f"it starts before {label}'s segment {before[1]} ends ({before[0]:.3f} s)"
                )
                continue
            speaker_end[label] = (sup.end, sup.id)
            kept.append(sup)
        return kept

    def _notes(self, pieces: Sequence[Sequence[Supervision]], n: int) -> tuple[str, ...]:
        """What was left out within piece `n` (the first piece also all before it, and the
        reader's notes)."""
        hi = pieces[n + 1][0].start if n + 1 < len(pieces) else float("inf")
        lo = pieces[n][0].start if n else -float("inf")
        return tuple(
            what
            for when, what in self.left
            if (when is None and n == 0) or (when is not None and lo <= when < hi)
        )

    def _group(self, kept: _Kept, pieces: Sequence[Sequence[Supervision]], n: int) -> RecordedGroup:
        """Piece `n` as a conversation: its turns on a timeline starting at its offset."""
        recording, settings, piece = self.recording, self.settings, pieces[n]
        offset = recording.offset if n == 0 else piece[0].start
        speaker_meta: dict[str, dict[str, Any]] = {}
        for sup in piece:
            if sup.meta:
                speaker_meta.setdefault(kept.labels[sup.id], dict(sup.meta))
        return RecordedGroup(
            conversation_id=conversation_id(settings.prefix, recording.id, n),
            source=settings.source,
            corpus=settings.corpus,
            utterances=tuple(_utterance(s, kept, recording.path, offset) for s in piece),
            speaker_meta=speaker_meta,
            extra=self._extra(kept, offset, n, len(pieces)),
            recording=recording.open,
            notes=self._notes(pieces, n),
        )

    def _extra(self, kept: _Kept, offset: float, n: int, pieces: int) -> dict[str, Any]:
        """A piece's metadata: the transcript rule and case, timing, speakers, where it lies in
        its recording, then the reader's own."""
        recording = self.recording
        return {
            "transcript_style": kept.rule,
            "transcript_case": kept.case,
            "gap_distribution": "corpus",
            "timing": "the corpus's own start and end of every turn (real gaps and overlaps)",
            "speaker_labels": kept.speaker_labels,
            "recording": {
                "id": recording.id,
                "offset_sec": round(offset, 6),
                **({"duration_sec": recording.duration} if recording.duration is not None else {}),
                "channels": recording.channels,
                **(
                    {"speakers_by_channel": kept.by_channel}
                    if recording.channels > 1 and kept.by_channel
                    else {}
                ),
                "piece": n,
                "pieces": pieces,
            },
            **dict(self.settings.extra or {}),
        }


def _speakers_by_channel(kept: Sequence[Supervision], labels: Mapping[str, str]) -> dict[str, list[str]]:
    """Channel -> the speaker labels heard on it, in order of first appearance."""
    by_channel: dict[str, list[str]] = {}
    for sup in kept:
        if sup.channels is not None:
            for c in sup.channels:
                by_channel.setdefault(str(c), [])
                if labels[sup.id] not in by_channel[str(c)]:
                    by_channel[str(c)].append(labels[sup.id])
    return by_channel


def _utterance(s: Supervision, kept: _Kept, path: Path, offset: float) -> Utterance:
    """A kept segment as a turn: at the corpus's own times, less the conversation's offset."""
    return Utterance(
        kept.labels[s.id],
        path,
        kept.texts[s.id],
        Span(s.start, s.duration, round(s.start - offset, 6), s.channels),
        {
            "segment_id": s.id,
            "source_start": round(s.start, 6),
            "source_end": round(s.end, 6),
            **({"channel": list(s.channels)} if s.channels is not None else {}),
        },
    )


def recording_groups(
    recording: Recording,
    sups: Sequence[Supervision],
    settings: SegmentSettings | None = None,
    **fields: Any,
) -> Iterator[RecordedGroup | Skipped]:
    """The conversations of one recording (see the module): `RecordingGroups` with `settings`,
    or with SegmentSettings made of `fields` (corpus=..., rule=...)."""
    return RecordingGroups(recording, settings if settings is not None else SegmentSettings(**fields))(sups)
