"""Kokoro-82M against the embedded Piper voice, in the same run, on dialogs written for this
benchmark (two speakers, eight turns each): speed (the engine's real-time factor on this machine's
CPU), corpus word error rate by Whisper tiny.en, speaker similarity (speaker-encoder cosine) within
one speaker (the first half of their turns against the second) and between the two speakers of a
conversation (half against half, the same amount of audio), the engine's word timings against the
independent forced aligner's, and the catalogs' measured distances (one encoder, one scale: Piper
and Kokoro voices in one catalog).

Both engines cast by measured distance (the speaker encoder, at least 0.3 apart, the default;
Kokoro also at least 0.45, the preset proposed for distinct voices); the embedded voice is also
run with its default casting (the engine's own measure), the configuration the issue measured.

    python bench/bench_kokoro.py                      # prints the tables (about 30 min on 2 cores)
    python bench/bench_kokoro.py --only speed         # the speed comparison alone
    python bench/bench_kokoro.py --mixes FILE --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIALOGS = [
    ("garden", [
        "Did the tomatoes survive that cold night last week?",
        "Most of them did, although the ones near the fence look rather sad.",
        "We could move the pots closer to the wall, where it stays warmer.",
        "Good idea. I will also cover the basil with an old bedsheet tonight.",
        "Do you still have the seeds your aunt sent us in the spring?",
        "They are in the blue tin on the shelf above the washing machine.",
        "Then let us plant the beans on Saturday morning, before it gets hot.",
        "Saturday works for me, as long as we finish before lunch.",
    ]),
    ("bike", [
        "My bicycle made a horrible grinding noise on the way to work.",
        "That sounds like the chain. When did you last oil it?",
        "Honestly, I cannot remember. Maybe two summers ago.",
        "Bring it over this evening and we will take a look together.",
        "Thank you. Should I pick up anything from the hardware store?",
        "A small bottle of chain oil and a pair of cheap gloves would help.",
        "I will get them on my way home. Is seven too late?",
        "Seven is perfect. I will leave the garage door open for you.",
    ]),
    ("library", [
        "Are you returning those books today, or keeping them another week?",
        "I still have two chapters left of the one about the lighthouse.",
        "Is it any good? The cover looked a little gloomy to me.",
        "It is slow at the start, but the second half is wonderful.",
        "Maybe I will borrow it after you. What is the other one about?",
        "It explains how bread was baked in villages a hundred years ago.",
        "That sounds oddly relaxing. Does it have any recipes inside?",
        "Three of them, and I want to try the rye loaf on Sunday.",
    ]),
    ("concert", [
        "How was the concert in the park last night?",
        "Loud, crowded and absolutely worth it. The drummer was amazing.",
        "I am jealous. Did they play the song from the radio advert?",
        "They saved it for the very end, and everybody sang along.",
        "How did you get home? The buses stop running quite early.",
        "We walked along the river and shared a taxi for the last part.",
        "Sensible. Are they touring again next year, do you think?",
        "The singer hinted at it, so I will keep an eye on their website.",
    ]),
    ("move", [
        "When exactly is the removal van coming on Friday?",
        "Between eight and ten, but they promised to call first.",
        "Have you packed the kitchen yet? That always takes forever.",
        "Only the plates. The pans and the kettle stay out until Thursday.",
        "I can come over on Wednesday afternoon and help with the books.",
        "That would be a huge help. There are at least twenty boxes of them.",
        "Then I will bring tape, markers and some strong coffee.",
        "You are a hero. I will order pizza for both of us.",
    ]),
    ("trip", [
        "Have you decided where to go for the long weekend?",
        "We are thinking about the mountains, if the weather stays dry.",
        "The cabin we rented two years ago is still available, I believe.",
        "The one with the wood stove and the view over the lake?",
        "Exactly that one. It sleeps four people, so we could share it.",
        "I would love that. Should we leave on Thursday evening?",
        "Thursday is fine, but let us take the early train, not the car.",
        "Agreed. I will check the timetable and book the tickets tonight.",
    ]),
]  # fmt: skip


class Timed:
    """An engine that keeps count of its synthesis time and the audio it returned."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.name, self.model = engine.name, engine.model
        self.seconds = 0.0
        self.audio_seconds = 0.0

    def voices(self):
        return self.engine.voices()

    def describe(self):
        return self.engine.describe()

    @property
    def deterministic(self) -> bool:
        return self.engine.deterministic

    def voice_distance(self, a, b) -> float:
        return self.engine.voice_distance(a, b)

    def synthesize(self, requests):
        began = time.perf_counter()
        out = self.engine.synthesize(requests)
        self.seconds += time.perf_counter() - began
        self.audio_seconds += sum(a.samples.size / a.sample_rate for a in out)
        return out


