"""Chat-format dialog sources: most dialog datasets now ship as chat messages.

- `messages`: `{"messages": [{"role": "user", "content": "..."}, ...]}` (the common chat format;
  `content` may also be a list of parts, of which the `text` parts are read);
- `sharegpt`: `{"conversations": [{"from": "human", "value": "..."}, ...]}`;
- any other dialog layout through a field mapping (`dialog_field`, `speaker_field`,
  `text_field`), e.g. multi-session chats or conversational-memory sets.

Roles become speaker labels (by default user/human -> "user", assistant/gpt/bot -> "assistant";
others keep their name; `roles` maps them otherwise). System, tool and function messages are
dropped. Every message goes through synth.dialogs.markup's rules (code, tables, URLs and markup out), and
a message with nothing speakable left is reported as a DialogError naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import ConfigError, DialogError
from ...ids import derived_id
from ...options import option
from ..build import DEFAULT_LIMITS, DialogLimits, build_dialog
from ..markup import speakable
from .jsonl import MAX_LINE_BYTES, _lines

DEFAULT_ROLES = {
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "bot": "assistant",
}
DROPPED_ROLES = frozenset({"system", "tool", "function", "ipython", "developer"})
LAYOUTS = {"messages": ("messages", "role", "content"), "sharegpt": ("conversations", "from", "value")}
ID_FIELDS = ("conversation_id", "id", "conversation", "dialog_id")


@dataclass(frozen=True)
class ChatFields:
    """Where a record keeps its messages. None: found from the record (`messages`/`role`/
    `content` or `conversations`/`from`/`value`)."""

    dialog_field: str | None = option(
        None,
        help="chat formats: the field holding the list of messages (default: messages, or ShareGPT's "
        "conversations)",
    )
    speaker_field: str | None = option(
        None, help="chat formats: the field of a message naming its speaker (default: role / from)"
    )
    text_field: str | None = option(
        None, help="chat formats: the field of a message holding its text (default: content / value)"
    )
    roles: Mapping[str, str] = option(
        factory=dict,
        metavar="ROLE=SPEAKER,...",
        parse=lambda text: ChatFields.parse_roles(text),
        text=lambda roles: ",".join(f"{k}={v}" for k, v in roles.items()) or None,
        help="chat formats: speaker labels for roles (default: user/human -> user, assistant/gpt/bot -> "
        "assistant); system and tool messages are dropped",
    )

    @classmethod
    def parse_roles(cls, spec: str | None) -> dict[str, str]:
        """'user=A,assistant=B' -> {'user': 'A', 'assistant': 'B'}."""
        out: dict[str, str] = {}
        for part in (spec or "").split(","):
            if not part.strip():
                continue
            role, sep, label = part.partition("=")
            if not sep or not role.strip() or not label.strip():
                raise ConfigError("roles", "expected ROLE=SPEAKER[,ROLE=SPEAKER...]", spec)
            out[role.strip()] = label.strip()
        return out

    def layout(self, record: Mapping[str, Any]) -> tuple[str, str, str]:
        """(dialog field, speaker field, text field) for one record."""
        if self.dialog_field:
            known = next(
                (lay for lay in LAYOUTS.values() if lay[0] == self.dialog_field), ("", "role", "content")
            )
            return self.dialog_field, self.speaker_field or known[1], self.text_field or known[2]
        dialog, speaker, text = next(
            (lay for lay in LAYOUTS.values() if lay[0] in record), LAYOUTS["messages"]
        )
        return dialog, self.speaker_field or speaker, self.text_field or text

    @property
    def is_mapped(self) -> bool:
        return any((self.dialog_field, self.speaker_field, self.text_field, self.roles))


def is_chat_record(record: Any) -> bool:
    """Whether a record has the dialog field of one of the chat layouts."""
    return isinstance(record, Mapping) and any(d in record for d, _, _ in LAYOUTS.values())


def chat_pairs(record: Mapping[str, Any], fields: ChatFields, where: str) -> list[tuple[str, str]]:
    """The spoken (speaker, text) turns of one chat record."""
    dialog_field, speaker_field, text_field = fields.layout(record)
    messages = record.get(dialog_field)
    if not isinstance(messages, list):
        raise DialogError("missing or not a list of messages", where, dialog_field)
    pairs = []
    for i, message in enumerate(messages):
        here = f"{dialog_field}[{i}]"
        if not isinstance(message, Mapping):
            raise DialogError("expected an object", where, here)
        role = message.get(speaker_field)
        if not isinstance(role, str) or not role:
            raise DialogError("missing or not a string", where, f"{here}.{speaker_field}")
        if role.lower() in DROPPED_ROLES:
            continue
        text = _content_text(message.get(text_field), where, f"{here}.{text_field}")
        spoken = speakable(text)
        if not spoken.strip():
            raise DialogError(
                "nothing speakable left after removing code, tables, links and markup",
                where,
                f"{here}.{text_field}",
            )
        canonical = DEFAULT_ROLES.get(role.lower(), role)
        pairs.append((fields.roles.get(role) or fields.roles.get(canonical) or canonical, spoken))
    return pairs


def _content_text(content: Any, where: str, field: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style parts: keep the text ones
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type", "text") == "text"
        )
    raise DialogError("missing or not text", where, field)


def chat_dialog(
    record: Any, source: Source, default_id: str, fields: ChatFields, limits: DialogLimits = DEFAULT_LIMITS
) -> Dialog:
    """A Dialog from one chat-format record (its id from the usual id fields, else `default_id`); a
    DialogError naming where when nothing in it is spoken."""
    where = source.describe()
    if not isinstance(record, Mapping):
        raise DialogError(f"expected a JSON object, got {type(record).__name__}", where)
    cid = next((record[k] for k in ID_FIELDS if isinstance(record.get(k), (str, int))), None)
    cid = str(cid) if cid is not None else default_id
    pairs = chat_pairs(record, fields, where)
    if not pairs:
        raise DialogError("no spoken messages (only system or tool messages)", where)
    src = Source(**{**source.to_dict(), "original_id": cid})
    return build_dialog(pairs, cid, src, limits=limits)


def read_chat_jsonl(
    path: Path,
    fields: ChatFields = ChatFields(),
    limits: DialogLimits = DEFAULT_LIMITS,
) -> Iterator[Dialog | DialogError]:
    """A chat record per non-blank line, lazily; each bad line a DialogError naming it."""
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(_lines(fh), start=1):
            where = f"{path} line {lineno}"
            if raw is None:
                yield DialogError(f"line is longer than {MAX_LINE_BYTES} bytes", where)
                continue
            if not raw.strip():
                continue
            source = Source(dataset="jsonl", path=str(path), line=lineno)
            try:
                try:
                    record = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
                except UnicodeDecodeError as exc:
                    raise DialogError(f"invalid UTF-8 at byte {exc.start}", where) from None
                except json.JSONDecodeError as exc:
                    raise DialogError(f"invalid JSON: {exc.msg} (column {exc.colno})", where) from None
                yield chat_dialog(record, source, derived_id(path.stem, lineno), fields, limits)
            except DialogError as exc:
                yield exc


def jsonl_is_chat(path: Path) -> bool:
    """Whether a JSONL file's first record is in a chat layout (for format auto-detection)."""
    with open(path, "rb") as fh:
        for raw in _lines(fh):
            if raw is None or not raw.strip():
                continue
            try:
                return is_chat_record(json.loads(raw))
            except ValueError:
                return False
    return False
