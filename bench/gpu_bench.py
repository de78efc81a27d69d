"""The GPU benchmark in one run, for the device machine (bench/gpu_run.sh runs it there after
installing the kit): the full-size VCTK VITS architecture with random weights (speed is what is
measured), and every number against a baseline of the same run.

1. engine throughput at batch 1, 4, 8, 16, 32, 64 in float32 and float16 on the same turns
   (audio seconds per wall second, turns per second, peak GPU memory per batch size), and batched
   output against unbatched output (noise off);
2. the server with 32 and 64 concurrent streams: audio seconds per wall second, per-turn latency
   p50/p95 (time between a stream's turns), the batch sizes the engine saw;
3. `synth generate --in-flight` end to end with files written, 1 vs 32 conversations in flight;
4. whether onnxruntime there has the CUDA provider (Piper on CUDA).

Results go to OUT/gpu_bench.json and OUT/gpu_bench.md. A time budget stops the run before the
device tool's limit; what was measured by then is written.

    python bench/gpu_bench.py --device cuda --size vctk --out $OUT          # the device machine
    python bench/gpu_bench.py --device cpu --size tiny --out /tmp/gpu --turns 16 --batches 1,4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batching import engine_alone, make_turns, through_generate, through_server

from synth.engines import CoquiConfig, SynthesisRequest, load_engine
from synth.testing import build_random_vits


class Counting:
    """The engine, recording the size of every batch it is given (what the batcher made)."""

    def __init__(self, engine: Any):
        self.engine, self.sizes = engine, []
        self.name, self.model = engine.name, engine.model

    def voices(self) -> list:
        return self.engine.voices()

    def describe(self) -> dict:
        return self.engine.describe()

    @property
    def deterministic(self) -> bool:
        return self.engine.deterministic

    def voice_distance(self, a: Any, b: Any) -> float:
        return self.engine.voice_distance(a, b)

    def synthesize(self, requests: list) -> list:
        self.sizes.append(len(requests))
        return self.engine.synthesize(requests)


def gpu_memory(torch: Any, device: str) -> float | None:
    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def engine_rows(engine: Any, texts: list[str], batches: list[int], device: str, label: str) -> list[dict]:
    import torch

    rows, base = [], None
    for b in batches:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        audio, wall = engine_alone(engine, texts, b)
        base = base or audio / wall
        rows.append(
            {
                "precision": label,
                "batch": b,
                "turns_per_sec": round(len(texts) / wall, 2),
                "audio_sec_per_sec": round(audio / wall, 1),
                "ratio_to_batch_1": round(audio / wall / base, 2),
                "peak_gpu_mib": gpu_memory(torch, device),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def batched_equals_alone(engine: Any, texts: list[str], batch: int) -> float:
    """Largest absolute sample difference between a batch and the same turns alone."""
    import numpy as np

    voices = engine.voices()
    reqs = [SynthesisRequest(t, voices[i % len(voices)]) for i, t in enumerate(texts[:batch])]
    together = engine.synthesize(reqs)
    worst = 0.0
    for req, got in zip(reqs, together):
        (alone,) = engine.synthesize([req])
        if len(alone.samples) != len(got.samples):
            return float("inf")
        worst = max(worst, float(np.max(np.abs(alone.samples - got.samples))))
    return worst


def server_row(engine: Any, texts: list[str], streams: int, max_batch: int) -> dict:
    """bench_batching's server run with `streams` clients, adding per-turn latency (time between
    a stream's turns) and the batch sizes the engine was given."""
    counting = Counting(engine)
    gaps: list[float] = []
    audio, wall = through_server(counting, texts, max_batch, streams, on_turn=gaps.append)
    sizes = counting.sizes[1:]  # the first is the server's warm-up
    gaps.sort()
    return {
        "streams": streams,
        "max_batch": max_batch,
        "audio_sec_per_sec": round(audio / wall, 1),
        "turn_latency_p50_ms": round(1000 * statistics.median(gaps), 1) if gaps else None,
        "turn_latency_p95_ms": round(1000 * gaps[int(0.95 * (len(gaps) - 1))], 1) if gaps else None,
        "batches": len(sizes),
        "batch_size_mean": round(statistics.mean(sizes), 1) if sizes else None,
        "batch_size_max": max(sizes) if sizes else None,
    }


def piper_cuda() -> dict:
    try:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    except ImportError:
        return {"onnxruntime": None, "cuda_provider": False}
    return {
        "onnxruntime": onnxruntime.__version__,
        "providers": providers,
        "cuda_provider": "CUDAExecutionProvider" in providers,
    }


