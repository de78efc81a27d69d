"""Items of local files and rows of tables, read lazily for the coherent sources: a JSON array
streamed item by item (LongMemEval_M is 2.7 GB), JSON Lines, or one object; and the one loop that
makes each item a Dialog (or the DialogError naming it) for the readers of each layout."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ...domain import Dialog, Source
from ...errors import DialogError
from ...ids import derived_id
from ..build import DialogLimits
from .jsonl import MAX_LINE_BYTES, _lines

MakeDialog = Callable[[Any, Source, str, DialogLimits, "float | None"], Dialog]
"""A reader's (record, source, default id, limits, session gap) -> Dialog."""

_CHUNK = 4 * 1024 * 1024  # characters read at a time from a JSON array
_SPACE = re.compile(r"\s*")
_NUMBER_CHARS = "0123456789.eE+-"


def file_dialogs(
    path: Path,
    dataset: str,
    make: MakeDialog,
    limits: DialogLimits,
    gap: float | None,
    prefix: str | None = None,
) -> Iterator[Dialog | DialogError]:
    """Each record of a local file (json_records) as a Dialog, or the DialogError naming it;
    default ids from `prefix` (the file's stem) and the line or item number."""
    for index, line, record in json_records(path):
        if isinstance(record, DialogError):
            yield record
            continue
        source = Source(dataset=dataset, index=index, path=str(path), line=line)
        default_id = derived_id(prefix or path.stem, line if line is not None else index)
        try:
            yield make(record, source, default_id, limits, gap)
        except DialogError as exc:
            yield exc


def row_dialogs(
    rows: Iterable[Any],
    split: str | None,
    dataset: str,
    make: MakeDialog,
    limits: DialogLimits,
    gap: float | None,
) -> Iterator[Dialog | DialogError]:
    """Each row of a Hugging Face dataset or parquet file as a Dialog, or the DialogError naming it."""
    for index, row in enumerate(rows):
        source = Source(dataset=dataset, split=split, index=index)
        try:
            yield make(row, source, derived_id(dataset, index, split), limits, gap)
        except DialogError as exc:
            yield exc


def json_records(path: Path) -> Iterator[tuple[int, int | None, Any]]:
    """(index, line, record) for each record of a local JSON file, lazily: the items of a JSON
    array (streamed, never the whole file in memory), the lines of a JSON Lines file (`line`: its
    number), or the one object of a file that holds one (pretty-printed: its first line is "{").
    A record that cannot be read is a DialogError naming the file and the line or item; in an
    array, nothing after it can be found, so it is the last."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
            fh.seek(0)
            if head.startswith(b"["):
                yield from _array_items(fh, path)
            elif head.split(b"\n", 1)[0].strip() == b"{":
                yield from _whole(fh, path)
            else:
                yield from _json_lines(fh, path)
    except OSError as exc:
        yield 0, None, DialogError(f"cannot read: {exc.strerror or exc}", str(path))


def _whole(fh: BinaryIO, path: Path) -> Iterator[tuple[int, int | None, Any]]:
    try:
        yield 0, None, json.loads(fh.read().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        yield 0, None, DialogError(f"invalid UTF-8 at byte {exc.start}", str(path))
    except json.JSONDecodeError as exc:
        yield (
            0,
            None,
            DialogError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", str(path)),
        )


def _json_lines(fh: BinaryIO, path: Path) -> Iterator[tuple[int, int | None, Any]]:
    index = 0
    for lineno, raw in enumerate(_lines(fh), start=1):
        where = f"{path} line {lineno}"
        if raw is not None and not raw.strip():
            continue
        if raw is None:
            record: Any = DialogError(f"line is longer than {MAX_LINE_BYTES} bytes", where)
        else:
            try:
                record = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
            except UnicodeDecodeError as exc:
                record = DialogError(f"invalid UTF-8 at byte {exc.start}", where)
            except json.JSONDecodeError as exc:
                record = DialogError(f"invalid JSON at column {exc.colno}: {exc.msg}", where)
        yield index, lineno, record
        index += 1


def _array_items(fh: BinaryIO, path: Path) -> Iterator[tuple[int, int | None, Any]]:
    """The items of a JSON array, decoded one at a time from a sliding buffer."""
    stream = io.TextIOWrapper(fh, encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    buf, pos = "", 0

    def fill() -> bool:
        """Read on (the buffer keeps only what is not decoded yet); False at the end."""
        nonlocal buf, pos
        chunk = stream.read(_CHUNK)
        if not chunk:
            return False
        buf, pos = buf[pos:] + chunk, 0
        return True

    def next_char() -> str:
        """The next character that is not blank, "" at the end of the file."""
        nonlocal pos
        while True:
            pos = _SPACE.match(buf, pos).end()  # type: ignore[union-attr]
            if pos < len(buf) or not fill():
                return buf[pos : pos + 1]

    index = 0
    try:
        next_char()
        pos += 1  # the "["
        if next_char() == "]":
            return
        while True:
            where = f"{path} item {index}"
            next_char()  # to the item's first character: raw_decode does not pass over blanks
            while True:
                try:
                    value, end = decoder.raw_decode(buf, pos)
                except json.JSONDecodeError as exc:
                    cut = exc.pos >= len(buf) - 64 or exc.msg.startswith("Unterminated string")
                    if cut and fill():
                        continue  # the item goes on past the buffer
                    yield index, None, DialogError(f"invalid JSON: {exc.msg}", where)
                    return
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                cut = number and len(buf) - end < 64 and not buf[end:].lstrip(_NUMBER_CHARS)
                if not (cut and fill()):
                    break  # (a number that reaches the buffer's end may go on in the next chunk)
            pos = end
            yield index, None, value
            index += 1
            token = next_char()
            if token == "]":
                return
            if token != ",":
                problem = "the array is not closed" if not token else f"expected ',' or ']', found {token!r}"
                yield index, None, DialogError(f"invalid JSON: {problem}", f"{path} item {index}")
                return
            pos += 1
    except UnicodeDecodeError as exc:
        yield index, None, DialogError(f"invalid UTF-8: {exc.reason}", f"{path} item {index}")
