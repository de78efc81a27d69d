"""Batched VITS synthesis: turns per second and audio seconds per wall second for batch sizes
1, 4, 8, 16, 32 on the same turns in one run, for the Coqui engine alone, through the server
(dynamic batcher) with concurrent clients, and through `synth generate` with 1 or 8
conversations in flight (files written). Ratios are against batch size 1 / one conversation at a
time in the same run.

CPU: a tiny random multi-speaker VITS. GPU: `--size vctk --device cuda`, the full-size
architecture of coqui's VCTK VITS with random weights (speed is what is measured).

    python bench/bench_batching.py --size tiny --device cpu --turns 64
    python bench/bench_batching.py --size vctk --device cuda --turns 256 --half
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import threading
import time
from pathlib import Path

from synth.engines import CoquiConfig, SynthesisRequest, load_engine
from synth.testing import build_random_vits

WORDS = [
    "we",
    "will",
    "meet",
    "near",
    "the",
    "station",
    "after",
    "work",
    "and",
    "then",
    "walk",
    "along",
    "the",
    "river",
    "to",
    "the",
    "old",
    "bridge",
    "where",
    "the",
    "market",
    "sells",
    "fresh",
    "bread",
    "and",
    "coffee",
    "every",
    "single",
    "morning",
]


def make_turns(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 24))) + "." for _ in range(n)]


def engine_alone(engine, texts: list[str], batch: int) -> tuple[float, float]:
    voices = engine.voices()
    reqs = [SynthesisRequest(t, voices[i % len(voices)]) for i, t in enumerate(texts)]
    sync = getattr(getattr(engine, "_torch", None), "cuda", None)
    began = time.perf_counter()
    audio = 0.0
    for start in range(0, len(reqs), batch):
        out = engine.synthesize(reqs[start : start + batch])
        audio += sum(len(a.samples) / a.sample_rate for a in out)
    if sync is not None and sync.is_available():
        sync.synchronize()
    return audio, time.perf_counter() - began


def through_server(
    engine, texts: list[str], max_batch: int, clients: int, on_turn=None
) -> tuple[float, float]:
    """`clients` concurrent streams through a real server, each with its share of the turns
    (the turns repeat when there are more clients than turns); `on_turn(seconds)` hears the time
    between a stream's turns as they arrive."""
    from synth.engines.batching import BatchConfig
    from synth_client import SynthClient
    from synth_server import ServerOptions, ServiceConfig, SynthServer, generation

    with tempfile.TemporaryDirectory() as tmp:
        config = ServiceConfig(
            out=Path(tmp) / "ds",
            generation=generation(batch=BatchConfig(max_batch=max_batch, max_wait_ms=10)),
            max_in_flight=clients,
        )
        srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
        per = max(1, len(texts) // clients)
        audio = [0.0] * clients
        barrier = threading.Barrier(clients + 1)

        def run(k: int) -> None:
            with SynthClient(f"127.0.0.1:{srv.port}") as c:
                barrier.wait()
                turns = [("AB"[i % 2], texts[(k * per + i) % len(texts)]) for i in range(per)]
                last = time.perf_counter()
                for ev in c.synthesize(turns, conversation_id=f"b{max_batch}_{k}", stream_only=True):
                    if hasattr(ev, "duration_sec"):
                        audio[k] += ev.duration_sec
                        now = time.perf_counter()
                        if on_turn is not None:
                            on_turn(now - last)
                        last = now

        threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        began = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
        srv.stop(grace=0)
        return sum(audio), wall


def through_generate(engine, texts: list[str], in_flight: int, max_batch: int) -> tuple[float, float]:
    """`synth generate --in-flight N` as a library call: conversations of 8 turns, files written."""
    import synth

    dialogs = [
        synth.build_dialog(
            [("AB"[i % 2], t) for i, t in enumerate(texts[k : k + 8])], f"g{k}", synth.Source("bench")
        )
        for k in range(0, len(texts) - 7, 8)
    ]
    options = synth.GenerateOptions(
        samples=None, in_flight=in_flight, batch=synth.BatchConfig(max_batch=max_batch, max_wait_ms=10.0)
    )
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        summary = synth.generate(dialogs, Path(tmp) / "ds", options, engine=engine)
        wall = time.perf_counter() - began
    return summary.audio_sec, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="tiny", choices=("tiny", "vctk"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--half", action="store_true")
    ap.add_argument("--turns", type=int, default=64)
    ap.add_argument("--batches", default="1,4,8,16,32")
    ap.add_argument("--clients", type=int, default=16)
    args = ap.parse_args()
    texts = make_turns(args.turns)
    with tempfile.TemporaryDirectory() as tmp:
        speakers = [f"p{225 + i}" for i in range(109 if args.size == "vctk" else 8)]
        folder = build_random_vits(Path(tmp) / "model", speakers, size=args.size)
        engine = load_engine(CoquiConfig(str(folder), device=args.device, half=args.half))
        engine_alone(engine, texts[:8], 8)  # warm-up (CUDA kernels, allocator)
        card = args.device
        if args.device == "cuda":
            import torch

            card = torch.cuda.get_device_name(0)
        print(
            f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"device {card}; model {args.size}; {len(texts)} turns"
        )
        base = None
        for b in (int(x) for x in args.batches.split(",")):
            audio, wall = engine_alone(engine, texts, b)
            base = base or audio / wall
            print(
                f"engine  batch {b:3d}: {len(texts) / wall:8.1f} turns/s {audio / wall:9.1f} s audio/s "
                f"ratio {audio / wall / base:5.2f}"
            )
        s_base = None
        for b in (1, 16):
            audio, wall = through_server(engine, texts, b, args.clients)
            s_base = s_base or audio / wall
            print(
                f"server  max-batch {b:3d}, {args.clients} clients: {audio / wall:9.1f} s audio/s "
                f"ratio {audio / wall / s_base:5.2f}"
            )
        g_base = None
        for in_flight, b in ((1, 8), (8, 32)):
            audio, wall = through_generate(engine, texts, in_flight, b)
            g_base = g_base or audio / wall
            print(
                f"generate in-flight {in_flight}, max-batch {b:3d}: {audio / wall:9.1f} s audio/s "
                f"ratio {audio / wall / g_base:5.2f}"
            )


if __name__ == "__main__":
    main()
