"""`synth check --asr`: transcribe every turn of a dataset and compare with its transcript
(word error rate after synth.asr.wer's normalization), record the result in each metadata.json, and
report the worst turns."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..asr.recognizer import Recognizer
from ..asr.wer import word_errors
from ..dataset.journal import Rewrite
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import ConversationMetadata
from ..dataset.writer import READ, DatasetWriter, using
from ..errors import DatasetError


@dataclass
class TurnCheck:
    """One turn's ASR check: its word error rate, its transcript and what ASR heard."""

    conversation_id: str
    turn_id: int
    wer: float
    reference: str
    hypothesis: str


@dataclass
class CheckReport:
    """A dataset's ASR check: every turn checked, the corpus-level WER and the turns over the
    threshold."""

    turns: list[TurnCheck] = field(default_factory=list)
    errors: int = 0
    words: int = 0
    threshold: float = 0.3

    @property
    def mean_wer(self) -> float:
        """Corpus-level WER: all word errors over all reference words."""
        return self.errors / self.words if self.words else 0.0

    @property
    def failed(self) -> list[TurnCheck]:
        return [t for t in self.turns if t.wer > self.threshold]

    def format(self, worst: int = 10) -> str:
        lines = [
            f"{len(self.turns)} turns checked: word error rate {self.mean_wer:.3f} "
            f"({self.errors} errors / {self.words} words); "
            f"{len(self.failed)} turn(s) over {self.threshold}"
            + (" (marked in metadata asr_check; exit 3)" if self.failed else "")
        ]
        ranked = sorted(self.turns, key=lambda t: -t.wer)[:worst]
        if ranked:
            lines.append("worst turns:")
            lines += [
                f"  {t.wer:6.3f}  {t.conversation_id}/turn_{t.turn_id}: expected {t.reference!r}, "
                f"heard {t.hypothesis!r}"
                for t in ranked
            ]
        return "\n".join(lines)


def check_dataset(
    root: Path | str,
    recognizer: Recognizer,
    threshold: float = 0.3,
    write: bool = True,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> CheckReport:
    """Check every turn; with `write`, record the results in each metadata.json as one rewrite of
    the dataset (synth.dataset.writer.DatasetWriter.rewriting: all of them or none, the integrity
    records following, the dataset held alone meanwhile); without, as a reader."""
    if write:
        if not Path(root).is_dir():
            raise DatasetError(f"{root}: not a folder")
        writer = DatasetWriter(Path(root).resolve())
        with writer.rewriting() as rewrite:
            return _check(Path(root).resolve(), recognizer, threshold, rewrite, workers, progress)
    with using(root, READ):
        return _check(Path(root), recognizer, threshold, None, workers, progress)


def _check(
    root: Path,
    recognizer: Recognizer,
    threshold: float,
    rewrite: Rewrite | None,
    workers: int,
    progress: Callable[[str], None] | None,
) -> CheckReport:
    report = CheckReport(threshold=threshold)
    refs = open_dataset(root)

    def one(
        ref: ConversationRef,
    ) -> tuple[ConversationRef, ConversationMetadata, list[TurnCheck], list[tuple[int, int]]]:
        meta = ref.metadata()
        checks, counts = [], []
        for turn in meta.turns:
            wav = ref.file(turn.audio_file, f"turn {turn.turn_id} audio_file")
            try:
                audio, _rate = sf.read(str(wav), dtype="float32")
            except Exception as exc:
                raise DatasetError(f"{wav}: cannot read audio ({exc})") from None
            ref_text = (
                ref.file(turn.transcript_file, f"turn {turn.turn_id} transcript_file")
                .read_text(encoding="utf-8")
                .strip()
            )
            hyp = recognizer.transcribe(audio).text
            e, n = word_errors(ref_text, hyp)
            score = e / n if n else float(e > 0)
            checks.append(TurnCheck(ref.conversation_id, turn.turn_id, round(score, 4), ref_text, hyp))
            counts.append((e, n))
            turn.extra["asr_check"] = {
                "wer": round(score, 4),
                "hypothesis": hyp,
                "passed": score <= threshold,
                **recognizer.describe(),
            }
        return ref, meta, checks, counts

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for ref, meta, checks, counts in pool.map(one, refs):
            report.turns += checks
            report.errors += sum(e for e, _ in counts)
            report.words += sum(n for _, n in counts)
            if rewrite is not None:
                e, n = sum(e for e, _ in counts), sum(n for _, n in counts)
                meta.extra["asr_check"] = {
                    **recognizer.describe(),
                    "threshold": threshold,
                    "mean_wer": round(e / n, 4) if n else None,
                    "failed_turns": [c.turn_id for c in checks if c.wer > threshold],
                }
                rewrite.conversation(ref.folder, {ref.metadata_path.name: meta.to_json().encode("utf-8")})
            if progress:
                progress(ref.conversation_id)
    return report
