"""What the tests share besides fixtures: the repository's paths, dialog files, the installed
`synth` command run as a child process, a real multi-speaker Piper model built from the embedded
one, and a real `synth serve` process on loopback. Nothing here is mocked."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]


EXAMPLES = REPO / "examples" / "dialogs.jsonl"


def write_jsonl(path: Path, records: list[Any]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


# the installed `synth` entry point (what a user runs); `python -m synth.cli` where none is installed
SYNTH = str(Path(sys.executable).with_name("synth"))
SYNTH_COMMAND = [SYNTH] if Path(SYNTH).exists() else [sys.executable, "-m", "synth.cli"]


def run_cli(
    *args: str | Path, cwd: Path | str = REPO, timeout: float = 600, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `synth ARGS` in a child process, in `cwd`, as a user would; its output captured."""
    return subprocess.run(
        [*SYNTH_COMMAND, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env=dict(env) if env is not None else None,
    )  # fmt: skip


def start_cli(
    *args: str | Path, cwd: Path | str = REPO, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[str]:
    """Start `synth ARGS` in a child process (to signal, kill or wait for it); stdout and stderr
    piped unless `popen` says otherwise."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [*SYNTH_COMMAND, *map(str, args)],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        text=True,
        **popen,
    )


LONG = "I spent the whole morning at the garage, and the mechanic kept finding new problems with the brakes."


DUPLEX_DIALOGS = [
    {"conversation_id": "duo", "turns": [
        {"speaker": "user", "text": "How did the car repair go?"},
        {"speaker": "assistant", "text": LONG + " " + LONG},
        {"speaker": "user", "text": "That sounds expensive."},
        {"speaker": "assistant", "text": "It was, but at least it is safe to drive now."},
    ]},
    {"conversation_id": "trio", "turns": [
        {"speaker": "A", "text": "Who wants to plan the trip?"},
        {"speaker": "B", "text": LONG},
        {"speaker": "C", "text": "I can book the train tickets tonight."},
        {"speaker": "B", "text": "Great, then I will find a place to stay."},
    ]},
]  # fmt: skip


def build_piper_trio(
    folder: Path, name: str = "en_US-trio-medium", speakers=("ann", "bob", "cyd"), gains=None
) -> Path:
    """A multi-speaker Piper model built outside synth: the embedded graph given a real `sid`
    input and a config naming the speakers. Returns NAME.onnx (NAME.onnx.json beside it). Without
    `gains`, sid is added to the audio times zero (used, changing nothing: the speakers sound the
    same); with them, sid looks up a speaker table (`Gather(table, sid)`, as real multi-speaker
    Piper graphs look up their speaker embeddings) whose row scales the audio."""
    import onnx
    from onnx import TensorProto, helper

    from synth.engines.piper import embedded_model_path

    model = onnx.load(str(embedded_model_path()))
    for init in model.graph.initializer:  # the exporter named the phoneme table "sid": free the name
        if init.name == "sid":
            init.name = "phoneme_table"
    for node in model.graph.node:
        node.input[:] = ["phoneme_table" if i == "sid" else i for i in node.input]
    model.graph.input.append(helper.make_tensor_value_info("sid", TensorProto.INT64, [1]))
    out = model.graph.output[0].name
    for node in model.graph.node:
        node.output[:] = ["audio_raw" if o == out else o for o in node.output]
    if gains is None:
        model.graph.initializer.append(helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]))
        model.graph.node.extend(
            [
                helper.make_node("Cast", ["sid"], ["sid_f"], to=TensorProto.FLOAT),
                helper.make_node("Mul", ["sid_f", "zero"], ["sid_zero"]),
                helper.make_node("Add", ["audio_raw", "sid_zero"], [out]),
            ]
        )
    else:
        table = helper.make_tensor("speaker_table", TensorProto.FLOAT, [len(gains), 1], list(gains))
        model.graph.initializer.append(table)
        model.graph.node.extend(
            [
                helper.make_node("Gather", ["speaker_table", "sid"], ["speaker_row"]),
                helper.make_node("Mul", ["audio_raw", "speaker_row"], [out]),
            ]
        )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    config = json.loads(Path(f"{embedded_model_path()}.json").read_text())
    config.update(num_speakers=len(speakers), speaker_id_map={s: i for i, s in enumerate(speakers)})
    Path(f"{path}.json").write_text(json.dumps(config))
    return path


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(out: Path, port: int, *extra: str) -> subprocess.Popen:
    """A real `synth serve` child process on loopback, returned once health says SERVING."""
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("synth")),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--out",
            str(out),
            "--metrics-port",
            "-1",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if (
                stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                == health_pb2.HealthCheckResponse.SERVING
            ):
                channel.close()
                return proc
        except grpc.RpcError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"server did not become ready: {proc.stdout.read() if proc.stdout else ''}")


SUBJECTS = (
    "the new library", "my cousin's wedding", "the bus schedule", "a broken bicycle", "the science fair",
    "our neighbour's dog", "the tomato harvest", "a job interview", "the winter coat sale", "a leaking roof",
    "the chess club", "my grandmother's recipe", "the night train", "a painting class", "the football match",
)  # fmt: skip
OPENERS = (
    "Have you heard anything about {s}?", "I wanted to ask you about {s}.", "What do you think of {s}?",
    "Do you remember {s}?", "Can we talk about {s} for a minute?",
)  # fmt: skip
REPLIES = (
    "Yes, I heard about {s} yesterday and I was surprised.", "Not much, to be honest. Tell me more.",
    "I think {s} is going to take longer than anyone expects.", "Oh, that reminds me, I meant to call you.",
    "Honestly, I would rather not think about {s} today.", "It went well, although we ran out of time.",
    "My brother says {s} was the best part of his week.", "I am not sure, but I can find out by Friday.",
)  # fmt: skip
FOLLOW_UPS = (
    "Really? Why is that?", "That sounds complicated.", "Could you explain what happened first?",
    "I see. And what did everyone else say?", "Well, let me know if you need any help with it.",
    "That is good news, at least.", "Then we should plan something together next week.",
)  # fmt: skip


def varied_dialogs(n: int, seed: int = 0, prefix: str = "d", turns: tuple[int, int] = (4, 12)) -> list[dict]:
    """`n` two-speaker dialogs of varied lengths in synth's JSONL shape, from our own sentences."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(n):
        subject = rng.choice(SUBJECTS)
        texts = [rng.choice(OPENERS).format(s=subject)]
        for k in range(rng.randint(*turns) - 1):
            texts.append(rng.choice(REPLIES if k % 2 == 0 else FOLLOW_UPS).format(s=subject))
        out.append(
            {
                "conversation_id": f"{prefix}{seed}_{i:04d}",
                "turns": [{"speaker": "AB"[k % 2], "text": t} for k, t in enumerate(texts)],
            }
        )
    return out


# -- faults: a real small volume, filled ------------------------------------------------------
PAGE = 4096


@contextlib.contextmanager
def small_volume(path: Path, size_kib: int):
    """A real file system of `size_kib` KiB (tmpfs), so that writes really run out of space."""
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here: the fault tests need root ({res.stderr.strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill_leaving(volume: Path, pages: int) -> Path:
    """Fill the volume completely, then free exactly `pages` pages."""
    filler = volume / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        chunk = b"\0" * PAGE
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                break
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - pages * PAGE))
    return filler


def listed(root: Path) -> list[str]:
    """The conversation ids of a dataset's manifest, in order."""
    path = root / "manifest.jsonl"
    return [json.loads(x)["conversation_id"] for x in path.read_bytes().splitlines()] if path.exists() else []
