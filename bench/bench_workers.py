"""Worker processes against threads: audio seconds per wall second of `synth generate`, end to end
(the installed command: start, model loads, synthesis, writing), for workers x threads
combinations on the same dialogs, alternated within each round so that every combination sees
the same machine, for the embedded Piper voice (its seeded noise) and Kokoro. Ratios are against the
first combination (by default one worker with every core: `synth generate` before workers).

Also per combination: how busy the cores were (the run's CPU time over wall time x usable
cores, from the process tree), each worker's peak resident memory (VmHWM, read from /proc while
it runs: what `auto` divides the free memory by, synth.workflows.workers.WORKER_MEMORY), and
whether every combination made the same dataset (audio bytes; the same threads give the same
bytes, another thread count may round differently).

    python bench/bench_workers.py                            # 1x2 and 2x1, Piper and Kokoro
    python bench/bench_workers.py --combos 1x16,2x8,4x4,8x2,16x1 --dialogs 64 --rounds 3
    python bench/bench_workers.py --engines kokoro --kokoro /models/kokoro-v1.0 --json out.json
    python bench/bench_workers.py --engine-alone             # also the engine alone: the ceiling

`--engine-alone` also measures, in the same rounds, what the same combinations give for synthesis
alone (W processes of T threads, each with the engine loaded, then started together on its share
of the same turns; no start, load, writing or scoring in the time): the most that worker
processes can give over threads on this machine, to read the end-to-end ratios against.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.helpers

from _common import machine, machine_line, say, synth_command, work_folder

from tests.helpers import varied_dialogs, write_jsonl  # the tests' dialogs: our own sentences


def parse_combos(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        workers, _, threads = part.strip().lower().partition("x")
        out.append((int(workers), int(threads)))
    return out


def engine_args(engine: str, kokoro: str | None) -> list[str]:
    """The flags of an engine: the embedded Piper voice (its default, seeded noise), or Kokoro."""
    if engine == "piper":
        return []
    return ["--engine", "kokoro", *(["--model", kokoro] if kokoro else [])]


def audio_digest(out: Path) -> str:
    """The dataset's audio, as one digest (WAV bytes of every turn, by path)."""
    h = hashlib.sha256()
    for wav in sorted((out / "conversations").rglob("*.wav")):
        h.update(str(wav.relative_to(out)).encode())
        h.update(wav.read_bytes())
    return h.hexdigest()[:16]


ALONE = """
import json, sys, time
from synth.engines import load_engine
from synth.engines.base import SynthesisRequest
from synth.engines.config import KokoroConfig, PiperConfig
engine_name, model, texts_path, share, shares = sys.argv[1:6]
config = KokoroConfig(model=model or None) if engine_name == "kokoro" else PiperConfig()
engine = load_engine(config)
voices = engine.voices()
texts = json.load(open(texts_path))[int(share)::int(shares)]
print("ready", flush=True)
sys.stdin.readline()
audio = 0.0
for i, text in enumerate(texts):
    out = engine.synthesize([SynthesisRequest(text=text, voice=voices[i % 2], seed=i)])[0]
    audio += out.samples.size / out.sample_rate
print(json.dumps({"audio_sec": audio}), flush=True)
"""


def engine_alone(engine: str, kokoro: str | None, texts: Path, workers: int, threads: int) -> dict[str, Any]:
    """Synthesis alone: `workers` processes of `threads` intra-op threads, each loaded first,
    then started together on its share of the turns; audio seconds per wall second from the
    start to the last one done."""
    env = {**os.environ, "SYNTH_ONNX_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", ALONE, engine, kokoro or "", str(texts), str(k), str(workers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )  # fmt: skip
        for k in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    began = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    audio = 0.0
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"engine alone ({engine} {workers}x{threads}): exit {proc.returncode}")
        audio += json.loads(out.strip().splitlines()[-1])["audio_sec"]
    wall = time.perf_counter() - began
    return {"wall_sec": wall, "audio_sec": audio, "audio_per_wall": audio / wall}


