"""Full-band conversation audio (issue 20 item 4): the share of energy above 8 kHz in

  (a) the engine's own output at its native rate (Piper: 22.05 kHz x the voice's vocal-tract
      factor; Kokoro: 24 kHz, when its model is in the cache, else skipped and said so),
  (b) the 24 kHz conversation.wav that `synth generate --conversation-audio` writes,
  (c) the `synth export --to moshi` file made from that dataset,
  (d) the baseline: a conversation.wav made at `--conversation-rate 16000` (from the 16 kHz turn
      WAVs), exported to moshi's 24 kHz: band-limited, ~0 above 8 kHz,

for the same turns and voices (the same dialogs, seed and casting; checked), turn by turn (each
turn's span of its speaker's channel, by its start and end in metadata), averaged over turns, per
voice and in all, with the ratios (b)/(a), (c)/(a), (d)/(a). (a) is measured in this process with
the library's engine on exactly the sentence chunks the pipeline sends it.

Then memory of long sessions: peak RSS of `synth generate --conversation-audio --session-minutes
M` (a fresh child process; its VmHWM read from /proc/<pid>/status while it runs) for a short
and a long M (10 and 90 minutes; 3 and 12 with --quick); target ratio long / short ~1.0.

    python bench/bench_fullband.py                     # shares + 10 and 90 minutes (~1 h on 2 cores)
    python bench/bench_fullband.py --quick             # shares + 3 and 12 minutes (a smoke run)
    python bench/bench_fullband.py --minutes-long 45 --json fullband.json
    python bench/bench_fullband.py --only band         # or: --only memory

Everything is written into a temporary folder unless --out names one (new or empty; kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from _common import machine, machine_line, peak_rss, say, synth_command, work_folder

CUT_HZ = 8000.0
RATE = 24_000
NOISE_OFF = ["--noise-scale", "0", "--noise-w", "0"]

# Dialogs written for this benchmark: plenty of fricatives and sibilants (s, sh, f, th, z),
# whose energy lies above 8 kHz in full-band speech.
BAND_DIALOGS = [
    ["She sells fresh fish at the shore on Thursdays.", "Is that the shop beside the ferry station?"],
    ["Sixty thin sheets of glass fit in this case.", "Then fasten the straps, the path is steep."],
    ["Has the physics class finished its session?", "Yes, and the students rushed off to lunch."],
    ["The frost has silvered the fields since Sunday.", "So we should switch the heating on, surely."],
    ["Fetch the sharp scissors from the shelf, please.", "These? They seem stiff, but they should suffice."],
    ["Whose suitcase is sitting in the hallway?", "It is Sasha's; she flies to Zurich this afternoon."],
    ["The fountain's splash soothes the visitors.", "Certainly, it is the finest spot in the square."],
    ["Should this first chapter be rewritten?", "Just the passages that stress the statistics."],
]
KOKORO_DIALOGS = BAND_DIALOGS[:3]

# For the long sessions: a dialog from parts of coprime list lengths (your own sentences).
PLACES = ["the station", "the old bridge", "the market", "the harbour wall", "the school gate", "the park"]
THINGS = ["umbrella", "blue notebook", "spare key", "train ticket", "lunch box", "camera", "scarf"]
ASKS = [
    "Did anyone see my {thing} near {place} this morning?",
    "I think I left my {thing} somewhere around {place}.",
    "Would you walk with me to {place} to look for my {thing}?",
    "Somebody called about a {thing} found at {place}.",
    "Was your {thing} the one lying on the bench by {place}?",
]
ANSWERS = [
    "I saw something like that, but I did not pick it up.",
    "Let us go together after lunch; it will not take long.",
    "Ask at the desk, they keep lost things for a week.",
    "No, but I will keep an eye out on the way home.",
]
CLOSES = [
    "Thank you, that really helps.",
    "Good, then I will call them first.",
    "I hope it is still there.",
    "Fine, see you at two then.",
    "That is kind of you, thanks.",
    "All right, let us meet at the corner.",
    "Perfect, I owe you a coffee.",
    "I will let you know what happens.",
    "Then it is settled.",
]
FOLLOWS = [
    "Tell me if it turns up.",
    "Bring a photo of it, just in case.",
    "I am sure it will turn up somewhere.",
    "Happy to help.",
    "Do not worry too much about it.",
    "See you then.",
    "Good luck with it.",
    "It happens to everyone.",
    "Glad we sorted that out.",
    "Take care.",
    "Speak soon.",
]


def session_dialog(i: int) -> list[str]:
    ask = ASKS[i % len(ASKS)].format(thing=THINGS[i % len(THINGS)], place=PLACES[i % len(PLACES)])
    return [ask, ANSWERS[i % len(ANSWERS)], CLOSES[i % len(CLOSES)], FOLLOWS[i % len(FOLLOWS)]]


def write_jsonl(path: Path, dialogs: list[list[str]], prefix: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i, turns in enumerate(dialogs):
            fh.write(json.dumps({"conversation_id": f"{prefix}_{i:05d}", "turns": turns}) + "\n")


def share_above(x: np.ndarray, rate: float, cut: float = CUT_HZ) -> float | None:
    """The share of the signal's energy above `cut` Hz (its power spectrum, mean removed)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 64:
        return None
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x)) ** 2
    total = power.sum()
    if total <= 0:
        return None
    freqs = np.fft.rfftfreq(x.size, 1.0 / rate)
    return float(power[freqs > cut].sum() / total)


