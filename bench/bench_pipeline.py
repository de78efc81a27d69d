"""Pipeline vs raw engine throughput, on the same turns, in one run.

engine:   the engine's synthesize() on exactly the sentence chunks the pipeline sends it, nothing else
pipeline: `synth.generate()` end to end (casting, synthesis, resampling, trimming, loudness,
          tokenized samples, WAV/JSON writing with fsync, manifest) into a fresh folder

Both do the same work, so throughput is reported for both as the same audio (the dataset's
16 kHz speech seconds) per wall second; the ratio pipeline/engine = best engine wall time / best
pipeline wall time is the share of the engine's throughput that the pipeline keeps. Rounds
alternate the two so that drift of the machine hits both; the best (fastest) round of each counts.

    python bench/bench_pipeline.py --dialogs examples/dialogs.jsonl --repeat 5 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import synth
from synth.audio import SAMPLE_RATE
from synth.dialogs.sources import open_dialogs
from synth.dialogs.text import split_sentences
from synth.domain import Dialog
from synth.engines import SynthesisRequest
from synth.produce.pipeline import Pipeline


def load(path: str, repeat: int) -> list[Dialog]:
    base = [d for d in open_dialogs(path) if isinstance(d, Dialog)]
    return [replace(d, conversation_id=f"{d.conversation_id}_r{r}") for r in range(repeat) for d in base]


def run_engine(pipeline: Pipeline, dialogs: list[Dialog]) -> tuple[float, float]:
    began = time.perf_counter()
    audio_sec = 0.0
    for d in dialogs:
        casting = pipeline.cast(d)
        for turn in d.turns:
            reqs = [SynthesisRequest(c, casting[turn.speaker]) for c in split_sentences(turn.text)]
            audio_sec += sum(len(a.samples) / a.sample_rate for a in pipeline.engine.synthesize(reqs))
    return audio_sec, time.perf_counter() - began


def run_pipeline(pipeline: Pipeline, dialogs: list[Dialog]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = synth.generate(dialogs, Path(tmp) / "ds", engine=pipeline.engine)
        wall = time.perf_counter() - began
        assert summary.generated == len(dialogs) and not summary.failed
        return summary.audio_sec, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogs", default="examples/dialogs.jsonl")
    ap.add_argument("--repeat", type=int, default=5, help="copies of each dialog")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dialogs = load(args.dialogs, args.repeat)
    pipeline = synth.build_pipeline(synth.GenerateOptions())
    run_engine(pipeline, dialogs[:1])  # warm-up: phonemizer, ONNX session
    best = {"engine": float("inf"), "pipeline": float("inf")}
    rows = []
    audio = 0.0
    for r in range(args.rounds):
        for name, fn in (("pipeline", run_pipeline), ("engine", run_engine)):
            produced, wall = fn(pipeline, dialogs)
            if name == "pipeline":
                audio = produced
            rows.append({"round": r, "run": name, "wall_sec": round(wall, 3)})
            best[name] = min(best[name], wall)
            print(f"round {r} {name:8s} {wall:6.2f} s wall")
    ratio = best["engine"] / best["pipeline"]
    best = {k: audio / v for k, v in best.items()}
    print(
        f"{audio:.1f} s of speech: engine {best['engine']:.2f}x real time, "
        f"pipeline {best['pipeline']:.2f}x real time"
    )
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "dialogs": len(dialogs),
        "turns": sum(len(d.turns) for d in dialogs),
        "engine_x_realtime": round(best["engine"], 2),
        "pipeline_x_realtime": round(best["pipeline"], 2),
        "audio_sec": round(audio, 2),
        "ratio": round(ratio, 3),
        "sample_rate": SAMPLE_RATE,
        "rounds": rows,
    }
    print(f"pipeline / engine = {ratio:.3f} (best of {args.rounds} rounds each)")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