def dialogs() -> list[Any]:
    from synth.dialogs.build import build_dialog
    from synth.domain import Source

    out = []
    for i, (cid, lines) in enumerate(DIALOGS):
        turns = [("A" if k % 2 == 0 else "B", text) for k, text in enumerate(lines)]
        out.append(build_dialog(turns, cid, Source("bench_kokoro", index=i)))
    return out


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def run(
    label: str,
    engine: Any,
    cast_by: str,
    floor: float | None,
    tools: dict[str, Any],
    cache: Path,
    table: dict[str, np.ndarray],
) -> dict[str, Any]:
    """Generate every dialog; measure speed, WER, similarities and word timings (and how far
    apart the cast voices are by `table`, the catalog's embeddings)."""
    from synth.api import casting_distance
    from synth.asr.wer import word_errors
    from synth.produce.pipeline import Pipeline, PipelineConfig

    timed = Timed(engine)
    config = PipelineConfig(cast_by=cast_by, min_voice_distance=floor, voice_cache=str(cache))
    pipeline = Pipeline(timed, config, distance=casting_distance(timed, config))
    timed.seconds = timed.audio_seconds = 0.0  # measured casting's embeddings are not the speed
    errors = words = 0
    within, between, offsets, closest = [], [], [], []
    misheard: list[list[str]] = []
    began = time.perf_counter()
    for dialog in dialogs():
        conversation = pipeline.run(dialog)
        halves: dict[str, list[np.ndarray]] = {}
        for turn in conversation.turns:
            heard = tools["recognizer"].transcribe(turn.audio).text
            e, n = word_errors(turn.text, heard)
            errors, words = errors + e, words + n
            if e:
                misheard.append([turn.voice.id, turn.text, heard])
            if turn.words:
                ref = tools["aligner"].align(turn.audio, turn.text)
                offsets += [abs(a.start - b.start) for a, b in zip(turn.words, ref)]
        for speaker in dialog.speakers:
            mine = [t.audio for t in conversation.turns if t.speaker == speaker]
            half = len(mine) // 2
            halves[speaker] = [tools["encoder"].embed(np.concatenate(p)) for p in (mine[:half], mine[half:])]
            within.append(cos(*halves[speaker]))
        a, b = (halves[s] for s in dialog.speakers)
        between += [cos(a[0], b[0]), cos(a[1], b[1])]
        va, vb = (conversation.casting[s] for s in dialog.speakers)
        closest.append(1.0 - cos(table[va.id], table[vb.id]))
    return {
        "engine": label,
        "cast_by": cast_by if floor is None else f"{cast_by} >= {floor}",
        "voices": len(engine.voices()),
        "audio_sec": round(timed.audio_seconds, 1),
        "synthesis_sec": round(timed.seconds, 1),
        "rtf": round(timed.seconds / timed.audio_seconds, 3),
        "wall_sec": round(time.perf_counter() - began, 1),
        "wer": round(errors / max(words, 1), 4),
        "words": words,
        "within": round(statistics.mean(within), 3),
        "between": round(statistics.mean(between), 3),
        "gap": round(statistics.mean(within) - statistics.mean(between), 3),
        "timing_median_ms": round(statistics.median(offsets) * 1000, 1) if offsets else None,
        "cast_distance_min": round(min(closest), 3),
        "misheard": misheard,
    }


def speed(engines: dict[str, tuple[Any, str]], rounds: int = 3, lines: int = 12) -> dict[str, Any]:
    """Each engine's real-time factor on the same sentences in one voice (the dialogs' first
    lines), rounds alternating between the engines so that the machine's load hits all of them;
    the fastest round of each counts."""
    from synth.engines import SynthesisRequest

    texts = [text for _, turns in DIALOGS for text in turns][:lines]
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for label, (engine, voice_id) in engines.items():
            voice = next(v for v in engine.voices() if v.id == voice_id)
            began = time.perf_counter()
            out = engine.synthesize([SynthesisRequest(t, voice) for t in texts])
            took = time.perf_counter() - began
            audio = sum(a.samples.size / a.sample_rate for a in out)
            if label not in best or took / audio < best[label][0] / best[label][1]:
                best[label] = (took, audio)
    return {
        label: {"rtf": round(t / a, 3), "x_real_time": round(a / t, 2), "audio_sec": round(a, 1)}
        for label, (t, a) in best.items()
    }


