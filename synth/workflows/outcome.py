"""What a run over many dialogs reports, the same way whoever makes the conversations (the
runner in-process, or the batch client through servers): one summary type, one failures file,
one progress bar."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..dataset.writer import Recovery

FAILURES = "failures.jsonl"
log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """generated: conversations made and written in this run; skipped_existing: already in the
    dataset (resume); sent/retried: calls to servers (the batch client), retried ones pushed
    back by busy servers; failed: items rejected, each in `failures` and the failures file."""

    generated: int = 0
    skipped_existing: int = 0
    other_shards: int = 0
    failed: int = 0
    sent: int = 0
    retried: int = 0
    audio_sec: float = 0.0
    wall_sec: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    recovery: Recovery = field(default_factory=Recovery)
    asr_failed: list[str] = field(default_factory=list)  # "<id>/turn_<n>" over the ASR threshold
    asr_threshold: float | None = None
    failures_path: str | None = FAILURES
    outside_band: list[str] = field(default_factory=list)  # sessions that missed their target band
    claimed_elsewhere: int = 0  # left to another run on the same folder that was making them
    damaged: list[str] = field(default_factory=list)  # finished, but not what was written
    repaired: list[str] = field(default_factory=list)  # damaged ones taken out and made again
    skipped_by_rule: list[str] = field(default_factory=list)  # "where: why", by an option's rule
    left_out: list[str] = field(default_factory=list)  # turns and questions of a source not spoken
    # an interrupted run: conversations in progress finished after the interrupt (SIGTERM, or
    # done before their next turn), and those left unfinished (Ctrl-C)
    finished_after_stop: int = 0
    abandoned: int = 0

    @property
    def done(self) -> int:
        return self.generated

    @property
    def complete(self) -> bool:
        """No rejected item, no damaged conversation, no turn over the ASR threshold (exit code
        0, else 3)."""
        return not self.failed and not self.asr_failed and not self.damaged

    def account(self, extra: Mapping[str, Any], conversation_id: str) -> None:
        """Note what a finished conversation's metadata says went short (ASR, session size)."""
        session = extra.get("session")
        if session is not None and not session.get("within", True):
            self.outside_band.append(conversation_id)
        self.left_out.extend(extra.get("source_notes", ()))
        check = extra.get("asr_check")
        if check:
            self.asr_threshold = check.get("threshold")
            self.asr_failed.extend(f"{conversation_id}/turn_{i}" for i in check.get("failed_turns", []))

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
        if self.skipped_by_rule:
            lines.append(
                f"left out {len(self.skipped_by_rule)} record(s) by the options' rules (not failures): "
                + "; ".join(self.skipped_by_rule[:3])
                + (" ..." if len(self.skipped_by_rule) > 3 else "")
            )
        if self.left_out:
            lines.append(
                f"left out {len(self.left_out)} turn(s), session(s) or question(s) that cannot be spoken or "
                "resolved, each listed in its conversation's metadata (source_notes): "
                + "; ".join(self.left_out[:3])
                + (" ..." if len(self.left_out) > 3 else "")
            )
        if self.claimed_elsewhere:
            lines.append(f"left {self.claimed_elsewhere} to another run making them in this folder")
        if self.repaired:
            lines.append(f"made again {len(self.repaired)} damaged conversation(s): {_shown(self.repaired)}")
        if self.damaged:
            lines.append(
                f"DAMAGED: {len(self.damaged)} conversation(s) are not what was written (a file missing "
                f"or of another size): {_shown(self.damaged)}; `synth validate` says what, --repair "
                "makes them again"
            )
        if self.retried:
            lines.append(f"{self.retried} call(s) pushed back by busy servers were retried")
        rec = self.recovery
        if rec.temp_removed or rec.orphans_removed or rec.manifest_tail_truncated or rec.torn_lines_removed:
            lines.append(
                f"cleaned up an interrupted run: {len(rec.temp_removed)} temporary and "
                f"{len(rec.orphans_removed)} unlisted folder(s)"
                + (", a cut manifest line" if rec.manifest_tail_truncated else "")
                + (f", torn manifest line(s) {rec.torn_lines_removed}" if rec.torn_lines_removed else "")
            )
        if self.outside_band:
            shown = ", ".join(self.outside_band[:5]) + (" ..." if len(self.outside_band) > 5 else "")
            lines.append(
                f"{len(self.outside_band)} session(s) outside their target band (a turn longer than "
                f"the band allows, a coherent conversation's session, which is never cut, or the "
                f"source's last session): {shown}; see metadata `session`"
            )
        if self.asr_failed:
            shown = ", ".join(self.asr_failed[:5]) + (" ..." if len(self.asr_failed) > 5 else "")
            lines.append(
                f"ASR CHECK: {len(self.asr_failed)} turn(s) still over word error rate "
                f"{self.asr_threshold} after the retries, kept and marked in metadata (asr_check): {shown}"
            )
        if self.failed:
            where = f"; reasons in {self.failures_path}" if self.failures_path else ""
            lines.append(f"FAILED {self.failed} item(s){where}")
        return "\n".join(lines)


class FailureLog:
    """Rejected items: counted in the summary, appended to the failures file (JSONL, replaced at
    the start of a run) and logged once each (`WHERE: FIELD: [CODE: ]MESSAGE`, level ERROR, on
    the `synth.workflows.outcome` logger)."""

    def __init__(self, summary: RunSummary, path: Path | None):
        self.summary, self.path = summary, path
        self._lock = threading.Lock()
        summary.failures_path = str(path) if path else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)

    def record(self, err: Mapping[str, Any], show: bool = True) -> None:
        """Count, write and (`show`) log one rejected item."""
        with self._lock:
            self.summary.failed += 1
            self.summary.failures.append(dict(err))
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(dict(err), ensure_ascii=False) + "\n")
            if show:
                field_ = f"{err['field']}: " if err.get("field") else ""
                code = f"{err['code']}: " if err.get("code") else ""
                log.error("%s: %s%s%s", err["where"], field_, code, err["error"])


class Progress:
    """A tqdm bar of conversations with the audio made and the failures, or nothing when
    disabled; made at the first update, so no empty bar is drawn before an early error."""

    def __init__(self, enabled: bool, total: int | None, stream: TextIO, unit: str = "conv"):
        self.enabled, self.total, self.stream, self.unit = enabled, total, stream, unit
        self.bar: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Show the bar now (before the first conversation is finished)."""
        if self.enabled and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=self.unit, file=self.stream, dynamic_ncols=True)

    def update(self, summary: RunSummary) -> None:
        with self._lock:
            self.start()
            if self.bar is not None:
                self.bar.set_postfix(
                    audio_h=f"{summary.audio_sec / 3600:.3f}", failed=summary.failed, refresh=False
                )
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _shown(ids: list[str]) -> str:
    return ", ".join(ids[:5]) + (" ..." if len(ids) > 5 else "")