def markdown(result: dict) -> str:
    lines = [f"# GPU benchmark: {result['device_name']}", "", f"{result['setup']}", ""]
    lines += [
        "| precision | batch | turns/s | audio s/s | ratio to batch 1 | peak GPU MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in result.get("engine", []):
        lines.append(
            f"| {r['precision']} | {r['batch']} | {r['turns_per_sec']} | {r['audio_sec_per_sec']} | "
            f"{r['ratio_to_batch_1']} | {r['peak_gpu_mib']} |"
        )
    lines += [
        "",
        "| streams | max batch | audio s/s | turn latency p50 / p95 ms | batches, mean / max size |",
        "|---|---|---|---|---|",
    ]
    for r in result.get("server", []):
        lines.append(
            f"| {r['streams']} | {r['max_batch']} | {r['audio_sec_per_sec']} | {r['turn_latency_p50_ms']} / "
            f"{r['turn_latency_p95_ms']} | {r['batches']}, {r['batch_size_mean']} / {r['batch_size_max']} |"
        )
    lines += ["", "| generate | audio s/s (x real time) | ratio |", "|---|---|---|"]
    for r in result.get("generate", []):
        lines.append(
            f"| in flight {r['in_flight']}, max batch {r['max_batch']} | {r['audio_sec_per_sec']} | {r['ratio']} |"
        )
    lines += ["", f"batched vs alone, largest sample difference: {result.get('batched_vs_alone')}"]
    lines += [
        f"Piper on CUDA: {json.dumps(result.get('piper_cuda'))}",
        f"stopped early: {result.get('stopped_early')}",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="vctk", choices=("tiny", "vctk"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--turns", type=int, default=128)
    ap.add_argument("--batches", default="1,4,8,16,32,64")
    ap.add_argument("--streams", default="32,64")
    ap.add_argument("--out", default=os.environ.get("OUT", "bench_out"))
    ap.add_argument("--budget-sec", type=float, default=420.0, help="stop starting new parts after this")
    args = ap.parse_args()
    began = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
    texts = make_turns(args.turns)
    batches = [int(x) for x in args.batches.split(",")]
    name = (
        torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine()
    )
    result: dict[str, Any] = {
        "device_name": name,
        "setup": f"{args.size} VITS (random weights), {len(texts)} turns, torch {torch.__version__}, "
        f"{os.cpu_count()} CPU cores",
        "piper_cuda": piper_cuda(),
        "stopped_early": None,
    }

    def save() -> None:
        (out / "gpu_bench.json").write_text(json.dumps(result, indent=2))
        (out / "gpu_bench.md").write_text(markdown(result))

    def over(part: str) -> bool:
        if time.perf_counter() - began > args.budget_sec:
            result["stopped_early"] = f"before {part} ({args.budget_sec:.0f} s budget)"
            save()
            return True
        return False

    with tempfile.TemporaryDirectory() as tmp:
        speakers = [f"p{225 + i}" for i in range(109 if args.size == "vctk" else 8)]
        folder = build_random_vits(Path(tmp) / "model", speakers, size=args.size)
        quiet = {"noise_scale": 0.0, "noise_w_scale": 0.0}
        engine = load_engine(CoquiConfig(str(folder), device=args.device, **quiet))
        engine_alone(engine, texts[:8], 8)  # warm-up: kernels, allocator, cuDNN autotuning
        result["batched_vs_alone"] = batched_equals_alone(engine, texts, 16)
        result["engine"] = engine_rows(engine, texts, batches, args.device, "float32")
        save()
        if args.device == "cuda" and not over("float16"):
            half = load_engine(CoquiConfig(str(folder), device="cuda", half=True, **quiet))
            engine_alone(half, texts[:8], 8)
            result["engine"] += engine_rows(half, texts, batches, args.device, "float16")
            save()
        result["server"] = []
        for streams in (int(x) for x in args.streams.split(",")):
            if over(f"server {streams} streams"):
                return
            result["server"].append(server_row(engine, texts, streams, max(batches)))
            print(json.dumps(result["server"][-1]), flush=True)
            save()
        result["generate"] = []
        g_base = None
        for in_flight in (1, 32):
            if over(f"generate in-flight {in_flight}"):
                return
            audio, wall = through_generate(engine, texts, in_flight, max(batches))
            g_base = g_base or audio / wall
            result["generate"].append(
                {
                    "in_flight": in_flight,
                    "max_batch": max(batches),
                    "audio_sec_per_sec": round(audio / wall, 1),
                    "ratio": round(audio / wall / g_base, 2),
                }
            )
            print(json.dumps(result["generate"][-1]), flush=True)
            save()
    result["wall_sec"] = round(time.perf_counter() - began, 1)
    save()
    print(markdown(result))


if __name__ == "__main__":
    main()
