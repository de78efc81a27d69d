"""Health under abuse (issue 21 item 1): a real `synth serve --conversation-audio` child process on
loopback stores one conversation of a few MB; a client process opens N GetConversation streams
of it (on one channel, or one channel each, with gRPC's flow-control windows at their initial
64 KiB: no BDP probing) and never asks for a message ("live"), or stops itself ("stop", SIGSTOP:
nothing of its sockets is read any more, not even pings). While they sit there: latency of Health (a fresh channel each time, as a probe
does), ListVoices and a short Synthesize, and the server's memory.

    python bench/bench_slow_readers.py                          # 40 streams, one channel each
    python bench/bench_slow_readers.py --channels one --streams 40 -- --max-in-flight 32

Options after `--` go to `synth serve`. Everything is written into a temporary folder.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc

from synth_client import Backoff, SynthClient, check_health

SYNTH = str(Path(sys.executable).with_name("synth"))
READER = """
import os, signal, sys, time
import grpc
from synth_client.v1 import synth_pb2 as pb, synth_pb2_grpc as pb_grpc
target, count, channels, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
chans = [grpc.insecure_channel(target, [("grpc.http2.bdp_probe", 0)])
         for _ in range(count if channels == "each" else 1)]
calls = [pb_grpc.SynthStub(chans[i % len(chans)]).GetConversation(
    pb.GetConversationRequest(conversation_id="big")) for i in range(count)]
time.sleep(0.5)  # the requests are out; stop before much of the answers can come in
print("started", flush=True)
if mode == "stop":
    os.kill(os.getpid(), signal.SIGSTOP)
time.sleep(3600)
"""
SENTENCE = "We walked along the river for an hour, and then it started to rain on us."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int, proc: subprocess.Popen) -> None:
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            if check_health(f"127.0.0.1:{port}", timeout=1) == "SERVING":
                return
        except grpc.RpcError:
            time.sleep(0.2)
    raise SystemExit("synth serve did not start")


def timed(fn: Callable[[], object]) -> tuple[float, str | None]:
    began = time.perf_counter()
    try:
        fn()
        return time.perf_counter() - began, None
    except grpc.RpcError as exc:
        return time.perf_counter() - began, exc.code().name


def short(client: SynthClient, cid: str) -> None:
    list(client.synthesize([("A", "Still here.")], conversation_id=cid, timeout=10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--channels", choices=["one", "each"], default="each")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--mode", choices=["live", "stop"], default="live")
    parser.add_argument("serve_args", nargs="*", help="after --: options of synth serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port, target = free_port(), ""
        target = f"127.0.0.1:{port}"
        cmd = [SYNTH, "serve", "--host", "127.0.0.1", "--port", str(port), "--out", f"{tmp}/ds",
               "--metrics-port", "-1", "--conversation-audio", *args.serve_args]  # fmt: skip
        with open(f"{tmp}/serve.log", "w") as log:
            server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        reader = None
        try:
            serving(port, server)
            text = " ".join(f"{SENTENCE} This is part {k} of it." for k in range(3))
            with SynthClient(target) as c:
                list(c.synthesize([("AB"[i % 2], text) for i in range(4)], conversation_id="big"))
            size = sum(p.stat().st_size for p in Path(f"{tmp}/ds/conversations/big").iterdir())
            reader = subprocess.Popen(
                [sys.executable, "-c", READER, target, str(args.streams), args.channels, args.mode],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert reader.stdout is not None and reader.stdout.readline().strip() == "started"
            time.sleep(2)
            results: dict[str, list[tuple[float, str | None]]] = {
                "health": [],
                "list_voices": [],
                "synthesize": [],
            }
            with SynthClient(target, backoff=Backoff(attempts=1)) as c:
                for _ in range(args.probes):
                    results["health"].append(timed(lambda: check_health(target, timeout=5)))
                    results["list_voices"].append(timed(lambda: c.list_voices(timeout=5)))
                for cid in ("w0", "w1", "w2"):
                    results["synthesize"].append(timed(lambda cid=cid: short(c, cid)))
            rss = int(Path(f"/proc/{server.pid}/status").read_text().split("VmRSS:")[1].split()[0]) // 1024
            print(f"{args.streams} unread GetConversation streams ({args.channels} channel(s), {args.mode}) of a {size / 1e6:.1f} MB "
                  f"conversation; synth serve {' '.join(args.serve_args)}; server RSS {rss} MB")  # fmt: skip
            for name, got in results.items():
                lat = [t for t, _ in got]
                errors = sorted({e for _, e in got if e})
                print(f"  {name:12s} n={len(got):3d} p50 {statistics.median(lat) * 1000:8.1f} ms  "
                      f"max {max(lat) * 1000:8.1f} ms  failed {sum(1 for _, e in got if e)} {errors}")  # fmt: skip
        finally:
            if reader is not None:
                reader.kill()
                reader.wait()
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
