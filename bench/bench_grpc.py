"""Throughput through gRPC with N concurrent clients against in-process `synth generate`, on the
same dialogs, in one run. Both write complete dataset folders.

in-process: synth.generate() in this process (one engine, sequential conversations)
grpc:       a `synth serve` child process on loopback, fed by synth.batch.run_batch with
            N concurrent streams (the server writes the folders, the client receives the audio)

Reported as speech seconds per wall second; ratio = grpc / in-process (target >= 0.9).

    python bench/bench_grpc.py --repeat 4 --clients 1,4,8
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

import synth
from synth.dialogs.sources import open_dialogs
from synth.domain import Dialog
from synth.remote.batch import run_batch


def load(path: str, repeat: int) -> list[Dialog]:
    base = [d for d in open_dialogs(path) if isinstance(d, Dialog)]
    return [replace(d, conversation_id=f"{d.conversation_id}_r{r}") for r in range(repeat) for d in base]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(port: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.time() < deadline:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                time.sleep(0.2)
    raise RuntimeError("server did not start")


def in_process(dialogs: list[Dialog]) -> tuple[float, float]:
    engine = synth.load_engine()
    with synth.build_pipeline(engine=engine) as pipeline:
        pipeline.run(dialogs[0])  # warm-up, like the server's
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        s = synth.generate(dialogs, Path(tmp) / "ds", engine=engine)
        return s.audio_sec, time.perf_counter() - began


def through_grpc(dialogs: list[Dialog], clients: int) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        synth = str(Path(sys.executable).with_name("synth"))
        proc = subprocess.Popen(
            [
                synth,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--out",
                f"{tmp}/ds",
                "--metrics-port",
                "-1",
                "--max-in-flight",
                str(max(clients, 1)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_serving(port)
            s = run_batch(iter(dialogs), [f"127.0.0.1:{port}"], concurrency=clients)
            assert s.done == len(dialogs) and not s.failed, s.failures
            return s.audio_sec, s.wall_sec
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dialogs", default="examples/dialogs.jsonl")
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--clients", default="1,4,8")
    args = ap.parse_args()
    dialogs = load(args.dialogs, args.repeat)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{len(dialogs)} dialogs, {sum(len(d.turns) for d in dialogs)} turns"
    )
    audio, wall = in_process(dialogs)
    base = audio / wall
    print(f"in-process generate     {base:6.2f}x real time ({audio:.1f} s speech in {wall:.2f} s)")
    for n in (int(x) for x in args.clients.split(",")):
        audio, wall = through_grpc(dialogs, n)
        print(f"grpc, {n:2d} client(s)      {audio / wall:6.2f}x real time  ratio {audio / wall / base:5.2f}")


if __name__ == "__main__":
    main()