def run(cmd: list[str], log: Path) -> str:
    with open(log, "wb") as out:
        rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
    text = log.read_text(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {rc}:\n{text[-3000:]}")
    return text


def metadata(ds: Path) -> list[dict[str, Any]]:
    out = []
    for line in (ds / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        cid = json.loads(line)["conversation_id"]
        out.append(json.loads((ds / "conversations" / cid / "metadata.json").read_text(encoding="utf-8")))
    return out


def turn_shares(ds: Path, wav_of: Any) -> dict[tuple[str, int], float | None]:
    """(conversation id, turn id) -> the share above 8 kHz of that turn's span of its speaker's
    channel in the stereo file `wav_of(conversation id)`."""
    out: dict[tuple[str, int], float | None] = {}
    for meta in metadata(ds):
        path = wav_of(meta["conversation_id"])
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        channels = meta["channels"]
        for t in meta["turns"]:
            ch = 0 if t["speaker"] in channels[0] else 1
            lo, hi = round(t["start_time"] * rate), round(t["end_time"] * rate)
            out[(meta["conversation_id"], t["turn_id"])] = share_above(audio[lo:hi, ch], rate)
    return out


def engine_shares(ds: Path, engine: Any) -> tuple[dict[tuple[str, int], float | None], dict[str, float]]:
    """(a): each turn spoken by the engine itself at its native rate, on the chunks the pipeline
    sends it (the voice from the dataset's metadata); and each voice's native rate."""
    from synth.dialogs.text import split_sentences
    from synth.engines import SynthesisRequest
    from synth.produce.pipeline import PipelineConfig

    voices = {v.id: v for v in engine.voices()}
    max_chars = PipelineConfig().max_chunk_chars
    out: dict[tuple[str, int], float | None] = {}
    rates: dict[str, float] = {}
    for meta in metadata(ds):
        for t in meta["turns"]:
            voice = voices[t["voice"]]
            chunks = engine.synthesize(
                [SynthesisRequest(c, voice) for c in split_sentences(t["text"], max_chars)]
            )
            rate = chunks[0].sample_rate
            rates[t["voice"]] = rate
            out[(meta["conversation_id"], t["turn_id"])] = share_above(
                np.concatenate([c.samples for c in chunks]), rate
            )
    return out, rates


def mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    return float(f"{a / b:.4g}") if a is not None and b else None


def band_case(
    name: str, engine_args: list[str], config: Any, dialogs: list[list[str]], work: Path, say: Any
) -> dict[str, Any]:
    """Shares (a)-(d) for one engine: two datasets of the same dialogs (24 kHz and 16 kHz
    conversation audio), their moshi exports, and the engine's own audio in this process."""
    from synth.engines import load_engine

    synth = synth_command()
    folder = work / name
    folder.mkdir()
    source = folder / "dialogs.jsonl"
    write_jsonl(source, dialogs, f"band_{name}")
    made = {}
    for tag, rate in (("full", "24000"), ("base", "16000")):
        ds, exp = folder / f"ds_{tag}", folder / f"moshi_{tag}"
        say(f"{name}: generate --conversation-audio --conversation-rate {rate}")
        run(
            [
                synth,
                "generate",
                "--dialogs",
                str(source),
                "--out",
                str(ds),
                "--quiet",
                "--conversation-audio",
                "--conversation-rate",
                rate,
                *engine_args,
            ],
            folder / f"generate_{tag}.log",
        )
        summary = run([synth, "export", "--to", "moshi", str(ds), str(exp)], folder / f"export_{tag}.log")
        made[tag] = (ds, exp, summary.strip())
    (full, full_exp, _), (base, base_exp, base_note) = made["full"], made["base"]
    voices_full = {
        (m["conversation_id"], t["turn_id"]): t["voice"] for m in metadata(full) for t in m["turns"]
    }
    voices_base = {
        (m["conversation_id"], t["turn_id"]): t["voice"] for m in metadata(base) for t in m["turns"]
    }
    if voices_full != voices_base:
        raise RuntimeError(f"{name}: the two datasets were cast differently")
    say(f"{name}: the engine's own audio")
    engine = load_engine(config)
    a, rates = engine_shares(full, engine)
    b = turn_shares(full, lambda cid: full / "conversations" / cid / "conversation.wav")
    c = turn_shares(full, lambda cid: full_exp / "data_stereo" / f"{cid}.wav")  # the same timeline
    d = turn_shares(base, lambda cid: base_exp / "data_stereo" / f"{cid}.wav")
    identical = all(
        np.array_equal(
            sf.read(str(full / "conversations" / m["conversation_id"] / "conversation.wav"), dtype="int16")[
                0
            ],
            sf.read(str(full_exp / "data_stereo" / f"{m['conversation_id']}.wav"), dtype="int16")[0],
        )
        for m in metadata(full)
    )
    by_voice: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for key, voice in sorted(voices_full.items()):
        by_voice[voice].append(key)
    rows = []
    for voice, keys in [*sorted(by_voice.items()), ("all turns", sorted(voices_full))]:
        row = {
            "voice": voice,
            "turns": len(keys),
            "native_rate": round(rates[voice], 1) if voice in rates else None,
            "a_engine": mean([a[k] for k in keys]),
            "b_conversation_wav": mean([b[k] for k in keys]),
            "c_moshi_export": mean([c[k] for k in keys]),
            "d_16k_then_24k": mean([d[k] for k in keys]),
        }
        row["b_over_a"] = ratio(row["b_conversation_wav"], row["a_engine"])
        row["c_over_a"] = ratio(row["c_moshi_export"], row["a_engine"])
        row["d_over_a"] = ratio(row["d_16k_then_24k"], row["a_engine"])
        rows.append(row)
    return {
        "engine": name,
        "conversations": len(dialogs),
        "rows": rows,
        "export_copied_conversation_wav_exactly": identical,
        "baseline_export_summary": base_note,
    }


def kokoro_cached() -> bool:
    from synth.engines.kokoro_model import cached_model, problems

    return not problems(cached_model())


def memory_case(minutes: list[float], work: Path, say: Any) -> dict[str, Any]:
    """Peak RSS of one `generate --conversation-audio --session-minutes M` per M; the first M is
    the baseline."""
    synth = synth_command()
    rows = []
    for m in minutes:
        # about 10 s per dialog (4 turns and their gaps, measured with the embedded voice); 30% more
        # (a fast voice speaks them in 8.5 s), so the first session is whole and the rest is a shorter one
        count = math.ceil(m * 60 / 10 * 1.3) + 2
        folder = work / f"session_{m:g}"
        folder.mkdir()
        source = folder / "dialogs.jsonl"
        write_jsonl(source, [session_dialog(i) for i in range(count)], f"sess{m:g}")
        ds = folder / "ds"
        say(f"memory: --session-minutes {m:g} over {count} dialogs")
        cmd = [
            synth,
            "generate",
            "--dialogs",
            str(source),
            "--out",
            str(ds),
            "--quiet",
            "--conversation-audio",
            "--session-minutes",
            f"{m:g}",
            *NOISE_OFF,
        ]
        peak, wall = peak_rss(cmd, folder / "generate.log")
        entries = [json.loads(line) for line in (ds / "manifest.jsonl").read_text().splitlines()]
        longest = max(entries, key=lambda e: e["duration_sec"])
        wav = ds / "conversations" / longest["conversation_id"] / "conversation.wav"
        info = sf.info(str(wav))
        rows.append(
            {
                "target_min": m,
                "sessions": len(entries),
                "longest_min": round(longest["duration_sec"] / 60, 2),
                "longest_turns": longest["num_turns"],
                "conversation_wav": f"{info.samplerate} Hz, {info.channels} ch, {info.duration / 60:.2f} min",
                "peak_rss_mib": round(peak, 1),
                "wall_sec": round(wall, 1),
            }
        )
        say(json.dumps(rows[-1]))
        shutil.rmtree(ds)  # a 90-minute conversation.wav is about half a GB
    base = rows[0]["peak_rss_mib"]
    for r in rows:
        r["ratio_to_first"] = round(r["peak_rss_mib"] / base, 3)
    return {"rows": rows}


def fmt(v: float | None, pct: bool = True) -> str:
    if v is None:
        return "-"
    if pct:
        return f"{v * 100:.3g}%"
    return f"{v:.4f}" if v >= 0.001 else f"{v:.1e}"


def table(result: dict[str, Any]) -> str:
    out = [f"machine: {result['machine']}"]
    for case in result.get("band", []):
        if "skipped" in case:
            out += ["", f"{case['engine']}: skipped ({case['skipped']})"]
            continue
        out += [
            "",
            f"{case['engine']}: share of energy above 8 kHz, mean over turns ({case['conversations']} dialogs); "
            f"moshi export copied conversation.wav exactly: {case['export_copied_conversation_wav_exactly']}",
            f"{'voice':>18} {'turns':>5} {'native Hz':>9} {'(a) engine':>11} {'(b) conv.wav':>12} "
            f"{'(c) moshi':>10} {'(d) 16k->24k':>12} {'b/a':>7} {'c/a':>7} {'d/a':>9}",
        ]
        for r in case["rows"]:
            out.append(
                f"{r['voice']:>18} {r['turns']:>5} {r['native_rate'] or '':>9} {fmt(r['a_engine']):>11} "
                f"{fmt(r['b_conversation_wav']):>12} {fmt(r['c_moshi_export']):>10} {fmt(r['d_16k_then_24k']):>12} "
                f"{fmt(r['b_over_a'], False):>7} {fmt(r['c_over_a'], False):>7} {fmt(r['d_over_a'], False):>9}"
            )
        said = [line for line in case["baseline_export_summary"].splitlines() if "band limited" in line]
        out.append(f"  (d)'s export said: {'; '.join(said)}")
    mem = result.get("memory")
    if mem:
        out += [
            "",
            "memory: generate --conversation-audio --session-minutes M (peak RSS: the process's VmHWM)",
            f"{'M':>5} {'sessions':>8} {'longest':>9} {'turns':>6} {'peak RSS':>10} {'ratio':>6} {'wall':>7}",
        ]
        for r in mem["rows"]:
            out.append(
                f"{r['target_min']:>4g}m {r['sessions']:>8} {r['longest_min']:>8.2f}m {r['longest_turns']:>6} "
                f"{r['peak_rss_mib']:>8.1f}Mi {r['ratio_to_first']:>6.3f} "
                f"{r['wall_sec']:>6.1f}s"
            )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sessions of 3 and 12 minutes (a smoke run)")
    ap.add_argument("--minutes-short", type=float, help="the baseline session (default 10; --quick 3)")
    ap.add_argument("--minutes-long", type=float, help="the long session (default 90; --quick 12)")
    ap.add_argument("--only", choices=("band", "memory"), help="run only one part")
    ap.add_argument("--out", type=Path, help="work folder, kept (default: a temporary one, removed)")
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH (- or none: stdout)",
    )
    args = ap.parse_args()
    short = args.minutes_short or (3.0 if args.quick else 10.0)
    long = args.minutes_long or (12.0 if args.quick else 90.0)

    from synth.engines import KokoroConfig, PiperConfig

    result: dict[str, Any] = {
        "machine": machine_line(machine()),
        "load_avg_at_start": round(os.getloadavg()[0], 2),
    }
    with work_folder(ap, args.out, "synth-fullband-") as work:
        if args.only != "memory":
            result["band"] = [
                band_case(
                    "piper",
                    NOISE_OFF,
                    PiperConfig(noise_scale=0.0, noise_w_scale=0.0),
                    BAND_DIALOGS,
                    work,
                    say,
                )
            ]
            if kokoro_cached():
                result["band"].append(
                    band_case(
                        "kokoro",
                        ["--model", "kokoro-v1.0"],
                        KokoroConfig(model="kokoro-v1.0"),
                        KOKORO_DIALOGS,
                        work,
                        say,
                    )
                )
            else:
                result["band"].append(
                    {
                        "engine": "kokoro",
                        "skipped": "its model is not in the cache: `synth voices fetch kokoro`",
                    }
                )
        if args.only != "band":
            result["memory"] = memory_case([short, long], work, say)
    result["load_avg_at_end"] = round(os.getloadavg()[0], 2)
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))


if __name__ == "__main__":
    main()
