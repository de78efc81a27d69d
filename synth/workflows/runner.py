"""The resumable runner: a producer (the TTS pipeline, or a corpus converter) over a source into
a dataset folder: resume, duplicate ids, `--on-error`, shards, progress and parallel workers;
each conversation is streamed turn by turn into its staging folder (synth.writer.Staging)."""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TextIO

from ..dataset.records import ManifestEntry
from ..dataset.writer import DatasetWriter, Recovery
from ..domain import Conversation, Source
from ..errors import ConfigError, DialogError, SynthError, VoiceError
from ..produce.pipeline import Pipeline
from .sharding import Shard

FAILURES = "failures.jsonl"


@dataclass
class RunSummary:
    generated: int = 0
    skipped_existing: int = 0
    other_shards: int = 0
    failed: int = 0
    audio_sec: float = 0.0
    wall_sec: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)
    asr_failed: list[str] = field(default_factory=list)  # "<id>/turn_<n>" over the ASR threshold
    asr_threshold: float | None = None
    failures_path: str = FAILURES

    @property
    def complete(self) -> bool:
        """No rejected item and no turn over the ASR threshold (exit code 0, else 3)."""
        return not self.failed and not self.asr_failed

    def format(self) -> str:
        rtf = self.audio_sec / self.wall_sec if self.wall_sec else 0.0
        lines = [f"generated {self.generated} conversation(s)"]
        if self.generated:
            lines[0] += (
                f", {self.audio_sec / 3600:.3f} h of audio in {self.wall_sec:.1f} s ({rtf:.1f}x real time)"
            )
        if self.skipped_existing:
            lines.append(f"skipped {self.skipped_existing} already in the manifest (resume)")
        if self.other_shards:
            lines.append(f"left {self.other_shards} to the other shards")
        rec = self.recovery
        if rec.temp_removed or rec.orphans_removed or rec.manifest_tail_truncated or rec.torn_lines_removed:
            lines.append(
                f"cleaned up an interrupted run: {len(rec.temp_removed)} temporary and "
                f"{len(rec.orphans_removed)} unlisted folder(s)"
                + (", a cut manifest line" if rec.manifest_tail_truncated else "")
                + (f", torn manifest line(s) {rec.torn_lines_removed}" if rec.torn_lines_removed else "")
            )
        if self.asr_failed:
            shown = ", ".join(self.asr_failed[:5]) + (" ..." if len(self.asr_failed) > 5 else "")
            lines.append(
                f"ASR CHECK: {len(self.asr_failed)} turn(s) still over word error rate "
                f"{self.asr_threshold} after the retries, kept and marked in metadata (asr_check): {shown}"
            )
        if self.failed:
            lines.append(f"FAILED {self.failed} item(s); reasons in {self.failures_path}")
        return "\n".join(lines)


