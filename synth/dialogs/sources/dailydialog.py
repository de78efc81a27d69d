"""DailyDialog in its two public forms.

- The original release's text file (`dialogues_text.txt`, `dialogues_train.txt`, ...): one dialog
  per line, utterances separated by `__eou__`, speakers alternating A and B.
- The Hugging Face dataset `li2017dailydialog/daily_dialog` (parquet conversion), or any parquet
  with a `dialog` column of utterance lists, read through `datasets` in streaming mode.

Both are tokenized text ("it ' s"), cleaned by `synth.dialogs.text.clean_text` in `build_dialog`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...domain import Dialog, Source
from ...errors import DialogError, SynthError
from ...ids import derived_id
from ..build import DEFAULT_LIMITS, DialogLimits, build_dialog
from .chat import ChatFields, chat_dialog, is_chat_record

HF_DATASET_ID = "li2017dailydialog/daily_dialog"
HF_REVISION = "refs/convert/parquet"
EOU = "__eou__"
_SPLIT_IN_NAME = re.compile(r"dialogues_(train|validation|test)\.txt$")


def alternate(utterances: list[str]) -> list[tuple[str, str]]:
    """Utterances as the turns of speakers A and B in alternation, as DailyDialog has them."""
    return [("A" if i % 2 == 0 else "B", u) for i, u in enumerate(utterances)]


def read_dailydialog_text(
    path: Path, split: str | None = None, limit: int | None = None, limits: DialogLimits = DEFAULT_LIMITS
) -> Iterator[Dialog | DialogError]:
    """Yield one Dialog per line of the original release (index = 0-based line number; a blank
    line is no dialog and is passed over, the indices of the lines after it unchanged)."""
    m = _SPLIT_IN_NAME.search(path.name)
    split = split or (m.group(1) if m else None)
    count = 0
    with open(path, "rb") as fh:
        for index, raw in enumerate(fh):
            if not raw.strip():
                continue
            if limit is not None and count >= limit:
                return
            count += 1
            source = Source(dataset="dailydialog", split=split, index=index, path=str(path), line=index + 1)
            try:
                try:
                    line = raw.decode("utf-8").removeprefix("\ufeff")
                except UnicodeDecodeError as exc:
                    raise DialogError(f"invalid UTF-8 at byte {exc.start}", source.describe()) from None
                parts = [p for p in line.rstrip("\r\n").split(EOU)]
                if parts and not parts[-1].strip():
                    parts.pop()  # the line ends with __eou__
                yield build_dialog(
                    alternate(parts), derived_id("dailydialog", index, split), source, limits=limits
                )
            except DialogError as exc:
                yield exc


def read_huggingface(
    name_or_path: str,
    split: str = "train",
    limit: int | None = None,
    revision: str | None = None,
    limits: DialogLimits = DEFAULT_LIMITS,
    chat: ChatFields | None = None,
) -> Iterator[Dialog | DialogError]:
    """Stream rows from the hub or local parquet: DailyDialog-shaped (`dialog`: a list of
    utterances) or chat-format (`messages`, ShareGPT `conversations`, or `chat`'s mapping).

    `name_or_path` is a hub id (default revision: the parquet conversion), a `.parquet` file, or a
    folder of parquet files (laid out like the hub's `default/<split>/*.parquet` or flat)."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise SynthError("Hugging Face sources need `datasets`: pip install 'synth[hf]'") from exc
    ds = _load_streaming(datasets, name_or_path, split, revision)
    dataset_name = "dailydialog" if name_or_path == HF_DATASET_ID else Path(name_or_path).stem
    for index, row in enumerate(ds):
        if limit is not None and index >= limit:
            return
        source = Source(dataset=dataset_name, split=split, index=index)
        try:
            cid = derived_id(dataset_name, index, split)
            if chat is not None or is_chat_record(row):
                yield chat_dialog(row, source, cid, chat or ChatFields(), limits)
            else:
                yield _row_to_dialog(row, cid, source, limits)
        except DialogError as exc:
            yield exc


def _load_streaming(datasets: Any, name_or_path: str, split: str, revision: str | None) -> Any:
    path = Path(name_or_path)
    if path.exists():
        if path.is_dir():
            files = sorted(path.glob(f"**/{split}/*.parquet")) or sorted(path.glob(f"**/{split}*.parquet"))
            if not files:
                raise SynthError(f"{path}: no parquet files for split {split!r}")
        elif path.suffix == ".parquet":
            files = [path]
        else:
            raise SynthError(f"{path}: expected a .parquet file or a folder of them")
        return datasets.load_dataset(
            "parquet", data_files={split: [str(f) for f in files]}, split=split, streaming=True
        )
    if revision is None and name_or_path == HF_DATASET_ID:
        revision = HF_REVISION
    hub_reachable(name_or_path)
    try:
        return datasets.load_dataset(name_or_path, split=split, revision=revision, streaming=True)
    except Exception as exc:  # the hub or the name: say which dataset failed and why
        raise SynthError(f"cannot load dataset {name_or_path!r} split {split!r}: {exc}") from exc


HUB_CHECK_SEC = 3.0


def hub_reachable(name: str, timeout: float = HUB_CHECK_SEC) -> None:
    """Fail fast, naming what to do, when the hub cannot be reached: one TCP connection to its
    host (HF_ENDPOINT's) rather than `datasets`' five retries over about 25 s. Skipped in offline
    mode (`datasets` answers at once there) and behind a proxy (the proxy is what is reached)."""
    import os
    import socket
    from urllib.parse import urlsplit

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise SynthError(
            f"cannot load dataset {name!r}: the Hugging Face hub ({host}:{port}) cannot be reached "
            f"({exc.strerror or exc}). Offline, give the dialogs as local files instead: DailyDialog's "
            "dialogues_*.txt, or its parquet files (a folder laid out like the hub's "
            "default/<split>/*.parquet) to --dialogs"
        ) from None


def _row_to_dialog(row: dict[str, Any], cid: str, source: Source, limits: DialogLimits) -> Dialog:
    utterances = row.get("dialog")
    if not isinstance(utterances, list):
        raise DialogError("row has no 'dialog' list of utterances", source.describe(), "dialog")
    return build_dialog(alternate(utterances), cid, source, limits=limits)