def distinct_subset(ids: Sequence[str], distance: Any, floor: float) -> list[str]:
    """Greedily the largest set of voices every pair of which is at least `floor` apart (the
    voice with the fewest too-close neighbours first)."""
    close = {a: sum(distance(a, b) < floor for b in ids if b != a) for a in ids}
    kept: list[str] = []
    for a in sorted(ids, key=lambda v: (close[v], v)):
        if all(distance(a, b) >= floor for b in kept):
            kept.append(a)
    return kept


def catalog(embeddings: dict[str, np.ndarray], floor: float) -> dict[str, Any]:
    ids = sorted(embeddings)
    d = lambda a, b: max(0.0, 1.0 - float(np.dot(embeddings[a], embeddings[b])))
    pairs = [d(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
    return {
        "voices": len(ids),
        "min": round(min(pairs), 3),
        "median": round(statistics.median(pairs), 3),
        "pairs_apart": f"{sum(p >= floor for p in pairs)}/{len(pairs)}",
        "distinct_subset": len(distinct_subset(ids, d, floor)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mixes", default=None, help="a Kokoro blends file: add its mixes to the catalog table")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--only", choices=("speed", "dialogs"), default=None, help="run only one part")
    args = ap.parse_args()

    from synth.asr.alignment import ForcedAligner
    from synth.asr.recognizer import Recognizer
    from synth.engines import KokoroConfig, PiperConfig, load_engine
    from synth.engines.piper_voices import default_cache
    from synth.produce.casting import MIN_MEASURED_DISTANCE
    from synth.produce.pipeline import Pipeline, PipelineConfig
    from synth.voices.encoder import SpeakerEncoder, voice_embeddings

    cache = default_cache()
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    if args.only != "dialogs":
        kokoro = load_engine(KokoroConfig())
        piper = load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0))
        results["speed"] = speed(
            {"kokoro af_heart": (kokoro, "af_heart"), "piper joe-vt1.04": (piper, "joe-vt1.04")}
        )
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores; speed: best of 3 alternating rounds")
        for label, r in results["speed"].items():
            print(f"{label} | rtf {r['rtf']} | {r['x_real_time']}x real time | {r['audio_sec']} s of audio")
        if args.only == "speed":
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
            return
    recognizer = Recognizer()
    tools = {"recognizer": recognizer, "aligner": ForcedAligner(recognizer), "encoder": SpeakerEncoder()}
    t0 = time.perf_counter()
    kokoro = load_engine(KokoroConfig())
    kokoro_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    piper = load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0))
    piper_load = time.perf_counter() - t0

    embeddings: dict[str, dict[str, np.ndarray]] = {}
    for label, engine in (("kokoro", kokoro), ("piper", piper)):
        render = Pipeline(engine, PipelineConfig()).render
        embeddings[label] = voice_embeddings(engine, cache, render, tools["encoder"])
    rows = [
        run("kokoro-v1.0 (28 English voices)", kokoro, "measured", None, tools, cache, embeddings["kokoro"]),
        run("kokoro-v1.0 (28 English voices)", kokoro, "measured", 0.45, tools, cache, embeddings["kokoro"]),
        run("piper joe (embedded, noise off)", piper, "measured", None, tools, cache, embeddings["piper"]),
        run("piper joe (embedded, noise off)", piper, "model", None, tools, cache, embeddings["piper"]),
    ]
    catalogs = {
        "kokoro (28 English)": catalog(embeddings["kokoro"], MIN_MEASURED_DISTANCE),
        "piper joe (18 derived)": catalog(embeddings["piper"], MIN_MEASURED_DISTANCE),
        "kokoro + piper, one scale": catalog(
            {**embeddings["kokoro"], **embeddings["piper"]}, MIN_MEASURED_DISTANCE
        ),
    }
    if args.mixes:
        mixed = load_engine(KokoroConfig(blends=args.mixes))
        render = Pipeline(mixed, PipelineConfig()).render
        table = voice_embeddings(mixed, cache, render, tools["encoder"])
        catalogs[f"kokoro + {len(mixed.voices()) - 28} kept mixes"] = catalog(table, MIN_MEASURED_DISTANCE)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load: kokoro "
          f"{kokoro_load:.1f} s, piper {piper_load:.1f} s")  # fmt: skip
    cols = ["engine", "cast_by", "rtf", "audio_sec", "wer", "within", "between", "gap", "timing_median_ms",
            "cast_distance_min"]  # fmt: skip
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))
    print("catalog | voices | min | median | pairs >= 0.3 | largest subset all >= 0.3 apart")
    for name, c in catalogs.items():
        print(
            f"{name} | {c['voices']} | {c['min']} | {c['median']} | {c['pairs_apart']} | {c['distinct_subset']}"
        )
    if args.json:
        Path(args.json).write_text(
            json.dumps({**results, "rows": rows, "catalogs": catalogs}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
