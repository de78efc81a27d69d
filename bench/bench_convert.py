"""Conversion throughput (audio hours per wall hour) with 1 and 2 workers, in one run, on a
LibriSpeech-layout corpus this script builds (speech from the embedded voice, as 16 kHz FLAC).

    python bench/bench_convert.py --chapters 8 --utterances 12 --copies 6
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import soundfile as sf

from synth import load_engine, sample_builder
from synth.audio import resample
from synth.corpora.librispeech import read_librispeech
from synth.dataset.writer import DatasetWriter
from synth.engines import SynthesisRequest
from synth.produce.recorded import RecordedProducer
from synth.workflows.runner import run_producer

WORDS = [
    "the",
    "river",
    "runs",
    "past",
    "an",
    "old",
    "mill",
    "where",
    "seven",
    "children",
    "play",
    "every",
    "summer",
    "afternoon",
]


def build_corpus(root: Path, chapters: int, utterances: int, copies: int) -> None:
    """`chapters` synthesized chapters, each copied `copies` times under new speaker ids."""
    import shutil

    engine = load_engine()
    voices = engine.voices()
    for c in range(chapters):
        folder = root / str(100 + c) / str(c)
        folder.mkdir(parents=True)
        lines = []
        for u in range(utterances):
            text = " ".join(WORDS[(u + k) % len(WORDS)] for k in range(8 + u % 9))
            (audio,) = engine.synthesize([SynthesisRequest(text, voices[c % len(voices)])])
            uid = f"{100 + c}-{c}-{u:04d}"
            sf.write(str(folder / f"{uid}.flac"), resample(audio.samples, audio.sample_rate, 16000), 16000)
            lines.append(f"{uid} {text.upper()}")
        (folder / f"{100 + c}-{c}.trans.txt").write_text("\n".join(lines) + "\n")
        for k in range(1, copies):
            spk = 100 + c + 1000 * k
            dst = root / str(spk) / str(c)
            dst.mkdir(parents=True)
            for f in folder.iterdir():
                name = f.name.replace(f"{100 + c}-", f"{spk}-", 1)
                if f.suffix == ".txt":
                    (dst / name).write_text(f.read_text().replace(f"{100 + c}-{c}-", f"{spk}-{c}-"))
                else:
                    shutil.copy(f, dst / name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", type=int, default=8)
    ap.add_argument("--utterances", type=int, default=12)
    ap.add_argument("--copies", type=int, default=6, help="copies of each chapter (new speaker ids)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        build_corpus(corpus, args.chapters, args.utterances, args.copies)
        producer = RecordedProducer(sample_builder=sample_builder())
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            f"{args.chapters * args.copies} chapters x {args.utterances} utterances"
        )
        best: dict[int, float] = {}
        for r in range(args.rounds):
            for workers in (1, 2):
                out = Path(tmp) / f"out_{r}_{workers}"
                began = time.perf_counter()
                s = run_producer(read_librispeech(corpus), producer, DatasetWriter(out), workers=workers)
                wall = time.perf_counter() - began
                assert s.generated == args.chapters * args.copies and not s.failed, s.failures[:1]
                rate = s.audio_sec / wall  # audio hours per wall hour
                best[workers] = max(best.get(workers, 0.0), rate)
                print(
                    f"round {r} workers={workers}: {s.audio_sec:.0f} s audio in {wall:.2f} s = "
                    f"{rate:.0f} audio hours per wall hour"
                )
        print(f"2 workers / 1 worker = {best[2] / best[1]:.2f}")


if __name__ == "__main__":
    main()
