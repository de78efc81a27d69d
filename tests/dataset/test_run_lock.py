"""The tools on one dataset, as people run them (issue 32): from any working folder, with relative
paths, `.`, a path through a symbolic link and a trailing slash; several at once on one dataset;
killed with -9 at random moments and followed by another tool. Real `synth` processes on real
folders, nothing mocked.

The rule (docs/reliability.md, "Tools on one dataset"): the tools that add conversations or read
a dataset (generate, generate --repair, serve, merge into it, splits, export, check --no-write)
hold it shared and run together; a tool that rewrites finished conversations (tokenize, check)
holds it alone: it is refused at once, naming the process it would run beside (pid and command),
or waits with `--wait`, and while it runs or waits every other tool is refused the same way.
`validate` runs beside anything and says what is going on.

Pairs, each exercised here with the first one held mid-run (SIGSTOP outside the writers' lock)
while the second runs:
  generate  x generate, repair, serve, merge, splits, export, validate: all run, all work kept;
            x tokenize, check: refused naming generate; tokenize --wait waits, then runs
  serve     x generate, merge, splits, export, validate: run; x tokenize, check: refused
  repair    x generate, merge, splits, export, validate: run; x tokenize: refused
  tokenize  x every tool but validate: refused naming tokenize (serve does not start), a second
            tokenize --wait waits; validate says a rewrite is running
  check     x generate, tokenize, export: refused naming check; validate says so
  merge, splits, export, validate, generate started all at once: all run
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.dataset.writer import is_held
from synth.workflows.validate import validate_dataset
from tests.helpers import free_port, run_cli, start_cli, varied_dialogs, write_jsonl

QUIET = ("--quiet", "--noise-scale", "0", "--noise-w", "0")


def synth(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The installed `synth`, run in `cwd` as a user would."""
    return run_cli(*args, cwd=cwd, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """`synth ARGS` started in `cwd`, to pause, kill or wait for."""
    return start_cli(*args, cwd=cwd)


def finish(proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def listed(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    return [json.loads(x)["conversation_id"] for x in path.read_text().splitlines()] if path.exists() else []


def profiles(root: Path) -> set[str]:
    """Every speech profile the dataset holds: each conversation's, and dataset.json's."""
    out = {json.loads((root / "dataset.json").read_text())["options"]["samples.speech_profile"]}
    for cid in listed(root):
        out.add(
            json.loads((root / "conversations" / cid / "metadata.json").read_text())["tokens"][
                "speech_profile"
            ]
        )
    return out


def make_dataset(folder: Path, n: int, seed: int, prefix: str, *flags: str) -> Path:
    """A tiny dataset made by the real command (2-3 turns a dialog, noise off)."""
    folder.mkdir(parents=True, exist_ok=True)
    dialogs = write_jsonl(
        folder / f"{prefix}.jsonl", varied_dialogs(n, seed=seed, prefix=prefix, turns=(2, 3))
    )
    res = synth(
        "generate", "--dialogs", str(dialogs), "--out", str(folder / "ds"), *QUIET, *flags, cwd=folder
    )
    assert res.returncode == 0, res.stderr
    return folder / "ds"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """Four conversations, made once; each test works on a copy."""
    return make_dataset(tmp_path_factory.mktemp("base"), 4, 1, "b")


def copy_of(base: Path, to: Path) -> Path:
    shutil.copytree(base, to, symlinks=True)
    return to


def pause(proc: subprocess.Popen[str], root: Path, timeout: float = 60) -> None:
    """SIGSTOP a tool, never inside the writers' lock (a commit), which would hold up the others.
    Tried for `timeout` s, not a number of times: on a loaded machine a commit's fsyncs can hold
    the lock for a good part of a second, several times over."""
    deadline = time.monotonic() + timeout
    while True:
        os.kill(proc.pid, signal.SIGSTOP)
        if not is_held(root / ".lock"):
            return
        os.kill(proc.pid, signal.SIGCONT)
        assert time.monotonic() < deadline, f"the tool never left the writers' lock in {timeout} s"
        time.sleep(0.005)


def wait_serving(port: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    """Until `synth serve` says SERVING (its start-up took the dataset: its recovery ran)."""
    from synth_client import check_health

    deadline = time.monotonic() + timeout
    while True:
        try:
            if check_health(f"127.0.0.1:{port}", timeout=1) == "SERVING":
                return
        except Exception:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"synth serve ended: {proc.communicate()}")
        assert time.monotonic() < deadline, "synth serve did not start"
        time.sleep(0.1)


@contextlib.contextmanager
def paused(proc: subprocess.Popen[str], root: Path) -> Iterator[None]:
    pause(proc, root)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


def wait_for(condition, what: str, timeout: float = 120, proc: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"ended before {what}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def refused_by(res: subprocess.CompletedProcess[str], proc: subprocess.Popen[str], tool: str) -> None:
    """Refused at once (exit 1, no traceback), naming the process it would run beside."""
    assert res.returncode == 1, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    assert f"pid {proc.pid}" in res.stderr and f"`synth {tool}" in res.stderr, res.stderr


# -- 1. paths ------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("form", ["link", "dot"])
def test_every_tool_takes_relative_paths_dot_links_and_trailing_slashes(tmp_path, base, form):
    """Each command from outside, in a working folder that is not the dataset's parent, given the
    dataset as `../../links/ds/` (relative, through a symbolic link, trailing slash), or from
    inside the dataset as `.`: every one works, nothing hidden is left behind, the dataset
    validates after each (was: `synth tokenize ds4` crashed with `ValueError: ... is not in the
    subpath ...` and left `.metadata.json.next` files in every conversation)."""
    from tests.workflows.test_memory_score import PARTLY, write_dataset

    real = copy_of(base, tmp_path / "data" / "ds")
    shutil.copy(base.parent / "b.jsonl", real.parent)
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "ds").symlink_to(real, target_is_directory=True)
    inputs = tmp_path / "inputs"
    other = make_dataset(inputs / "other", 2, 7, "o")  # same options, other ids: merged into it
    more = write_jsonl(inputs / "more.jsonl", varied_dialogs(2, seed=8, prefix="n", turns=(2, 2)))
    if form == "link":
        cwd, ds = tmp_path / "work" / "deeper", "../../links/ds/"
        cwd.mkdir(parents=True)
    else:
        cwd, ds = real, "."

    def rel(path: Path) -> str:
        return os.path.relpath(path, cwd)

    def ok(*args: str) -> subprocess.CompletedProcess[str]:
        res = synth(*args, cwd=cwd)
        assert res.returncode == 0 and "Traceback" not in res.stderr, (args, res.stdout, res.stderr)
        hidden = [p for p in real.rglob(".*") if p.name.endswith((".next", ".new")) or p.name == ".rewrite"]
        assert not hidden, (args, hidden)
        report = validate_dataset(real)
        assert report.ok, (args, report.format())
        return res

    assert ok("validate", ds).stdout.strip().endswith("OK")
    assert "distinct speakers" in ok("validate", ds, "--stats").stdout  # the dataset's report
    ok("check", ds, "--quiet")  # ASR on every turn, recorded in every metadata.json (a rewrite)
    assert "asr_check" in json.loads((real / "conversations" / "b1_0003" / "metadata.json").read_text())
    ok("splits", ds, "--stages", "1k,2k")
    assert (real / "splits" / "stage_1024.jsonl").is_file()
    ok("generate", "--dialogs", rel(more), "--out", ds, *QUIET)
    (real / "conversations" / "b1_0000" / "turn_1.wav").write_bytes(b"RIFF")
    damaged = synth("validate", ds, cwd=cwd)
    assert damaged.returncode == 1 and f"--out {ds.rstrip('/')} --repair" in damaged.stdout, damaged.stdout
    ok("generate", "--dialogs", rel(real.parent / "b.jsonl"), "--out", ds, *QUIET, "--repair")
    ok("merge", ds, rel(other))
    assert sorted(listed(real)) == sorted(
        ["b1_0000", "b1_0001", "b1_0002", "b1_0003", "n8_0000", "n8_0001", "o7_0000", "o7_0001"]
    )
    out = rel(tmp_path / f"export-{form}.json")
    ok("export", ds, out, "--to", "llama-omni")
    assert json.loads((tmp_path / f"export-{form}.json").read_text())
    ok("tokenize", ds, "--speech-profile", "rate:10")
    assert profiles(real) == {"rate:10"}
    assert all(
        json.loads(x)["total_tokens"] for x in (real / "splits" / "stage_2048.jsonl").read_text().splitlines()
    )
    # serve writes into it, named the same way
    began = time.monotonic()
    port = free_port()
    server = start(
        "serve",
        "--out",
        ds,
        "--port",
        str(port),
        "--metrics-port",
        "-1",
        "--speech-profile",
        "rate:10",
        cwd=cwd,
    )
    try:
        from synth_client import SynthClient

        wait_serving(port, server)
        with SynthClient(f"127.0.0.1:{port}") as client:
            list(
                client.synthesize(
                    [("A", "Served through a relative path."), ("B", "Good.")], conversation_id="served"
                )
            )
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert "served" in listed(real) and validate_dataset(real).ok
    print(f"serve: {time.monotonic() - began:.1f} s")
    # memory-score reads a dataset with probes, named the same way
    probes = write_dataset(tmp_path / "data" / "probes")
    (tmp_path / "links" / "probes").symlink_to(probes, target_is_directory=True)
    answers = write_jsonl(tmp_path / "answers.jsonl", PARTLY)
    pcwd, pds = (cwd, "../../links/probes/") if form == "link" else (probes, ".")
    res = synth("memory-score", pds, os.path.relpath(answers, pcwd), cwd=pcwd)
    assert res.returncode == 0 and "6 probes in 2 conversations" in res.stdout, res.stderr


# -- 2. tools together ---------------------------------------------------------------------------


def records(root: Path) -> list[dict]:
    """What `.run/` says about who uses the dataset (live or not)."""
    out = []
    for path in (root / ".run").iterdir():
        with contextlib.suppress(OSError, ValueError):
            out.append(json.loads(path.read_text()))
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every visible file of the dataset (the hidden ones are locks and records)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


@pytest.mark.faults
def test_a_rewrite_holds_the_dataset_alone(tmp_path, base):
    """`synth tokenize` held mid-rewrite: every other tool is refused at once, naming its pid and
    command, and changes nothing (serve does not start); validate says a rewrite is running; a
    second tokenize --wait waits, then runs. The dataset ends with one speech profile, the one
    dataset.json records (was: tokenize and generate both ran, leaving 8 conversations rate:10
    and 28 llama-omni, and validate said OK)."""
    ds = copy_of(base, tmp_path / "ds")
    shutil.copy(base.parent / "b.jsonl", tmp_path)
    other = make_dataset(tmp_path / "other", 1, 3, "m")
    more = write_jsonl(tmp_path / "more.jsonl", varied_dialogs(2, seed=4, prefix="g", turns=(2, 2)))
    rewrite = start("tokenize", str(ds), "--speech-profile", "rate:10", cwd=tmp_path)
    wait_for(lambda: (ds / ".rewrite").exists(), "the rewrite to begin", proc=rewrite)
    with paused(rewrite, ds):
        before = snapshot(ds)
        for args in (
            ("generate", "--dialogs", str(more), "--out", "ds", *QUIET),
            ("generate", "--dialogs", "b.jsonl", "--out", "ds/", *QUIET, "--repair"),
            ("merge", "ds", str(other)),
            ("merge", str(tmp_path / "merged"), "ds"),
            ("splits", "ds"),
            ("export", "ds", "e.json", "--to", "llama-omni"),
            ("tokenize", "ds", "--speech-profile", "llama-omni"),
            ("check", "ds", "--quiet"),
        ):
            refused_by(synth(*args, cwd=tmp_path), rewrite, "tokenize")
        server = start(
            "serve", "--out", "ds", "--port", str(free_port()), "--metrics-port", "-1", cwd=tmp_path
        )
        code, _, err = finish(server, 120)
        assert code == 1 and f"pid {rewrite.pid}" in err and "`synth tokenize" in err, err
        assert snapshot(ds) == before and not (tmp_path / "e.json").exists()
        said = synth("validate", "ds", cwd=tmp_path)
        assert said.returncode == 0 and f"pid {rewrite.pid}" in said.stdout, said.stdout
        assert "is rewriting this dataset now (to speech profile rate:10" in said.stdout, said.stdout
        waiting = start("tokenize", "ds", "--speech-profile", "rate:10", "--wait", cwd=tmp_path)
        wait_for(lambda: any(r.get("waiting") for r in records(ds)), "tokenize --wait to wait", proc=waiting)
        refused_by(
            synth("generate", "--dialogs", str(more), "--out", "ds", *QUIET, cwd=tmp_path),
            waiting,
            "tokenize",
        )
        time.sleep(0.5)
        assert waiting.poll() is None
    assert finish(rewrite)[0] == 0
    code, out, err = finish(waiting)
    assert code == 0 and f"waiting for synth tokenize (pid {rewrite.pid}" in err, err
    assert profiles(ds) == {"rate:10"} and sorted(listed(ds)) == sorted(listed(base))
    report = validate_dataset(ds)
    assert report.ok and not report.warnings, report.format()


@pytest.mark.faults
def test_writers_run_together_and_a_rewrite_waits_for_them(tmp_path, base):
    """`synth generate` held mid-run and `synth serve` up: another generate, a repair, a merge into
    the dataset, splits, an export and validate run beside them (several at once) and all their
    work is kept; tokenize and check are refused naming both; tokenize --wait waits until both
    are gone, then rewrites everything, including what they wrote meanwhile: one profile."""
    from synth_client import SynthClient

    ds = copy_of(base, tmp_path / "ds")
    shutil.copy(base.parent / "b.jsonl", tmp_path)
    other = make_dataset(tmp_path / "other", 2, 3, "m")
    many = write_jsonl(tmp_path / "many.jsonl", varied_dialogs(8, seed=5, prefix="g", turns=(2, 3)))
    more = write_jsonl(tmp_path / "more.jsonl", varied_dialogs(2, seed=6, prefix="h", turns=(2, 2)))
    port = free_port()
    server = start("serve", "--out", "ds/", "--port", str(port), "--metrics-port", "-1", cwd=tmp_path)
    writer = start("generate", "--dialogs", str(many), "--out", "ds", *QUIET, cwd=tmp_path)
    waiting = None
    try:
        wait_serving(port, server)
        wait_for(lambda: any(c.startswith("g") for c in listed(ds)), "generate to write", proc=writer)
        with paused(writer, ds):
            for args in (("tokenize", "ds", "--speech-profile", "rate:10"), ("check", "ds", "--quiet")):
                res = synth(*args, cwd=tmp_path)
                refused_by(res, writer, "generate")
                assert f"pid {server.pid}" in res.stderr and "`synth serve" in res.stderr, res.stderr
            said = synth("validate", "ds", cwd=tmp_path)
            assert said.returncode == 0 and "being written now by" in said.stdout, said.stdout
            assert f"pid {writer.pid}" in said.stdout and f"pid {server.pid}" in said.stdout
            (ds / "conversations" / "b1_0002" / "turn_0.wav").write_bytes(b"RIFF")
            together = [
                start("generate", "--dialogs", str(more), "--out", "ds", *QUIET, cwd=tmp_path),
                start("generate", "--dialogs", "b.jsonl", "--out", "ds", *QUIET, "--repair", cwd=tmp_path),
                start("merge", "ds", str(other), cwd=tmp_path),
                start("splits", "ds", "--stages", "1k,2k", cwd=tmp_path),
                start("export", "ds", "e.json", "--to", "llama-omni", cwd=tmp_path),
            ]
            with SynthClient(f"127.0.0.1:{port}") as client:
                list(
                    client.synthesize(
                        [("A", "Served beside the others."), ("B", "Fine.")], conversation_id="served"
                    )
                )
            said = [finish(proc) for proc in together]
            assert [code for code, _, _ in said[1:]] == [0] * 4, said
            # the other generate saw the damaged conversation (exit 3, "DAMAGED") unless the repair was first
            assert said[0][0] == 0 or (said[0][0] == 3 and "DAMAGED: 1" in said[0][1]), said[0]
            assert "made again 1 damaged" in said[1][1], said[1]
            waiting = start("tokenize", "ds", "--speech-profile", "rate:10", "--wait", cwd=tmp_path)
            wait_for(
                lambda: any(r.get("waiting") for r in records(ds)), "tokenize --wait to wait", proc=waiting
            )
        assert finish(writer)[0] == 0
        time.sleep(0.5)
        assert waiting.poll() is None  # serve still holds the dataset
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert waiting is not None
    code, _, err = finish(waiting)
    assert code == 0 and "waiting for" in err, err
    ids = listed(ds)
    expected = {
        *listed(base),
        *(f"g5_{i:04d}" for i in range(8)),
        "h6_0000",
        "h6_0001",
        "m3_0000",
        "m3_0001",
        "served",
    }
    assert sorted(ids) == sorted(expected)  # every tool's work, each conversation once
    assert profiles(ds) == {"rate:10"}
    report = validate_dataset(ds)
    assert report.ok and not report.warnings, report.format()


@pytest.mark.faults
def test_check_holds_the_dataset_alone_and_keeps_integrity(tmp_path, base):
    """`synth check` records its results as a rewrite: held mid-way, writers, tokenize and exports
    are refused naming it, validate says a rewrite runs; afterwards every metadata.json has its
    results and the dataset validates (was: metadata.json rewritten in place, its integrity
    record left behind: validate said every conversation was damaged)."""
    ds = copy_of(base, tmp_path / "ds")
    more = write_jsonl(tmp_path / "more.jsonl", varied_dialogs(1, seed=4, prefix="g", turns=(2, 2)))
    check = start("check", "ds", "--quiet", cwd=tmp_path)
    wait_for(lambda: (ds / ".rewrite").exists(), "check to begin its rewrite", proc=check)
    with paused(check, ds):
        for args in (
            ("generate", "--dialogs", str(more), "--out", "ds", *QUIET),
            ("tokenize", "ds", "--speech-profile", "rate:10"),
            ("export", "ds", "e.json", "--to", "llama-omni"),
        ):
            refused_by(synth(*args, cwd=tmp_path), check, "check")
        said = synth("validate", "ds", cwd=tmp_path)
        assert said.returncode == 0 and "is rewriting this dataset now" in said.stdout, said.stdout
    assert finish(check)[0] == 0
    for cid in listed(ds):
        assert "asr_check" in json.loads((ds / "conversations" / cid / "metadata.json").read_text())
    report = validate_dataset(ds)
    assert report.ok and not report.warnings, report.format()


@pytest.mark.faults
def test_a_repair_runs_beside_writers_never_beside_a_rewrite(tmp_path, base):
    """`synth generate --repair` held while it makes a damaged conversation again: another
    generate, a merge, splits, an export and validate run beside it; tokenize is refused naming
    it; afterwards the damaged conversation is back, whole."""
    ds = copy_of(base, tmp_path / "ds")
    shutil.copy(base.parent / "b.jsonl", tmp_path)
    other = make_dataset(tmp_path / "other", 1, 3, "m")
    more = write_jsonl(tmp_path / "more.jsonl", varied_dialogs(1, seed=6, prefix="h", turns=(2, 2)))
    for cid in ("b1_0001", "b1_0003"):
        (ds / "conversations" / cid / "turn_1.wav").write_bytes(b"RIFF")
    repair = start("generate", "--dialogs", "b.jsonl", "--out", "ds", *QUIET, "--repair", cwd=tmp_path)
    wait_for(lambda: "b1_0001" not in listed(ds), "the repair to take the damaged ones out", proc=repair)
    with paused(repair, ds):
        refused_by(synth("tokenize", "ds", "--speech-profile", "rate:10", cwd=tmp_path), repair, "generate")
        for args in (
            ("generate", "--dialogs", str(more), "--out", "ds", *QUIET),
            ("merge", "ds", str(other)),
            ("splits", "ds"),
            ("export", "ds", "e.json", "--to", "llama-omni"),
            ("validate", "ds"),
        ):
            res = synth(*args, cwd=tmp_path)
            assert res.returncode == 0, (args, res.stdout, res.stderr)
    code, out, _ = finish(repair)
    assert code == 0 and "made again 2 damaged" in out, out
    assert sorted(listed(ds)) == sorted([*listed(base), "h6_0000", "m3_0000"])
    report = validate_dataset(ds)
    assert report.ok and not report.warnings, report.format()


# -- 3. killed, then the next tool ---------------------------------------------------------------


def leftovers(root: Path) -> list[Path]:
    """What a rewrite leaves while it is unfinished: its marker, journal, hidden new files. Walked
    with os.walk, which passes over folders that go while it looks (a writer's staging and
    workers' folders come and go; Path.rglob raises on them)."""
    out = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if name in (".rewrite", ".switch.json") or (name.startswith(".") and name.endswith(".next")):
                out.append(Path(folder) / name)
    return out


def kill_at_random(proc: subprocess.Popen[str], root: Path, rng: random.Random, span: float) -> float | None:
    """kill -9, half the time within `span` s of its first hidden write (the rewrite itself), half
    the time anywhere in its first 1.5 `span` + start-up. Returns how long this run took from its
    first hidden write to its exit where it ended before its kill moment (it rewrote faster than
    `span` says), else None."""
    began = time.monotonic()
    if rng.random() < 0.5:
        while proc.poll() is None and not leftovers(root) and time.monotonic() - began < 60:
            time.sleep(0.002)
        marked = time.monotonic()
        rewriting = proc.poll() is None and marked - began < 60  # its rewrite seen under way
        kill_at = marked + rng.uniform(0, span)
        while time.monotonic() < kill_at and proc.poll() is None:
            time.sleep(0.002)
        if proc.poll() is not None:  # ended before its moment
            return time.monotonic() - marked if rewriting else None
    else:
        time.sleep(rng.uniform(0.2, 0.6 + 1.5 * span))
    proc.kill()
    proc.wait()
    return None


def renamed_not_listed(root: Path, report) -> list[str]:
    """The conversation folders a writer renamed into place and was killed before it appended
    their manifest lines (its one window between the two, with a directory fsync in it: long on a
    loaded machine). Nothing refers to them; validate says so, as a warning naming `--recover`, and
    every writer's start (recover) removes them (synth/dataset/writer.py, docs/reliability.md)."""
    ids = set(listed(root))
    unlisted = sorted(p.name for p in (root / "conversations").iterdir() if p.name not in ids)
    for cid in unlisted:
        said = [p.message for p in report.problems if p.kind == "warning" and p.conversation == cid]
        assert any("folder not in manifest.jsonl" in m for m in said), (cid, report.format())
    if unlisted:
        assert any("--recover" in a and "unlisted" in a for a in report.advice), report.format()
    return unlisted


def errors_beside(report, unlisted: list[str]) -> list[str]:
    """The report's errors about anything but the `unlisted` folders."""
    return [p.message for p in report.problems if p.kind == "error" and p.conversation not in unlisted]


def next_tool(k: int, tmp_path: Path, profile: str) -> tuple[str, ...]:
    """The k-th tool that follows a kill (all of them in turn), for a dataset of `profile`."""
    more = write_jsonl(
        tmp_path / f"more{k}.jsonl", varied_dialogs(1, seed=20 + k, prefix=f"k{k}_", turns=(2, 2))
    )
    tools = [
        ("generate", "--dialogs", str(more), "--out", "ds", *QUIET, "--speech-profile", profile),
        ("validate", "ds", "--recover"),
        ("export", "ds", f"e{k}.json", "--to", "llama-omni"),
        ("merge", f"merged{k}", "ds"),
        ("splits", "ds", "--stages", "1k,2k"),
        ("generate", "--dialogs", "b.jsonl", "--out", "ds/", *QUIET, "--repair", "--speech-profile", profile),
        ("tokenize", "ds", "--speech-profile", profile),
        ("serve", "--out", "ds", "--speech-profile", profile),
        ("check", "ds", "--quiet"),
    ]
    return tools[k % len(tools)]


def run_next(args: tuple[str, ...], tmp_path: Path) -> None:
    if args[0] == "serve":  # starts (its recovery runs), serves, stops
        port = free_port()
        server = start(*args, "--port", str(port), "--metrics-port", "-1", cwd=tmp_path)
        try:
            wait_serving(port, server)
        finally:
            server.terminate()
            server.wait(timeout=60)
        return
    res = synth(*args, cwd=tmp_path)
    assert res.returncode == 0 and "Traceback" not in res.stderr, (args, res.stdout, res.stderr)


@pytest.mark.faults
def test_tokenize_killed_at_random_moments_then_each_other_tool(tmp_path, base):
    """`synth tokenize` killed with -9 at random moments (half of them inside its rewrite), nine
    times (more, up to 14, until one lands before a switch; the moments follow the fastest
    rewrite seen), each kill followed by another tool (generate, validate --recover, export, merge from
    it, splits, repair, tokenize, serve, check). After each kill the dataset is the old one or the
    new one, never a mix, or a switch is pending, and validate says which: OK for a whole state
    (with a warning naming the interrupted rewrite, the old one), FAILED naming `--recover` for a
    pending switch; after the next tool every conversation, the manifest, the splits and
    dataset.json agree on one speech profile and the dataset validates."""
    ds = copy_of(base, tmp_path / "ds")
    shutil.copy(base.parent / "b.jsonl", tmp_path)
    assert synth("splits", "ds", "--stages", "1k,2k", cwd=tmp_path).returncode == 0
    began = time.monotonic()
    full = start("tokenize", "ds", "--speech-profile", "rate:10", cwd=tmp_path)
    wait_for(lambda: bool(leftovers(ds)) or full.poll() is not None, "the rewrite")
    marked = time.monotonic()
    assert finish(full)[0] == 0
    span = max(0.05, time.monotonic() - marked)
    print(f"tokenize: {marked - began:.2f} s to its rewrite, {span:.2f} s of rewrite")
    rng = random.Random(32)
    current, seen = "rate:10", []
    k = 0
    # nine kills, each tool once after one; more (up to 14) until one lands before a switch
    while k < 9 or (k < 14 and not any(s.startswith("old") for s in seen)):
        target = "llama-omni" if current == "rate:10" else "rate:10"
        proc = start("tokenize", "ds", "--speech-profile", target, cwd=tmp_path)
        faster = kill_at_random(proc, ds, rng, span)
        if faster is not None:  # this run rewrote faster than the timing run (a cold start, a busy
            span = max(0.05, min(span, faster))  # machine): the later moments follow the faster one
        report = validate_dataset(ds)
        if (ds / ".switch.json").exists():
            seen.append("switch pending")
            assert not report.ok and any("--recover" in a for a in report.advice), report.format()
            after = target
        else:
            now = profiles(ds)
            assert now in ({current}, {target}), now  # never a mix
            assert report.ok, report.format()
            if (ds / ".rewrite").exists():
                seen.append("old, rewrite interrupted")
                assert now == {current} and any("interrupted before its switch" in w for w in report.warnings)
            else:
                seen.append("new" if now == {target} else "old")
            after = now.pop()
        tool = next_tool(k, tmp_path, after)
        run_next(tool, tmp_path)
        assert not leftovers(ds), (tool, leftovers(ds))
        current = profiles(ds).pop() if len(profiles(ds)) == 1 else pytest.fail(f"{tool}: {profiles(ds)}")
        if tool[0] == "tokenize":
            current = tool[3]
        report = validate_dataset(ds)
        assert report.ok and not report.warnings, (tool, report.format())
        for split in ("stage_1024.jsonl", "stage_2048.jsonl"):  # the splits follow the manifest's counts
            tokens = {
                json.loads(x)["conversation_id"]: json.loads(x)["total_tokens"]
                for x in (ds / "manifest.jsonl").read_text().splitlines()
            }
            for line in (ds / "splits" / split).read_text().splitlines():
                assert json.loads(line)["total_tokens"] == tokens[json.loads(line)["conversation_id"]], split
        k += 1
    print(f"after each kill ({span:.2f} s of rewrite at the end):", seen)
    assert any(s.startswith("old") for s in seen)


def writing(tool: str, root: Path) -> bool:
    """Whether a tool has begun to write: check its rewrite, merge its first copy."""
    if tool == "check":
        return bool(leftovers(root))
    return any(p.is_dir() for p in (root / ".tmp").iterdir())


def metadata(root: Path, cid: str) -> dict:
    return json.loads((root / "conversations" / cid / "metadata.json").read_text())


@pytest.mark.faults
@pytest.mark.parametrize("killed", ["check", "repair", "merge", "splits"])
def test_each_rewriting_tool_killed_then_the_next_tool(tmp_path, base, killed):
    """The other tools that change a finished dataset, killed with -9 at random moments (three
    times), each kill followed by another tool: `check` leaves its results in every
    metadata.json or in none (or a pending switch that validate names and the next tool
    finishes); `repair` leaves the damaged conversation damaged (validate names it and
    `--repair`), taken out, or made again whole; `merge` into the dataset leaves each
    conversation copied whole or not at all; `splits` leaves each split the old one or the new
    one. Validate is right about which, and the dataset then validates after the next tool."""
    ds = copy_of(base, tmp_path / "ds")
    shutil.copy(base.parent / "b.jsonl", tmp_path)
    other = make_dataset(tmp_path / "other", 4, 3, "m") if killed == "merge" else None
    assert synth("splits", "ds", "--stages", "1k,2k", cwd=tmp_path).returncode == 0
    rng = random.Random(killed)
    seen = []
    for k in range(3):
        if killed == "repair" and "b1_0001" in listed(ds):
            (ds / "conversations" / "b1_0001" / "turn_1.wav").write_bytes(b"RIFF")
        if killed == "merge":  # into the dataset as it was: each kill lands in a merge that copies
            shutil.rmtree(ds)
            copy_of(base, ds)
        if killed == "splits":  # the dataset grows, so that the new splits differ from the old
            grow = write_jsonl(
                tmp_path / f"grow{k}.jsonl", varied_dialogs(1, seed=40 + k, prefix=f"s{k}_", turns=(2, 2))
            )
            run_next(("generate", "--dialogs", str(grow), "--out", "ds", *QUIET), tmp_path)
            old_splits = {p.name: p.read_bytes() for p in (ds / "splits").iterdir()}
            new_lines = listed(ds)
        args = {
            "check": ("check", "ds", "--quiet"),
            "repair": ("generate", "--dialogs", "b.jsonl", "--out", "ds", *QUIET, "--repair"),
            "merge": ("merge", "ds", str(other)),
            "splits": ("splits", "ds", "--stages", "1k,2k"),
        }[killed]
        proc = start(*args, cwd=tmp_path)
        if killed in ("check", "merge"):  # after its model loads / its first copy, at a random moment
            deadline = time.monotonic() + 120
            while proc.poll() is None and not writing(killed, ds) and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 3.0 if killed == "check" else 0.1))
            proc.kill()
            proc.wait()
        else:
            kill_at_random(proc, ds, rng, 0.3)
        report = validate_dataset(ds)
        if killed == "check":
            if (ds / ".switch.json").exists():
                seen.append("switch pending")
                assert not report.ok and any("--recover" in a for a in report.advice), report.format()
            else:
                checked = {"asr_check" in metadata(ds, cid) for cid in listed(ds)}
                assert len(checked) == 1 and report.ok, (checked, report.format())  # all or none
                seen.append("new" if checked == {True} else "old")
        elif killed == "repair":
            # b1_0001's folder unlisted: taken out of the manifest, killed before its folder was
            # removed, or made again and killed between its rename and its manifest line
            unlisted = renamed_not_listed(ds, report)
            assert unlisted in ([], ["b1_0001"]), (unlisted, report.format())
            damaged = [e for e in errors_beside(report, unlisted) if "damaged" in e or "turn_1.wav" in e]
            assert len(damaged) == len(errors_beside(report, unlisted)), report.format()
            if unlisted:
                whole = not [p for p in report.problems if p.kind == "error" and p.conversation == "b1_0001"]
                seen.append("made again, not listed" if whole else "taken out, its folder not yet removed")
                assert not errors_beside(report, unlisted), report.format()
            elif "b1_0001" not in listed(ds):
                seen.append("taken out, not yet made again")
                assert report.ok, report.format()
            elif damaged:
                seen.append("old (damaged)")
                assert all("b1_0001" in e for e in damaged)
                assert any("--repair" in a for a in report.advice), report.format()
            else:
                seen.append("new (made again)")
        elif killed == "merge":
            copied = [c for c in listed(ds) if c.startswith("m")]
            # killed between a folder's rename and its manifest line: that folder whole, unlisted
            # (validate warns of it and names `--recover`), everything else as valid as before
            unlisted = renamed_not_listed(ds, report)
            assert len(unlisted) <= 1 and all(c.startswith("m3_") for c in unlisted), report.format()
            for cid in unlisted:  # whole: no error, only the warning that no line lists it
                assert not [p for p in report.problems if p.kind == "error" and p.conversation == cid]
            assert not errors_beside(report, unlisted), report.format()  # each listed one whole
            seen.append(
                f"{len(copied)} of 4 copied" + (f", {unlisted[0]} renamed, not listed" if unlisted else "")
            )
        else:
            now = {p.name: p.read_bytes() for p in (ds / "splits").iterdir() if not p.name.startswith(".")}
            assert now.keys() == old_splits.keys()
            for name, data in now.items():
                ids = [json.loads(x)["conversation_id"] for x in data.decode().splitlines()]
                assert data == old_splits[name] or set(ids) <= set(new_lines), name
            seen.append("new" if now != old_splits else "old")
            assert report.ok, report.format()
        tool = next_tool(k + 2 * ["check", "repair", "merge", "splits"].index(killed), tmp_path, "llama-omni")
        if killed == "repair" and tool[0] == "check":
            tool = ("validate", "ds")
        res = synth(*tool, cwd=tmp_path) if tool[0] != "serve" else None
        if res is None:
            run_next(tool, tmp_path)
        else:
            still_damaged = (  # listed and damaged (unlisted, nothing refers to it: no excuse to fail)
                killed == "repair"
                and "b1_0001" in listed(ds)
                and any("b1_0001" in e for e in validate_dataset(ds).errors)
            )
            assert "Traceback" not in res.stderr, (tool, res.stderr)
            assert res.returncode == 0 or (still_damaged and res.returncode in (1, 3)), (
                tool,
                res.stdout,
                res.stderr,
            )
        assert not leftovers(ds), (tool, leftovers(ds))
    print(killed, "after each kill:", seen)
    finish_args = {"repair": args, "merge": args}.get(killed)
    if finish_args:
        assert synth(*finish_args, cwd=tmp_path).returncode == 0
    report = validate_dataset(ds)
    assert report.ok and not report.warnings, report.format()
    assert len(profiles(ds)) == 1
    if killed == "merge":
        assert {c for c in listed(ds) if c.startswith("m")} == {f"m3_{i:04d}" for i in range(4)}
