"""What validate finds, as plain records: each `Problem` names where it is (the conversation,
the file, the turn, the field) and carries the line `synth validate` prints; a
`ValidationReport` gathers them with what the dataset holds."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ...dataset.records import field_errors

Kind = Literal["error", "warning", "advice"]


@dataclass(frozen=True)
class Problem:
    """One finding of a check. `message` is the line validate prints (it names the place too);
    the other fields name the same place for programs: the conversation, the file (inside the
    conversation's folder, or at the dataset's root: manifest.jsonl), the turn and the field
    (dotted: "quality.wer"). `kind` "advice" is no problem but what to run for those before it."""

    message: str
    kind: Kind = "error"
    conversation: str | None = None
    file: str | None = None
    turn: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Place:
    """Where a check looks, as its messages name it (`label`: "conversations/ID/metadata.json
    turns[2]", "manifest.jsonl line 3") and as its problems record it."""

    label: str
    conversation: str | None = None
    file: str | None = None
    turn: int | None = None

    def __str__(self) -> str:
        return self.label

    def error(self, text: str, field: str | None = None) -> Problem:
        return self.said(f"{self.label}: {text}", field)

    def warning(self, text: str, field: str | None = None) -> Problem:
        return self.said(f"{self.label}: {text}", field, "warning")

    def said(self, message: str, field: str | None = None, kind: Kind = "error") -> Problem:
        """A problem here whose message is written whole (it names its place its own way)."""
        return Problem(message, kind, self.conversation, self.file, self.turn, field)

    def typed(self, obj: Any, record: type) -> list[Problem]:
        """Every required field of `record` that `obj` lacks or mistypes (nothing: it is typed)."""
        return [self.said(m, _field_named(m)) for m in field_errors(obj, record, self.label)]


def in_conversation(cid: str, file: str | None = None, record: str = "", turn: int | None = None) -> Place:
    """A place in the folder of conversation `cid`: the folder, one of its files, or a record of
    the file (`record`: "turns[2]", "line 3")."""
    label = f"conversations/{cid}" + (f"/{file}" if file else "") + (f" {record}" if record else "")
    return Place(label, cid, file, turn)


def _field_named(message: str) -> str | None:
    found = re.search(r"field '([^']+)'", message)
    return found.group(1) if found else None


@dataclass
class ValidationReport:
    """What `validate_dataset` found: every problem (errors, warnings and advice, in the order
    found) and what the dataset holds (conversations and turns read, seconds of turn audio).
    `ok` when no problem is an error."""

    problems: list[Problem] = field(default_factory=list)
    conversations: int = 0
    turns: int = 0
    audio_sec: float = 0.0

    def add(self, problems: Iterable[Problem]) -> None:
        self.problems.extend(problems)

    def _messages(self, kind: Kind) -> list[str]:
        return [p.message for p in self.problems if p.kind == kind]

    @property
    def errors(self) -> list[str]:
        return self._messages("error")

    @property
    def warnings(self) -> list[str]:
        return self._messages("warning")

    @property
    def advice(self) -> list[str]:
        """What to run, for the errors and warnings."""
        return self._messages("advice")

    @property
    def ok(self) -> bool:
        return not any(p.kind == "error" for p in self.problems)

    def format(self, max_lines: int = 50) -> str:
        lines = [
            f"{self.conversations} conversations, {self.turns} turns, {self.audio_sec / 3600:.3f} h of audio"
        ]
        for label, items in (("ERROR", self.errors), ("warning", self.warnings)):
            lines += [f"{label}: {m}" for m in items[:max_lines]]
            if len(items) > max_lines:
                lines.append(f"... and {len(items) - max_lines} more {label.lower()}s")
        lines += [f"to do: {m}" for m in self.advice]
        lines.append("OK" if self.ok else f"FAILED: {len(self.errors)} error(s)")
        return "\n".join(lines)
