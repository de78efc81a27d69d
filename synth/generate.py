"""Running the pipeline over a dialog source into a dataset folder: resume, duplicate ids,
`--on-error`, progress, and a writer thread that overlaps file I/O with synthesis."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, TextIO

from .domain import Dialog
from .errors import DialogError, SynthError, VoiceError
from .pipeline import Pipeline
from .writer import DatasetWriter, Recovery

FAILURES = "failures.jsonl"


@dataclass
class RunSummary:
    generated: int = 0
    skipped_existing: int = 0
    failed: int = 0
    audio_sec: float = 0.0
    wall_sec: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)

    def format(self) -> str:
        rtf = self.audio_sec / self.wall_sec if self.wall_sec else 0.0
        lines = [f"generated {self.generated} conversation(s), {self.audio_sec / 3600:.3f} h of "
                 f"audio in {self.wall_sec:.1f} s ({rtf:.1f}x real time)"]
        if self.skipped_existing:
            lines.append(f"skipped {self.skipped_existing} already in the manifest (resume)")
        rec = self.recovery
        if rec.temp_removed or rec.orphans_removed or rec.manifest_tail_truncated:
            lines.append(f"cleaned up an interrupted run: {len(rec.temp_removed)} temporary and "
                         f"{len(rec.orphans_removed)} unlisted folder(s)"
                         + (", a cut manifest line" if rec.manifest_tail_truncated else ""))
        if self.failed:
            lines.append(f"FAILED {self.failed} dialog(s); reasons in {FAILURES}")
        return "\n".join(lines)


class _Progress:
    """A tqdm bar with conversations and audio hours, or nothing when disabled."""

    def __init__(self, enabled: bool, total: int | None, stream: TextIO):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="conv", file=stream, dynamic_ncols=True)

    def update(self, summary: RunSummary) -> None:
        if self.bar is not None:
            self.bar.set_postfix(audio_h=f"{summary.audio_sec / 3600:.3f}", failed=summary.failed,
                                 refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def generate(dialogs: Iterable[Dialog | DialogError], pipeline: Pipeline, writer: DatasetWriter,
             on_error: str = "skip", resume: bool = True, progress: bool = False,
             total: int | None = None, log: TextIO = sys.stderr) -> RunSummary:
    """Synthesize every dialog not yet in the dataset. With on_error='fail' the first bad dialog
    raises (after the conversations already finished are committed); with 'skip' it is logged to
    `<out>/failures.jsonl` and the run goes on."""
    if on_error not in ("skip", "fail"):
        raise SynthError(f"--on-error {on_error!r}: choose skip or fail")
    summary = RunSummary()
    began = time.perf_counter()
    summary.recovery = writer.recover()
    done = writer.done_ids()
    if done and not resume:
        raise SynthError(f"{writer.root} already holds {len(done)} conversation(s); use --resume "
                         "to continue it, or another --out")
    seen: dict[str, str] = {}
    bar = _Progress(progress, total, log)
    failures_path = writer.root / FAILURES
    failures_path.unlink(missing_ok=True)

    def fail(err: dict[str, str]) -> None:
        summary.failed += 1
        summary.failures.append(err)
        with open(failures_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(err, ensure_ascii=False) + "\n")
        print(f"error: {err['where']}: {err.get('field') + ': ' if err.get('field') else ''}"
              f"{err['error']}", file=log)
        bar.update(summary)

    def written(fut: Future[dict[str, Any]], conv_id: str, where: str) -> None:
        try:
            entry = fut.result()
        except Exception as exc:  # I/O errors on the disk: the conversation is not committed
            fail({"where": where, "field": "", "conversation_id": conv_id, "error": str(exc)})
            if on_error == "fail":
                raise
            return
        summary.generated += 1
        summary.audio_sec += float(entry["speech_duration_sec"])
        bar.update(summary)

    pending: list[tuple[Future[dict[str, Any]], str, str]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-writer") as io_pool:
        try:
            for item in dialogs:
                if isinstance(item, Dialog) and item.conversation_id in done:
                    summary.skipped_existing += 1
                    continue
                try:
                    if isinstance(item, DialogError):
                        raise item
                    first = seen.setdefault(item.conversation_id, item.source.describe())
                    if first != item.source.describe():
                        raise DialogError(f"duplicate conversation_id {item.conversation_id!r} "
                                          f"(first at {first})", item.source.describe(),
                                          "conversation_id", item.conversation_id)
                    conv = pipeline.run(item)
                except (DialogError, VoiceError) as exc:
                    err = exc.to_dict() if isinstance(exc, DialogError) else {
                        "where": item.source.describe(), "field": "voices",
                        "conversation_id": item.conversation_id, "error": str(exc)}
                    fail(err)
                    if on_error == "fail":
                        raise
                    continue
                while len(pending) >= 2:  # bound memory: at most two conversations in flight
                    written(*pending.pop(0))
                pending.append((io_pool.submit(writer.write, conv), conv.conversation_id,
                                item.source.describe()))
        finally:
            while pending:
                written(*pending.pop(0))
            bar.close()
    summary.wall_sec = time.perf_counter() - began
    return summary
