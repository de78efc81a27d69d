"""LongMemEval (xiaowu0162/LongMemEval, MIT): a chat assistant's long history with one memory
question. One item, one coherent conversation (synth.dialogs.sources.coherent).

A file (`longmemeval_s.json`, `_m`, `_oracle`) is a JSON array of items
`{"question_id", "question_type", "question", "answer", "question_date", "haystack_session_ids",
"haystack_dates", "haystack_sessions": [[{"role": "user" | "assistant", "content",
"has_answer"?: true}, ...], ...], "answer_session_ids"}`. The same items come from the hub
(`hf:xiaowu0162/longmemeval`, whose splits are named after its files: longmemeval_s, the default
here, longmemeval_m, longmemeval_oracle) or from parquet.

- Every haystack session is a segment, in the order of their dates (LongMemEval_S and _M list
  them so already; _oracle does not; with a date missing or in another form, in the order given);
  its info: its number, its `session_id` and its `date_time` (the haystack date), as given. The
  speakers are the roles.
- Each turn gets the id "<session_id>:<n>" (n from 1, as LongMemEval's own turn ids count), so
  the question's evidence resolves: the turns marked `has_answer: true`, or, when none is
  marked, every turn of the `answer_session_ids` sessions.
- The question is one probe: its category the `question_type`, its metadata the `question_date`.
  A question whose id ends in "_abs" is an abstention question: adversarial, its gold answer
  coherent.NOT_MENTIONED (the source's explanation kept as `abstention_answer`).
- Assistant messages are often long (code, lists, essays): a turn over the turn limit
  (`max_turn_chars`) is left out of the speech with a note, as coherent's rules say; the
  conversation goes on without it. That is intended: a spoken conversation has no 9,000-character
  turns.

LongMemEval_M is 2.7 GB: `json_items.json_records` streams a JSON array item by item instead of loading it
whole; it also reads JSON Lines and single objects, for the other coherent readers."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import DialogError
from ..build import DialogLimits
from .coherent import RawQuestion, RawSession, RawTurn, build_coherent
from .json_items import file_dialogs, row_dialogs

DATASET = "longmemeval"
HUB_SPLIT = "longmemeval_s"
"""The split read from the hub when none is given: LongMemEval_S, the paper's main setting."""
ABSTENTION_SUFFIX = "_abs"
_ID_BREAKS = re.compile(r"[;,\s]+")  # what coherent.evidence_ids splits ids on
_DATE = re.compile(r"(\d{4}/\d{2}/\d{2}) \(\w+\) (\d{2}:\d{2})")


def looks_like_longmemeval(record: Any) -> bool:
    """A LongMemEval item: its haystack sessions and its question."""
    return isinstance(record, Mapping) and "haystack_sessions" in record and "question" in record


def read_longmemeval(
    path: Path, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """Each item of a LongMemEval file (a JSON array, streamed; or JSON Lines) as one coherent
    conversation; an item that cannot be read is a DialogError naming it."""
    return file_dialogs(path, DATASET, longmemeval_dialog, limits, session_gap_sec)


def longmemeval_rows(
    rows: Iterable[Any], split: str | None, limits: DialogLimits, session_gap_sec: float | None = None
) -> Iterator[Dialog | DialogError]:
    """LongMemEval items as rows of a Hugging Face dataset or parquet file."""
    return row_dialogs(rows, split, DATASET, longmemeval_dialog, limits, session_gap_sec)


def longmemeval_dialog(
    record: Any, source: Source, default_id: str, limits: DialogLimits, session_gap_sec: float | None = None
) -> Dialog:
    """One item as one coherent conversation with one probe (the module docstring's rules)."""
    where = source.describe()
    if not isinstance(record, Mapping):
        raise DialogError(f"expected an object, got {type(record).__name__}", where)
    haystack = record.get("haystack_sessions")
    if not isinstance(haystack, list):
        raise DialogError("missing or not a list of sessions", where, "haystack_sessions")
    ids = _as_list(record.get("haystack_session_ids"))
    dates = _as_list(record.get("haystack_dates"))
    answer_sessions = {str(s) for s in _as_list(record.get("answer_session_ids"))}
    sessions: list[RawSession] = []
    marked: list[str] = []  # turns with has_answer
    in_answer_sessions: list[str] = []
    for n, i in enumerate(_chronological(dates, len(haystack))):
        turns = haystack[i]
        session_id = str(ids[i]) if i < len(ids) and ids[i] is not None else f"session_{i + 1}"
        key = _ID_BREAKS.sub("_", session_id.strip())
        raw_turns = []
        for t, turn in enumerate(turns if isinstance(turns, list) else []):
            turn_id = f"{key}:{t + 1}"
            if not isinstance(turn, Mapping):
                raw_turns.append(RawTurn(None, turn, turn_id))
                continue
            has_answer = turn.get("has_answer") is True
            raw_turns.append(
                RawTurn(
                    turn.get("role"), turn.get("content"), turn_id, {"has_answer": True} if has_answer else {}
                )
            )
            if has_answer:
                marked.append(turn_id)
            if session_id in answer_sessions:
                in_answer_sessions.append(turn_id)
        info: dict[str, Any] = {"session": n + 1, "session_id": session_id}
        if i < len(dates) and dates[i]:
            info["date_time"] = dates[i]
        sessions.append(RawSession(raw_turns, info))
    qid = record.get("question_id")
    qid = str(qid).strip() if isinstance(qid, (str, int)) and not isinstance(qid, bool) else ""
    abstention = qid.endswith(ABSTENTION_SUFFIX)
    meta: dict[str, Any] = {}
    if record.get("question_date"):
        meta["question_date"] = record["question_date"]
    if abstention and record.get("answer") not in (None, ""):
        meta["abstention_answer"] = record["answer"]
    question = RawQuestion(
        record.get("question"),
        record.get("answer"),
        marked or in_answer_sessions,
        record.get("question_type"),
        abstention,
        meta,
    )
    src = Source(**{**source.to_dict(), "original_id": qid}) if qid else source
    return build_coherent(qid or default_id, sessions, [question], src, limits, session_gap_sec)


def _chronological(dates: list[Any], count: int) -> list[int]:
    """The sessions' order: by their dates when every one has a LongMemEval date ("2023/05/20
    (Sat) 02:21"), else as given. LongMemEval_S and _M are sorted already; _oracle is not."""
    keys = [_DATE.fullmatch(d.strip()) if isinstance(d, str) else None for d in dates[:count]]
    if len(keys) < count or not all(keys):
        return list(range(count))
    return sorted(range(count), key=lambda i: keys[i].group(1, 2))  # type: ignore[union-attr]


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else []