class _Progress:
    """A tqdm bar with conversations and audio hours, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int | None, stream: TextIO):
        self.enabled, self.total, self.stream = enabled, total, stream
        self.bar: Any = None

    def update(self, summary: RunSummary) -> None:
        if self.enabled and self.bar is None:  # made at the first item: no empty bar before an error
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="conv", file=self.stream, dynamic_ncols=True)
        if self.bar is not None:
            self.bar.set_postfix(
                audio_h=f"{summary.audio_sec / 3600:.3f}", failed=summary.failed, refresh=False
            )
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Item(Protocol):
    """What a run iterates over: a Dialog, or any record a producer turns into a Conversation
    (a group of recorded utterances), with a conversation id and a source for messages."""

    conversation_id: str
    source: Source


def run_producer(
    items: Iterable[Item | DialogError],
    produce: Pipeline | Callable[[Any], Conversation],
    writer: DatasetWriter,
    on_error: str = "skip",
    resume: bool = True,
    progress: bool = False,
    total: int | None = None,
    workers: int = 1,
    log: TextIO = sys.stderr,
    shard: Shard | None = None,
) -> RunSummary:
    """Produce and write every item not yet in the dataset. `produce` is a Pipeline or a
    RecordedProducer (streamed turn by turn into the staging folder through their `produce`), or
    any callable item -> Conversation; `workers` run it in parallel threads (converters, or
    conversations in flight whose turns share engine batches). WAVs are written on the writer's
    I/O thread, overlapping production. With on_error='fail' the first bad item raises (after the conversations already
    finished are committed); with 'skip' it is logged to `<out>/failures.jsonl` and the run goes on.
    With `shard`, only the items whose id the shard owns are made."""
    if on_error not in ("skip", "fail"):
        raise ConfigError("on_error", "choose skip or fail", on_error)
    if workers < 1:
        raise ConfigError("workers", "must be at least 1", workers)
    summary = RunSummary()
    began = time.perf_counter()
    summary.recovery = writer.recover()
    done = writer.done_ids()
    if done and not resume:
        raise ConfigError(
            "resume",
            f"off, but {writer.root} already holds {len(done)} "
            "conversation(s): resume it, or write elsewhere",
        )
    seen: dict[str, str] = {}
    bar = _Progress(progress, total, log)
    failures_path = writer.root / FAILURES
    summary.failures_path = str(failures_path)
    failures_path.unlink(missing_ok=True)
    stop: list[BaseException] = []

    def fail(err: dict[str, str], exc: BaseException | None = None) -> None:
        summary.failed += 1
        summary.failures.append(err)
        with open(failures_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(err, ensure_ascii=False) + "\n")
        print(
            f"error: {err['where']}: {err.get('field') + ': ' if err.get('field') else ''}{err['error']}",
            file=log,
        )
        bar.update(summary)
        if on_error == "fail" and exc is not None and not stop:
            stop.append(exc)

    def error_dict(item: Any, exc: BaseException, field: str = "") -> dict[str, str]:
        if isinstance(exc, DialogError):
            return exc.to_dict()
        return {
            "where": item.source.describe(),
            "field": field,
            "conversation_id": item.conversation_id,
            "error": str(exc),
        }

    def written(fut: Future[ManifestEntry], item: Any) -> None:
        try:
            entry = fut.result()
        except (SynthError, OSError) as exc:  # bad input, disk errors, a concurrent writer first
            fail(error_dict(item, exc, "voices" if isinstance(exc, VoiceError) else ""), exc)
            return
        summary.generated += 1
        summary.audio_sec += float(entry.speech_duration_sec or 0.0)
        bar.update(summary)

    # A producer with `produce(item, sink)` streams each turn into the conversation's staging
    # folder as soon as it is made (flat memory for long sessions); any other callable returns a
    # whole Conversation, which is then written.
    streaming = getattr(produce, "produce", None)

    def task(item: Any) -> ManifestEntry:
        with writer.staged(item.conversation_id) as staging:
            if streaming is not None:
                conv = streaming(item, staging.add_turn)
            else:
                conv = produce(item)
                conv = replace(conv, turns=[staging.add_turn(t) for t in conv.turns])
            check = conv.extra.get("asr_check")
            if check:
                summary.asr_threshold = check.get("threshold")
                summary.asr_failed.extend(
                    f"{conv.conversation_id}/turn_{i}" for i in check.get("failed_turns", [])
                )
            return staging.commit(conv)[1]

    producing: deque[tuple[Future[ManifestEntry], Any]] = deque()

    def drain(limit: int) -> None:
        """Account for finished conversations, oldest first, until at most `limit` are pending."""
        while len(producing) > limit:
            written(*producing.popleft())

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synth-produce") as work_pool:
        try:
            for item in items:
                if stop:
                    break
                # a bad record without an id belongs to the shard of its location
                if shard is not None and not shard.owns(item.conversation_id or getattr(item, "where", "")):
                    summary.other_shards += 1
                    continue
                if isinstance(item, DialogError):
                    fail(item.to_dict(), item)
                    continue
                if item.conversation_id in done:
                    summary.skipped_existing += 1
                    continue
                first = seen.setdefault(item.conversation_id, item.source.describe())
                if first != item.source.describe():
                    err = DialogError(
                        f"duplicate conversation_id {item.conversation_id!r} (first at {first})",
                        item.source.describe(),
                        "conversation_id",
                        item.conversation_id,
                    )
                    fail(err.to_dict(), err)
                    continue
                drain(2 * workers)  # bound memory: a few conversations in flight
                producing.append((work_pool.submit(task, item), item))
        finally:
            drain(0)
            bar.close()
    summary.wall_sec = time.perf_counter() - began
    if stop:
        raise stop[0]
    return summary
