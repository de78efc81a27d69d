"""Accuracy of word timings: the engine's own (Piper phoneme durations through the pipeline)
against an independent aligner on the same audio (Whisper tiny.en forced alignment,
synth.alignment), and both against a physical reference where there is one: a word that starts
right after a silent stretch starts where the silence ends (10 ms frames).

The ratio reported is the engine's error over the aligner's error against that reference (below
1: the engine is the more accurate of the two). Sentences are written for this benchmark. Last,
the cost of word timings: the engine's wall time with them over without, on the same sentences.

    python bench/bench_word_timings.py            # the default voice and two derived ones
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

SENTENCES = [
    "The train to the coast leaves at half past nine, so we should hurry.",
    "I never thought that painting the fence would take the whole weekend.",
    "Could you tell me where the nearest pharmacy is? My head is killing me.",
    "She bought three kilos of apples and a jar of honey at the market.",
    "We missed the first act because the parking garage was completely full.",
    "If it rains tomorrow, the picnic moves to the community hall on Elm Street.",
    "My grandfather repaired clocks for forty years in a tiny shop downtown.",
    "Turn left after the bridge, then keep going until you see a red barn.",
    "The printer jammed again, so I sent the report by email instead.",
    "Honestly, the soup was too salty, but the bread was wonderful.",
    "Our flight was delayed twice, and we finally landed just after midnight.",
    "Remember to water the tomatoes before you leave for the airport.",
    "He practised the violin every evening until the neighbours complained.",
    "The museum closes early on Mondays, around four in the afternoon.",
    "Can we move the meeting to Thursday? Wednesday is impossible for me.",
    "A small dog followed us all the way home from the beach.",
]


def summary(values: list[float]) -> dict[str, float]:
    ms = sorted(abs(v) * 1000 for v in values)
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 1),
        "mean_ms": round(statistics.mean(ms), 1),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "bias_ms": round(statistics.mean(values) * 1000, 1),
    }


def timing_cost(with_timings, without, rounds: int = 4) -> dict[str, float]:
    """Engine wall time with word timings over without, on the same sentences (best of rounds,
    alternating so that machine drift hits both)."""
    from synth.engines import SynthesisRequest

    best = {"with": float("inf"), "without": float("inf")}
    for _ in range(rounds):
        for name, engine in (("with", with_timings), ("without", without)):
            voice = engine.voices()[3]
            began = time.perf_counter()
            engine.synthesize([SynthesisRequest(s, voice) for s in SENTENCES])
            best[name] = min(best[name], time.perf_counter() - began)
    return {
        **{k: round(v, 3) for k, v in best.items()},
        "ratio_with_over_without": round(best["with"] / best["without"], 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", nargs="*", default=["joe", "joe-vt0.80", "joe-vt1.20"])
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from synth.asr.alignment import ForcedAligner, silent_spans
    from synth.asr.recognizer import Recognizer
    from synth.dialogs.build import build_dialog
    from synth.domain import Source
    from synth.engines import PiperConfig, load_engine
    from synth.produce.pipeline import Pipeline, PipelineConfig

    engine = load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0))
    aligner = ForcedAligner(Recognizer())
    results = {}
    for voice in args.voices:
        voice_id = voice if voice != "joe" else "joe-vt1.04"
        dialog = build_dialog(
            [("A", s) for s in SENTENCES], f"bench-{voice}", Source("bench"), {"A": voice_id}
        )
        conv = Pipeline(engine, PipelineConfig()).run(dialog)
        starts, engine_vs_onset, aligner_vs_onset = [], [], []
        began = time.perf_counter()
        for turn in conv.turns:
            aligned = aligner.align(turn.audio, turn.text)
            assert [w.word for w in aligned] == [w.word for w in turn.words] == turn.text.split()
            onsets = [b for a, b in silent_spans(turn.audio)]
            for k, (e, f) in enumerate(zip(turn.words, aligned)):
                starts.append(e.start - f.start)
                # a word right after a pause: the end of the silent stretch nearest the two
                # methods' mean start (chosen by neither alone), if close to it
                mid = (e.start + f.start) / 2
                near = [o for o in onsets if abs(o - mid) < 0.15]
                if k and near:
                    onset = min(near, key=lambda o: abs(o - mid))
                    engine_vs_onset.append(e.start - onset)
                    aligner_vs_onset.append(f.start - onset)
        align_sec = time.perf_counter() - began
        e_err, a_err = summary(engine_vs_onset), summary(aligner_vs_onset)
        results[voice_id] = {
            "engine_vs_aligner_start": summary(starts),
            "engine_vs_onset": e_err,
            "aligner_vs_onset": a_err,
            "ratio_engine_over_aligner_error": round(e_err["median_ms"] / max(a_err["median_ms"], 0.1), 3),
            "aligner_sec_per_audio_sec": round(align_sec / conv.speech_duration_sec, 4),
        }
        print(voice_id, json.dumps(results[voice_id]), flush=True)
    cost = timing_cost(
        engine, load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0, word_timings=False))
    )
    print("cost of word timings:", json.dumps(cost), flush=True)
    out = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "results": results,
        "cost": cost,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
