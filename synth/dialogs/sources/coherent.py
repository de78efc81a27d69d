"""Coherent multi-session conversations (LoCoMo, REALTALK, Multi-Session Chat, Conversation
Chronicles, LongMemEval): one source item becomes ONE Dialog holding all its sessions in order,
each session a segment, with the item's questions as memory probes.

The readers of each layout turn their records into `RawSession`s and `RawQuestion`s; this module
applies the rules they share:

- A turn that cannot be spoken (nothing speakable after the text rules, e.g. a turn that reads
  only ";)", or longer than the turn limit) is left out of the speech and noted: one turn never
  costs a whole long conversation. A session left with no turn is left out and noted.
- Speakers are the people's names as the source gives them (stripped): one person, one label, so
  one voice for the whole conversation.
- What the source says of a turn that is not spoken (its id, an image's caption and address, a
  date) goes to the turn's metadata, never into the speech.
- A question becomes a probe when its text can be spoken and at least one of its evidence ids
  resolves to a kept turn; evidence ids that resolve to no turn (or to a turn left out) are
  noted on the probe; a question with no evidence, or none that resolves, is left out and noted.
  A probe's evidence always lies before it: probes are placed after their evidence (see
  synth.produce.probes).

Every note names the item and the turn or question, and is reported by the run."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...domain import Dialog, Probe, Segment, Source, Turn
from ...errors import ConfigError, DialogError, InvalidConversationId
from ...ids import check_conversation_id
from ...options import option
from ..build import DialogLimits
from ..text import clean_text, is_speakable

NOT_MENTIONED = "Not mentioned in the conversation."
"""The gold answer of an adversarial question (LoCoMo category 5): the conversation does not say."""

COHERENT_FORMATS = ("locomo", "msc", "chronicles", "longmemeval")
"""The layouts read as coherent conversations (`synth generate --format`; `auto` recognizes them)."""


@dataclass(frozen=True)
class CoherentConfig:
    """How a coherent multi-session source is read. The turn limit still applies per turn (a
    longer turn is left out and noted); the turn and character limits per dialog do not (the
    source file is read whole already; one LoCoMo conversation has up to 700 turns, a LongMemEval
    haystack thousands)."""

    session_gap_sec: float = option(
        3.0,
        flag="--session-gap",
        help="seconds of silence between the sessions of a coherent multi-session conversation "
        "(LoCoMo, REALTALK, MSC, Conversation Chronicles, LongMemEval; docs/memory.md)",
    )

    def __post_init__(self) -> None:
        if self.session_gap_sec < 0:
            raise ConfigError("session_gap", "must not be negative", self.session_gap_sec)


_EVIDENCE_SPLIT = re.compile(r"[;,\s]+")
_LEADING_ZEROS = re.compile(r"(?<![0-9])0+(?=[0-9])")


def same_id(turn_id: str) -> str:
    """A turn id as compared with evidence: LoCoMo's evidence sometimes writes "D30:05" for the
    turn "D30:5"."""
    return _LEADING_ZEROS.sub("", turn_id.strip())


@dataclass(frozen=True)
class RawTurn:
    """A turn as a source gives it: unchecked speaker and text, its own id, what else it says."""

    speaker: Any
    text: Any
    turn_id: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawSession:
    """A session as a source gives it; `info`: its number, date or time gap, as given."""

    turns: Sequence[RawTurn]
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RawQuestion:
    """A question as a source gives it: `evidence` lists the source's turn ids."""

    question: Any
    answer: Any
    evidence: Sequence[Any]
    category: Any = None
    adversarial: bool = False
    meta: Mapping[str, Any] = field(default_factory=dict)
    scoring: str = "f1"  # "f1", "f1-parts" (multi-hop: per comma-separated part), "f1-first"
    # (the gold answer's part before a ';'), "not-mentioned" (adversarial: right when it says so)


def evidence_ids(evidence: Any) -> list[str]:
    """The source's evidence ids as a flat list of strings: LoCoMo writes some as "D8:6; D9:17"
    in one string, or with stray spaces."""
    items = evidence if isinstance(evidence, (list, tuple)) else [evidence]
    out: list[str] = []
    for item in items:
        if item is None:
            continue
        out += [p for p in _EVIDENCE_SPLIT.split(str(item).strip()) if p]
    return out