def run_once(cmd: list[str], cores: int) -> dict[str, Any]:
    """Run `cmd`; follow its process tree: CPU seconds, each worker's peak memory."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(proc.pid)
    cpu: dict[int, float] = {}
    peak: dict[int, int] = {}
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        for p in tree:
            try:
                with p.oneshot():
                    times = p.cpu_times()
                    cpu[p.pid] = times.user + times.system
                    peak[p.pid] = max(peak.get(p.pid, 0), p.memory_info().rss)
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - began
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {proc.returncode}\n{stderr[-3000:]}")
    workers = {pid: rss for pid, rss in peak.items() if pid != proc.pid} or {proc.pid: peak.get(proc.pid, 0)}
    return {
        "wall_sec": wall,
        "cpu_busy": sum(cpu.values()) / (wall * cores),
        "worker_peak_mib": max(workers.values()) / 2**20,
        "summary": stdout.strip().splitlines()[0] if stdout.strip() else "",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="piper,kokoro", help="comma-separated: piper, kokoro")
    ap.add_argument(
        "--combos", default=None, help="WORKERSxTHREADS,... (default: 1xC,Cx1 for C usable cores)"
    )
    ap.add_argument("--dialogs", type=int, default=12, help="dialogs per run (varied, 4-8 turns)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds, every combination once in each")
    ap.add_argument("--kokoro", default=None, help="Kokoro model folder (default: the model cache's)")
    ap.add_argument("--out", type=Path, default=None, help="keep the datasets here (default: removed)")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this file ('-': stdout)")
    ap.add_argument(
        "--engine-alone", action="store_true", help="also synthesis alone, the same combinations: the ceiling"
    )
    args = ap.parse_args()

    m = machine()
    cores = m["usable_cores"]
    combos = parse_combos(args.combos) if args.combos else [(1, cores), (cores, 1)]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    synth = synth_command()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        e: {f"{w}x{t}": [] for w, t in combos} for e in engines
    }
    alone: dict[str, dict[str, list[float]]] = {e: {f"{w}x{t}": [] for w, t in combos} for e in engines}
    with work_folder(ap, args.out, "bench-workers-") as work:
        records = varied_dialogs(args.dialogs, seed=11, turns=(4, 8))
        source = write_jsonl(work / "dialogs.jsonl", records)
        texts = work / "texts.json"
        texts.write_text(json.dumps([t["text"] for r in records for t in r["turns"]]))
        for r in range(args.rounds):
            for engine in engines:
                order = combos if r % 2 == 0 else combos[::-1]  # alternate who runs first
                for workers, threads in order:
                    key = f"{workers}x{threads}"
                    if args.engine_alone:
                        got = engine_alone(engine, args.kokoro, texts, workers, threads)
                        alone[engine][key].append(got["audio_per_wall"])
                        say(
                            f"round {r + 1} {engine} {key} engine alone: {got['audio_per_wall']:.2f} audio s/s"
                        )
                    out = work / f"{engine}-{key}-{r}"
                    cmd = [synth, "generate", "--dialogs", str(source), "--out", str(out), "--quiet",
                           "--workers", str(workers), "--threads", str(threads),
                           *engine_args(engine, args.kokoro)]  # fmt: skip
                    run = run_once(cmd, cores)
                    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
                    run["audio_sec"] = sum(float(e["duration_sec"]) for e in manifest)
                    run["audio_per_wall"] = run["audio_sec"] / run["wall_sec"]
                    run["audio_digest"] = audio_digest(out)
                    results[engine][key].append(run)
                    say(f"round {r + 1} {engine} {key}: {run['audio_per_wall']:.2f} audio s/s, "
                        f"cores {run['cpu_busy']:.0%} busy, worker peak {run['worker_peak_mib']:.0f} MiB")  # fmt: skip

    report: dict[str, Any] = {"machine": m, "dialogs": args.dialogs, "rounds": args.rounds, "engines": {}}
    print(f"{machine_line(m)}; {cores} usable; {args.dialogs} dialogs, {args.rounds} round(s), alternated")
    for engine in engines:
        base_key = f"{combos[0][0]}x{combos[0][1]}"
        base = max(run["audio_per_wall"] for run in results[engine][base_key])
        print(f"\n{engine}: audio seconds per wall second, best of {args.rounds} (ratio to {base_key})")
        print(
            "| workers x threads | audio s/s (best) | median | ratio | cores busy | peak MiB per worker | audio |"
        )
        print("|---|---|---|---|---|---|---|")
        rows = {}
        for workers, threads in combos:
            key = f"{workers}x{threads}"
            runs = results[engine][key]
            speeds = [run["audio_per_wall"] for run in runs]
            row = {
                "best": max(speeds),
                "median": statistics.median(speeds),
                "ratio": max(speeds) / base,
                "cpu_busy": max(run["cpu_busy"] for run in runs),
                "worker_peak_mib": max(run["worker_peak_mib"] for run in runs),
                "audio_digests": sorted({run["audio_digest"] for run in runs}),
            }
            rows[key] = row
            print(f"| {key} | {row['best']:.2f} | {row['median']:.2f} | {row['ratio']:.2f}x | "
                  f"{row['cpu_busy']:.0%} | {row['worker_peak_mib']:.0f} | {','.join(row['audio_digests'])} |")  # fmt: skip
        report["engines"][engine] = rows
        if args.engine_alone:
            best = {key: max(v) for key, v in alone[engine].items()}
            print(f"\n{engine}, synthesis alone (the ceiling), best of {args.rounds}:")
            print("| workers x threads | audio s/s (best) | ratio |")
            print("|---|---|---|")
            for key, value in best.items():
                print(f"| {key} | {value:.2f} | {value / best[base_key]:.2f}x |")
            report.setdefault("engine_alone", {})[engine] = best
    if args.json:
        text = json.dumps(report, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
