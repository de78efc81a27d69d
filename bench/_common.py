"""What the long-running benchmarks share: the machine they ran on, the installed `synth` command,
a child's peak memory read from outside, and a work folder that is removed also when the run is
stopped (SIGTERM, SIGHUP: a Slurm time limit, a closed terminal)."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def say(msg: str) -> None:
    """Progress on stderr, so that stdout holds only the results (--json -)."""
    print(msg, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        mem = 0.0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "load_avg_at_start": round(os.getloadavg()[0], 2),
    }


def machine_line(m: dict[str, Any]) -> str:
    return f"{m['cpu']}, {m['cores']} cores, Python {m['python']}"


def synth_command() -> str:
    """The `synth` of this interpreter's environment (the one under test), else the one on PATH."""
    cmd = Path(sys.executable).with_name("synth")
    return str(cmd) if cmd.exists() else (shutil.which("synth") or "synth")


def vm_status(pid: int, keys: tuple[str, ...] = ("VmHWM", "VmRSS")) -> dict[str, int] | None:
    """The named memory lines of a live process's /proc status in KiB (None once it is gone or a
    zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in keys:
            out[key] = int(value.split()[0])
    return out if len(out) == len(keys) else None


def peak_rss(cmd: list[str], log: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(peak resident MiB of the child: its VmHWM, read from /proc every 20 ms while it lives,
    wall s). Not wait4's ru_maxrss: that keeps the high-water mark from before exec, i.e. the
    benchmark's own memory at fork time when it is the larger (an engine loaded in the benchmark)."""
    began = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    try:
        while proc.poll() is None:
            mem = vm_status(proc.pid, ("VmHWM",))
            if mem is not None:
                peak = max(peak, mem["VmHWM"])
            time.sleep(0.02)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(cmd)}: exit {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
        )
    return peak / 1024, time.perf_counter() - began


@contextmanager
def work_folder(ap: argparse.ArgumentParser, out: Path | None, prefix: str) -> Iterator[Path]:
    """`out` when given (it must be new or empty, and is kept), else a temporary folder removed at
    the end. SIGTERM and SIGHUP become SystemExit, so the `finally` blocks (child processes
    stopped, the temporary folder removed) run when the run is stopped too."""

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    if out is not None:
        if out.exists() and any(out.iterdir()):
            ap.error(f"--out {out} is not empty")
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)
