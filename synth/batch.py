"""The batch client: any dialog source of `synth generate`, sent to one or more servers
(client-side round robin) with bounded concurrency.

Resume: conversations already in the local copy's manifest are not sent, and a server answering
ALREADY_EXISTS counts as done. With `local_out`, each streamed conversation is also written
locally (same atomic writer as the server), for servers whose disk the caller cannot see.
Failures (bad dialogs, RPC errors after retries) go to a JSONL file with their reasons."""

from __future__ import annotations

import itertools
import json
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import grpc

from synth_client import SummaryEvent, SynthClient, TurnEvent

from .errors import ConfigError, DialogError
from .records import METADATA_FILE, SAMPLES_FILE, ConversationMetadata, ManifestEntry, turn_files
from .writer import AlreadyWritten, DatasetWriter


@dataclass
class BatchSummary:
    sent: int = 0
    done: int = 0
    skipped_existing: int = 0
    failed: int = 0
    audio_sec: float = 0.0
    wall_sec: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)

    def format(self, failures_path: Path | None) -> str:
        rate = self.done / self.wall_sec if self.wall_sec else 0.0
        lines = [
            f"done {self.done} conversation(s), {self.audio_sec / 3600:.3f} h of audio in "
            f"{self.wall_sec:.1f} s ({rate:.2f} conv/s, "
            f"{self.audio_sec / self.wall_sec if self.wall_sec else 0:.1f}x real time)"
        ]
        if self.skipped_existing:
            lines.append(f"skipped {self.skipped_existing} already in the dataset")
        if self.failed:
            lines.append(f"FAILED {self.failed}" + (f"; reasons in {failures_path}" if failures_path else ""))
        return "\n".join(lines)


def _local_files(events: list[TurnEvent], summary: SummaryEvent) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for ev in events:
        wav, txt = turn_files(ev.turn_id)
        files[wav] = ev.wav
        files[txt] = (ev.transcript + "\n").encode("utf-8")
    files[METADATA_FILE] = ConversationMetadata.from_dict(summary.metadata).to_json().encode("utf-8")
    if summary.samples_jsonl:
        files[SAMPLES_FILE] = summary.samples_jsonl.encode("utf-8")
    return files


def run_batch(
    dialogs: Iterable[Any],
    servers: Sequence[str],
    concurrency: int = 8,
    local_out: Path | None = None,
    token: str | None = None,
    tls: bool = False,
    failures_path: Path | None = None,
    timeout: float | None = 600.0,
    seed: int | None = None,
    progress: bool = False,
    log: TextIO = sys.stderr,
) -> BatchSummary:
    """`dialogs` yields synth Dialogs or DialogErrors (from synth.sources.open_dialogs)."""
    if not servers:
        raise ConfigError("servers", "at least one server is needed")
    if concurrency < 1:
        raise ConfigError("concurrency", "must be at least 1", concurrency)
    writer = DatasetWriter(local_out) if local_out else None
    done_ids: set[str] = set()
    if writer:
        writer.recover()
        done_ids = writer.done_ids()
    clients = [SynthClient(s, token=token, tls=tls) for s in servers]
    rr = itertools.cycle(range(len(clients)))
    summary = BatchSummary()
    lock = threading.Lock()
    began = time.perf_counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="conv", file=log, dynamic_ncols=True)
    if failures_path:
        failures_path.parent.mkdir(parents=True, exist_ok=True)
        failures_path.unlink(missing_ok=True)

    def record_failure(item: dict[str, Any]) -> None:
        with lock:
            summary.failed += 1
            summary.failures.append(item)
            if failures_path:
                with open(failures_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
            print(
                f"error: {item['conversation_id'] or item['where']}: {item['code']}: {item['error']}",
                file=log,
            )
            if bar is not None:
                bar.update(1)

    def one(dialog: Any, client: SynthClient) -> None:
        turns: list[TurnEvent] = []
        try:
            for ev in client.synthesize(dialog, seed=seed, timeout=timeout):
                if isinstance(ev, TurnEvent):
                    turns.append(ev)
                elif writer is not None:
                    writer.write_files(
                        ev.conversation_id, _local_files(turns, ev), ManifestEntry.from_dict(ev.manifest_line)
                    )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                with lock:
                    summary.skipped_existing += 1
                return
            record_failure(
                {
                    "conversation_id": dialog.conversation_id,
                    "where": dialog.source.describe(),
                    "server": client.target,
                    "code": exc.code().name,
                    "error": exc.details(),
                }
            )
            return
        except AlreadyWritten:
            with lock:
                summary.skipped_existing += 1
            return
        except Exception as exc:  # local disk errors: report, keep the batch going
            record_failure(
                {
                    "conversation_id": dialog.conversation_id,
                    "where": dialog.source.describe(),
                    "server": client.target,
                    "code": "LOCAL",
                    "error": str(exc),
                }
            )
            return
        with lock:
            summary.done += 1
            summary.audio_sec += sum(t.duration_sec for t in turns)
            if bar is not None:
                bar.set_postfix(
                    audio_h=f"{summary.audio_sec / 3600:.3f}", failed=summary.failed, refresh=False
                )
                bar.update(1)

    pending: set[Future[None]] = set()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="synth-batch") as pool:
        for item in dialogs:
            if isinstance(item, DialogError):
                record_failure(
                    {
                        "conversation_id": item.conversation_id,
                        "where": item.where,
                        "server": "",
                        "code": "INVALID_INPUT",
                        "error": str(item),
                    }
                )
                continue
            if item.conversation_id in done_ids:
                summary.skipped_existing += 1
                continue
            while len(pending) >= concurrency:  # bounded: never holds the whole source in memory
                _, pending = wait(pending, return_when=FIRST_COMPLETED)
            summary.sent += 1
            pending.add(pool.submit(one, item, clients[next(rr)]))
        wait(pending)
    for c in clients:
        c.close()
    if bar is not None:
        bar.close()
    summary.wall_sec = time.perf_counter() - began
    return summary