def build_coherent(
    conversation_id: Any,
    sessions: Iterable[RawSession],
    questions: Iterable[RawQuestion],
    source: Source,
    limits: DialogLimits,
    session_gap_sec: float | None = None,
    voices: Mapping[str, str] | None = None,
) -> Dialog:
    """One coherent conversation from its sessions and questions (the module docstring's rules);
    DialogError only when nothing of it can be spoken or its id is unsafe."""
    where = source.describe()
    try:
        cid = check_conversation_id(conversation_id)
    except InvalidConversationId as exc:
        raise DialogError(str(exc), where, "conversation_id") from None
    notes: list[str] = []
    turns: list[Turn] = []
    segments: list[Segment] = []
    index_of: dict[str, int] = {}  # the source's turn id -> index in `turns`
    left_out: set[str] = set()
    for s, session in enumerate(sessions):
        first = len(turns)
        label = f"sessions[{s}]"
        for t, raw in enumerate(session.turns):
            name = raw.turn_id or f"{label}.turns[{t}]"
            problem, turn = _turn(raw, limits)
            if turn is None:
                notes.append(f"{where}: turn {name}: {problem}; left out of the speech")
                if raw.turn_id:
                    left_out.add(same_id(raw.turn_id))
                continue
            if raw.turn_id:
                index_of[same_id(raw.turn_id)] = len(turns)
            turns.append(turn)
        if len(turns) == first:
            notes.append(f"{where}: {label} ({_session_name(session)}): no turn can be spoken; left out")
            continue
        segments.append(Segment(source, first, len(turns) - 1, info=dict(session.info)))
    if not turns:
        raise DialogError("no turn of any session can be spoken", where, "sessions", cid)
    speakers = {t.speaker for t in turns}
    if len(speakers) > limits.max_speakers:
        raise DialogError(
            f"{len(speakers)} speakers, the limit is {limits.max_speakers}", where, "turns", cid
        )
    probes = _probes(cid, questions, index_of, left_out, where, notes)
    return Dialog(
        conversation_id=cid,
        turns=tuple(turns),
        source=source,
        voices=dict(voices or {}),
        segments=tuple(segments),
        join_pause_sec=session_gap_sec,
        probes=tuple(probes),
        notes=tuple(notes),
    )


def _session_name(session: RawSession) -> str:
    return ", ".join(f"{k} {v}" for k, v in session.info.items()) or "no date"


def _turn(raw: RawTurn, limits: DialogLimits) -> tuple[str, Turn | None]:
    """(why it cannot be spoken, None) or ("", the clean turn)."""
    if not isinstance(raw.speaker, str) or not raw.speaker.strip():
        return "the speaker is not a non-empty string", None
    if len(raw.speaker.strip()) > 64:
        return "the speaker is longer than 64 characters", None
    if not isinstance(raw.text, str):
        return f"the text is a {type(raw.text).__name__}, not a string", None
    if len(raw.text) > limits.max_turn_chars:
        return f"the text has {len(raw.text)} characters, the limit is {limits.max_turn_chars}", None
    text = clean_text(raw.text)
    if not is_speakable(text):
        return f"the text {raw.text.strip()[:40]!r} has no speakable characters", None
    meta = {k: v for k, v in raw.meta.items() if v not in (None, "", [], {})}
    if raw.turn_id:
        meta = {"source_id": raw.turn_id, **meta}
    return "", Turn(raw.speaker.strip(), text, meta)


def _probes(
    cid: str,
    questions: Iterable[RawQuestion],
    index_of: Mapping[str, int],
    left_out: set[str],
    where: str,
    notes: list[str],
) -> list[Probe]:
    probes = []
    for q, raw in enumerate(questions):
        name = f"qa[{q}]"
        ids = [same_id(i) for i in evidence_ids(raw.evidence)]
        question = clean_text(raw.question) if isinstance(raw.question, str) else ""
        if not is_speakable(question):
            notes.append(f"{where}: {name}: the question cannot be spoken; no probe")
            continue
        if not ids:
            notes.append(f"{where}: {name}: the question names no evidence; no probe")
            continue
        resolved: dict[int, str] = {}
        for i in ids:
            if i in index_of:
                resolved.setdefault(index_of[i], i)
        found = sorted(resolved)
        unresolved = [i for i in ids if i not in index_of]
        if not found:
            why = "only turns left out of the speech" if all(i in left_out for i in ids) else "no turn"
            notes.append(f"{where}: {name}: its evidence {', '.join(ids)} resolves to {why}; no probe")
            continue
        answer = NOT_MENTIONED if raw.adversarial else _answer_text(raw.answer)
        if answer is None:
            notes.append(f"{where}: {name}: the question has no answer; no probe")
            continue
        meta = dict(raw.meta)
        if unresolved:
            meta["unresolved_evidence"] = unresolved
        probes.append(
            Probe(
                probe_id=f"{cid}_q{q}",
                question=question,
                answer=answer,
                evidence=tuple(found),
                evidence_ids=tuple(resolved[k] for k in found),
                category=None if raw.category is None else str(raw.category),
                adversarial=raw.adversarial,
                scoring="not-mentioned" if raw.adversarial else raw.scoring,
                meta=meta,
            )
        )
    return probes


def _answer_text(answer: Any) -> str | None:
    """The answer as text (LoCoMo has integer answers: 2022); lists joined by commas."""
    if answer is None or isinstance(answer, bool):
        return None
    if isinstance(answer, (list, tuple)):
        parts = [str(a).strip() for a in answer if a is not None and str(a).strip()]
        return ", ".join(parts) or None
    text = str(answer).strip()
    return text or None
