"""LoCoMo (snap-research/LoCoMo `data/locomo10.json`) and REALTALK (danny911kr/REALTALK
`data/Chat_*.json`): long multi-session conversations between two people, with questions whose
evidence lies far back. One sample, one coherent conversation (synth.dialogs.sources.coherent).

LoCoMo: a JSON array of samples (or one sample object), each
`{"sample_id", "conversation": {"speaker_a", "speaker_b", "session_1": [{"speaker", "dia_id",
"text", "img_url"?, "blip_caption"?, "query"?}], "session_1_date_time": "1:56 pm on 8 May, 2023",
...}, "qa": [{"question", "answer" | "adversarial_answer", "evidence": ["D1:3"], "category"}]}`.
Category 5 questions are adversarial: the conversation does not say (their `adversarial_answer`
is a plausible wrong answer, kept in the probe's metadata).

REALTALK: one conversation per file, the sessions at the top level (`session_N` with
`clean_text`, a per-turn `date_time`, `img_file`, `img_url`), `name: {speaker_1, speaker_2}`, the
same `qa`. Its session's date is its first turn's `date_time`.

Known pitfalls of the real files, handled: more `session_N_date_time` keys than sessions, integer
answers, questions with empty evidence, evidence ids that resolve to no turn, several ids in one
string."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import DialogError
from ...ids import derived_id
from ..build import DialogLimits
from .coherent import RawQuestion, RawSession, RawTurn, build_coherent

_SESSION = re.compile(r"session_(\d+)$")
ADVERSARIAL_CATEGORY = 5
# LoCoMo's own evaluation (task_eval/evaluation.py): multi-hop (1) scored per comma-separated part
# of the answer, open-domain (3) against the gold answer's part before a ';', adversarial (5)
# right when the answer says the conversation does not mention it.
SCORING = {1: "f1-parts", 3: "f1-first", 5: "not-mentioned"}


def looks_like_locomo(record: Any) -> bool:
    """A LoCoMo sample (`conversation` with session lists) or a REALTALK file (`session_N` at the
    top level with `qa` or `name`)."""
    if not isinstance(record, dict):
        return False
    conv = record.get("conversation")
    if isinstance(conv, dict) and any(_SESSION.match(k) for k in conv):
        return True
    return any(_SESSION.match(k) for k in record) and ("qa" in record or "name" in record)


def read_locomo(
    path: Path, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """Each sample of a LoCoMo file (an array, or one sample), or a REALTALK file, as one
    coherent conversation; a sample that cannot be read is a DialogError naming its index."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        yield DialogError(f"cannot read as JSON: {exc}", str(path))
        return
    samples = data if isinstance(data, list) else [data]
    for index, sample in enumerate(samples):
        where = f"{path} item {index}" if isinstance(data, list) else str(path)
        if not looks_like_locomo(sample):
            yield DialogError("not a LoCoMo sample nor a REALTALK conversation (no session_N lists)", where)
            continue
        try:
            yield _sample(sample, path, index, limits, session_gap_sec)
        except DialogError as exc:
            yield exc


def _sample(
    sample: Mapping[str, Any], path: Path, index: int, limits: DialogLimits, gap: float | None
) -> Dialog:
    realtalk = "conversation" not in sample
    conv = sample if realtalk else sample["conversation"]
    original = sample.get("sample_id")
    default = path.stem if realtalk else derived_id(path.stem, index)
    cid = original if isinstance(original, str) and original.strip() else default
    source = Source(
        dataset="realtalk" if realtalk else "locomo",
        path=str(path),
        index=None if realtalk else index,
        original_id=str(original) if original is not None else None,
    )
    sessions = [_session(conv, n, realtalk) for n in _session_numbers(conv)]
    questions = [_question(q) for q in sample.get("qa") or [] if isinstance(q, dict)]
    return build_coherent(cid, sessions, questions, source, limits, gap)


def _session_numbers(conv: Mapping[str, Any]) -> list[int]:
    """The sessions that are there (lists), in order; date keys without a session are ignored."""
    return sorted(
        int(m.group(1)) for k, v in conv.items() if (m := _SESSION.match(k)) and isinstance(v, list)
    )


def _session(conv: Mapping[str, Any], n: int, realtalk: bool) -> RawSession:
    turns = [_turn(t, realtalk) for t in conv[f"session_{n}"] if isinstance(t, dict)]
    info: dict[str, Any] = {"session": n}
    date = conv.get(f"session_{n}_date_time")
    if date is None and realtalk and turns:
        date = turns[0].meta.get("date_time")
    if date:
        info["date_time"] = date
    return RawSession(turns, info)


def _turn(t: Mapping[str, Any], realtalk: bool) -> RawTurn:
    text = t.get("clean_text", t.get("text")) if realtalk else t.get("text")
    meta: dict[str, Any] = {}
    if realtalk and t.get("date_time"):
        meta["date_time"] = t["date_time"]
    image = {
        k: t[v]
        for k, v in (
            ("url", "img_url"),
            ("file", "img_file"),
            ("caption", "blip_caption"),
            ("query", "query"),
        )
        if t.get(v)
    }
    if image:
        meta["image"] = image
    turn_id = t.get("dia_id")
    return RawTurn(t.get("speaker"), text, str(turn_id) if turn_id is not None else None, meta)


def _question(q: Mapping[str, Any]) -> RawQuestion:
    category = q.get("category")
    adversarial = category == ADVERSARIAL_CATEGORY or ("adversarial_answer" in q and "answer" not in q)
    meta = {"adversarial_answer": q["adversarial_answer"]} if "adversarial_answer" in q else {}
    scoring = SCORING.get(category, "f1") if isinstance(category, int) else "f1"
    return RawQuestion(
        q.get("question"), q.get("answer"), q.get("evidence") or [], category, adversarial, meta, scoring
    )
