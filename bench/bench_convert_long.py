"""Peak memory of `synth convert` on one long real recording: a 10-minute and a 60-minute one (the
baseline is the first size, in the same run), each converted in a fresh child process whose peak
resident memory (VmHWM) is read from outside every 20 ms. The target is flat: the hour within
1.2x of the 10 minutes (issue 35), because a recording is read a turn at a time by seeking.

Two layouts, each built here from the embedded voice's speech laid end to end:
- gigaspeech: a podcast episode, one 16 kHz Ogg/Opus file in GigaSpeech's layout (GigaSpeech.json
  with a segment per sentence, tags and all), `synth convert gigaspeech --subset XS`;
- lhotse: a telephone call, one two-channel 8 kHz WAV (a speaker on each channel, a third of the
  turns overlapping the other side's), Lhotse recordings and supervisions manifests (gzipped JSON
  Lines), `synth convert lhotse RECORDINGS SUPERVISIONS --conversation-audio`.

    python bench/bench_convert_long.py                      # both layouts, 10 and 60 minutes
    python bench/bench_convert_long.py --layouts gigaspeech --minutes 10 60 --json
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from _common import machine, machine_line, peak_rss, say, synth_command, work_folder

SENTENCES = [
    "the lighthouse keeper counted the ships every evening",
    "she planted tomatoes along the southern fence",
    "our neighbour repaired the old bicycle in one afternoon",
    "the library opens early on saturday mornings",
    "he forgot his umbrella at the station again",
    "a small boat drifted slowly across the lake",
    "they painted the kitchen a pale shade of green",
    "the baker sold every loaf before noon",
]


def voices(rate: int) -> list[np.ndarray]:
    from synth import load_engine
    from synth.audio import resample
    from synth.engines import SynthesisRequest

    engine = load_engine()
    vs = engine.voices()
    out = []
    for i, text in enumerate(SENTENCES):
        (audio,) = engine.synthesize([SynthesisRequest(text, vs[i % len(vs)])])
        out.append(resample(audio.samples, audio.sample_rate, rate))
    return out


def layout(
    clips: list[np.ndarray], rate: int, minutes: float, two_sides: bool
) -> list[tuple[int, float, int]]:
    """(clip, start s, channel) of each turn until `minutes`: one after another with a pause, or
    (two sides) alternating channels, every third turn starting before the other side ends."""
    turns, t, i = [], 0.5, 0
    while True:
        clip = i % len(clips)
        length = len(clips[clip]) / rate
        if t + length > minutes * 60:
            return turns
        channel = i % 2 if two_sides else 0
        turns.append((clip, t, channel))
        overlap = two_sides and i % 3 == 2
        t += length * (0.6 if overlap else 1.0) + (0.0 if overlap else 0.4)
        i += 1


def write_audio(
    path: Path,
    clips: list[np.ndarray],
    turns: list[tuple[int, float, int]],
    rate: int,
    channels: int,
    **kw: str,
) -> float:
    """Stream the recording to `path` a block at a time; its length in seconds."""
    total = round((turns[-1][1] + len(clips[turns[-1][0]]) / rate + 1.0) * rate)
    block = 60 * rate
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=channels, **kw) as fh:
        k = 0
        for b0 in range(0, total, block):
            b1 = min(total, b0 + block)
            buf = np.zeros((b1 - b0, channels), dtype=np.float32)
            while k < len(turns) and round(turns[k][1] * rate) + len(clips[turns[k][0]]) <= b0:
                k += 1
            for clip, start, ch in turns[k:]:
                s = round(start * rate)
                if s >= b1:
                    break
                data = clips[clip]
                lo, hi = max(b0, s), min(b1, s + len(data))
                if lo < hi:
                    buf[lo - b0 : hi - b0, ch] += data[lo - s : hi - s]
            fh.write(buf)
    return total / rate


def gigaspeech(root: Path, clips: list[np.ndarray], minutes: float) -> list[str]:
    rate = 16000
    turns = layout(clips, rate, minutes, two_sides=False)
    audio = root / "audio" / "podcast" / "P0000" / "POD0000000001.opus"
    audio.parent.mkdir(parents=True)
    duration = write_audio(audio, clips, turns, rate, 1, format="OGG", subtype="OPUS")
    segments = [
        {
            "sid": f"POD0000000001_S{n:07d}",
            "speaker": "N/A",
            "begin_time": round(start, 3),
            "end_time": round(start + len(clips[clip]) / rate, 3),
            "text_tn": SENTENCES[clip].upper() + " <PERIOD>",
            "subsets": ["{XL}", "{L}", "{M}", "{S}", "{XS}"],
        }
        for n, (clip, start, _) in enumerate(turns)
    ]
    doc = {
        "dataset": "GigaSpeech",
        "audios": [
            {
                "aid": "POD0000000001",
                "source": "podcast",
                "subsets": ["{XL}", "{L}", "{M}", "{S}", "{XS}"],
                "path": str(audio.relative_to(root)),
                "duration": round(duration, 3),
                "segments": segments,
            }
        ],
    }
    (root / "GigaSpeech.json").write_text(json.dumps(doc))
    return ["gigaspeech", str(root), "--subset", "XS"]


def lhotse(root: Path, clips: list[np.ndarray], minutes: float) -> list[str]:
    rate = 8000
    turns = layout(clips, rate, minutes, two_sides=True)
    audio = root / "call.wav"
    root.mkdir(parents=True)
    duration = write_audio(audio, clips, turns, rate, 2, subtype="PCM_16")
    rec = {
        "id": "call",
        "sources": [{"type": "file", "channels": [0, 1], "source": str(audio)}],
        "sampling_rate": rate,
        "num_samples": round(duration * rate),
        "duration": duration,
        "channel_ids": [0, 1],
    }
    with gzip.open(root / "recordings.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(rec) + "\n")
    with gzip.open(root / "supervisions.jsonl.gz", "wt") as fh:
        for n, (clip, start, ch) in enumerate(turns):
            sup = {
                "id": f"call-{n:05d}",
                "recording_id": "call",
                "start": round(start, 4),
                "duration": round(len(clips[clip]) / rate, 4),
                "channel": ch,
                "text": SENTENCES[clip],
                "speaker": f"call{'AB'[ch]}",
            }
            fh.write(json.dumps(sup) + "\n")
    return [
        "lhotse",
        str(root / "recordings.jsonl.gz"),
        str(root / "supervisions.jsonl.gz"),
        "--conversation-audio",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    ap.add_argument(
        "--layouts", nargs="+", choices=("gigaspeech", "lhotse"), default=["gigaspeech", "lhotse"]
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="keep the corpora and datasets here")
    args = ap.parse_args()
    synth = synth_command()
    rows = []
    with work_folder(ap, args.out, "synth-convert-long-") as tmp:
        for name in args.layouts:
            rate = 16000 if name == "gigaspeech" else 8000
            clips = voices(rate)
            for minutes in args.minutes:
                say(f"{name}: building {minutes:g} minutes")
                corpus = tmp / f"{name}_{minutes:g}"
                cmd = (gigaspeech if name == "gigaspeech" else lhotse)(corpus, clips, minutes)
                out = tmp / f"ds_{name}_{minutes:g}"
                full = [synth, "convert", *cmd, "--out", str(out), "--quiet", "--workers", "1"]
                mib, wall = peak_rss(full, tmp / f"{name}_{minutes:g}.log")
                (entry,) = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
                rows.append(
                    {
                        "layout": name,
                        "minutes": minutes,
                        "recording_min": round(entry["duration_sec"] / 60, 2),
                        "turns": entry["num_turns"],
                        "peak_rss_mib": round(mib, 1),
                        "wall_sec": round(wall, 1),
                    }
                )
                say(json.dumps(rows[-1]))
    for r in rows:
        base = next(x for x in rows if x["layout"] == r["layout"])["peak_rss_mib"]
        r["ratio_to_first"] = round(r["peak_rss_mib"] / base, 3)
    result = {"machine": machine_line(machine()), "rows": rows}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"machine: {result['machine']}")
    print(f"{'layout':>10} {'recording':>10} {'turns':>6} {'peak RSS':>10} {'ratio':>6} {'wall':>7}")
    for r in rows:
        print(
            f"{r['layout']:>10} {r['recording_min']:>9.2f}m {r['turns']:>6} {r['peak_rss_mib']:>8.1f}Mi "
            f"{r['ratio_to_first']:>6.3f} {r['wall_sec']:>6.1f}s"
        )


if __name__ == "__main__":
    main()
