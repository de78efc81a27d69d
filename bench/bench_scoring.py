"""What the per-turn quality scores cost (issue 29): the throughput of speaking turns with the
scores on over off, on the same turns in one run. The baseline ("off") is the embedded Piper voice
(VITS noise off: the same audio every round) speaking the turns; each other configuration speaks
the same turns and scores them with one scorer (intelligibility, dnsmos, speaker, signal) or all
of them, one after another as `synth score` does. Configurations alternate within each round (the
machine's drift lands on all), the median round is kept.

Reported per configuration: audio seconds per wall second, its ratio to off, and the scorer's
own throughput (audio seconds per second of scoring alone). Models are loaded before timing (a
long run loads them once).

    python bench/bench_scoring.py                 # 24 turns, 3 rounds
    python bench/bench_scoring.py --turns 48 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from _common import machine, machine_line, say

TEXTS = [
    "I spent the whole morning at the garage, and the mechanic kept finding new problems.",
    "Could you send me the quarterly report before the meeting on Thursday afternoon?",
    "The library opens early on Saturday mornings, so we could meet there first.",
    "She planted tomatoes along the southern fence last spring.",
    "Honestly, I think we should leave a little earlier tomorrow.",
    "A small boat drifted slowly across the lake while we watched.",
]
CONFIGS = ("off", "signal", "speaker", "intelligibility", "dnsmos", "all")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = ap.parse_args()

    from synth.engines import PiperConfig, load_engine
    from synth.produce.render import TurnRenderer
    from synth.quality import QualityConfig, TurnAudio, build_scorers
    from synth.voices.references import reference_embeddings

    engine = load_engine(PiperConfig(noise_scale=0.0, noise_w_scale=0.0))
    renderer = TurnRenderer(engine)
    voices = engine.voices()[:4]
    work = [(TEXTS[i % len(TEXTS)], voices[i % len(voices)]) for i in range(args.turns)]
    say("loading the scorers ...")
    refs = reference_embeddings(engine, [v.id for v in voices], renderer.render)
    scorers = {s.name: s for s in build_scorers(QualityConfig("all"), references=refs)}
    chosen = {"off": [], "all": list(scorers.values()), **{n: [s] for n, s in scorers.items()}}
    ids = [v.id for v in voices]
    for scorer in scorers.values():  # warm: first calls (ONNX, torch, Whisper) are slower
        scorer.score([TurnAudio(renderer.render(TEXTS[0], voices[0]), TEXTS[0], ids[0], "s", tuple(ids[1:]))])

    rounds: dict[str, list[tuple[float, float, float]]] = {c: [] for c in CONFIGS}
    for r in range(args.rounds):
        order = CONFIGS[r % len(CONFIGS) :] + CONFIGS[: r % len(CONFIGS)]
        for config in order:
            start = time.perf_counter()
            turns = [
                TurnAudio(
                    renderer.render(text, voice),
                    text,
                    voice.id,
                    "s",
                    tuple(i for i in ids if i != voice.id),
                    "bench",
                    k,
                )
                for k, (text, voice) in enumerate(work)
            ]
            spoken = time.perf_counter()
            for scorer in chosen[config]:
                scorer.score(turns)
            end = time.perf_counter()
            audio = sum(t.duration_sec for t in turns)
            rounds[config].append((audio, end - start, end - spoken))
            say(f"round {r + 1} {config:<15} {audio / (end - start):7.2f} audio s per s")

    results = {}
    for config in CONFIGS:
        audio = rounds[config][0][0]
        wall = statistics.median(w for _, w, _ in rounds[config])
        scoring = statistics.median(s for _, _, s in rounds[config])
        results[config] = {
            "audio_sec": round(audio, 2),
            "wall_sec": round(wall, 3),
            "throughput": round(audio / wall, 3),
            "scorer_throughput": round(audio / scoring, 3) if chosen[config] else None,
        }
    base = results["off"]["throughput"]
    for row in results.values():
        row["ratio_to_off"] = round(row["throughput"] / base, 3)
    m = machine()
    print(f"# {machine_line(m)}; load average at start {m['load_avg_at_start']}")
    print(f"{args.turns} turns, {results['off']['audio_sec']} s of audio, median of {args.rounds} rounds")
    print(f"{'config':<16}{'audio s/s':>10}{'ratio':>8}{'scorer alone s/s':>18}")
    for name, row in results.items():
        alone = "-" if row["scorer_throughput"] is None else f"{row['scorer_throughput']:.2f}"
        print(f"{name:<16}{row['throughput']:>10.2f}{row['ratio_to_off']:>8.3f}{alone:>18}")
    if args.json:
        args.json.write_text(json.dumps({"machine": m, "turns": args.turns, "results": results}, indent=1))


if __name__ == "__main__":
    main()
