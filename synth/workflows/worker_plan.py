"""How many worker processes, and how many ONNX Runtime threads each, for a run on this machine
(`synth generate --workers auto --threads auto`; synth.workflows.workers runs them).

Why one single-thread worker per core: one process of several intra-op threads is never faster,
and slower where threads scale badly (on our 2-core machine two one-thread processes made 1.06x
(Piper) and 1.08x (Kokoro) the audio of one two-thread process in synthesis alone, 1.03x and
1.14x end to end; 1.17x and 1.30x in synthesis alone where the issue measured them:
docs/benchmarks.md), so the most audio per core comes from processes of one thread. Each worker
holds its own model, so never more of them than the memory free to this process holds; one
worker when a GPU does the work or the items must be made one after another."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engines.config import CoquiConfig, KokoroConfig, PiperConfig
from ..errors import ConfigError

__all__ = [
    "AUTO",
    "WORKER_MEMORY",
    "Plan",
    "available_cores",
    "available_memory",
    "parse_count",
    "plan_workers",
    "uses_gpu",
    "worker_memory",
]

log = logging.getLogger(__name__)

AUTO = "auto"
GiB = 1024**3
MiB = 1024**2
# What one worker holds (its engine, pipeline, tokenizer and conversations in flight): what `auto`
# divides the free memory by. Peak resident memory measured with `bench/bench_workers.py` on
# dialogs of 4-8 turns: Piper 336-354 MiB, Kokoro 554-557 MiB; with headroom for long turns and
# conversation audio. Coqui's is an estimate (PyTorch and a VITS model), not a measurement.
WORKER_MEMORY = {"piper": 400 * MiB, "kokoro": 768 * MiB, "coqui": 2 * GiB}
ASR_MEMORY = 600 * MiB  # faster-whisper and its model, per worker, with --asr-check
MEMORY_SHARE = 0.8  # of the free memory, for workers; the rest for the page cache and the parent


def parse_count(option: str) -> Callable[[Any], int | str]:
    """Text (or a number) -> a count of 1 or more, or 'auto'."""

    def parse(value: Any) -> int | str:
        text = str(value).strip().lower()
        if text == AUTO:
            return AUTO
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(option, "expected a whole number of 1 or more, or auto", value)
        return int(text)

    parse.__name__ = option
    return parse


# --- the machine -------------------------------------------------------------------------------


def available_cores() -> int:
    """The cores this process may use: its CPU affinity (Slurm's and taskset's binding), at most
    its cgroup's CPU quota (a Kubernetes limit), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, int(quota))
    return max(1, cores)


def available_memory() -> int | None:
    """Bytes this process could still take: the system's available memory, at most what its
    cgroup's limit leaves (a Slurm allocation, a Kubernetes limit); None when unknown."""
    free: int | None = None
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
    for limit, used in _cgroup_memory():
        left = max(0, limit - used)
        free = left if free is None else min(free, left)
    return free


def _cgroup_dirs() -> list[tuple[str, Path]]:
    """(controllers, folder) of this process's cgroups, v2 ('' controllers) and v1."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            base = (
                Path("/sys/fs/cgroup")
                if not controllers
                else Path("/sys/fs/cgroup") / controllers.split(",")[0]
            )
            folder = base / path.lstrip("/")
            if not folder.is_dir():  # a cgroup namespace: the process's cgroup is the root
                folder = base
            out.append((controllers, folder))
    return out


def _up(folder: Path) -> Iterator[Path]:
    """The folder and its parents up to /sys/fs/cgroup (each level's limit applies)."""
    while True:
        yield folder
        if folder.parent == folder or folder == Path("/sys/fs/cgroup") or folder.parent == Path("/sys/fs"):
            return
        folder = folder.parent


def _cgroup_cpu_quota() -> float | None:
    quotas = []
    for controllers, folder in _cgroup_dirs():
        for level in _up(folder):
            with contextlib.suppress(OSError, ValueError):
                if not controllers:
                    quota, period = (level / "cpu.max").read_text().split()[:2]
                    if quota != "max":
                        quotas.append(int(quota) / int(period))
                elif "cpu" in controllers.split(","):
                    quota = (level / "cpu.cfs_quota_us").read_text().strip()
                    period = (level / "cpu.cfs_period_us").read_text().strip()
                    if int(quota) > 0:
                        quotas.append(int(quota) / int(period))
    return min(quotas) if quotas else None


def _cgroup_memory() -> list[tuple[int, int]]:
    """(limit, usage) of each cgroup level with a memory limit."""
    out = []
    for controllers, folder in _cgroup_dirs():
        names = (
            ("memory.max", "memory.current")
            if not controllers
            else ("memory.limit_in_bytes", "memory.usage_in_bytes")
            if "memory" in controllers.split(",")
            else None
        )
        if names is None:
            continue
        for level in _up(folder):
            with contextlib.suppress(OSError, ValueError):
                limit = (level / names[0]).read_text().strip()
                if limit != "max" and int(limit) < 1 << 60:  # v1 says 'no limit' with a huge number
                    out.append((int(limit), int((level / names[1]).read_text().strip())))
    return out


def worker_memory(engines: Sequence[Any], asr_check: bool = False) -> int:
    """What one worker holds (WORKER_MEMORY per engine of its catalog, and the ASR model)."""
    kinds = {PiperConfig: "piper", KokoroConfig: "kokoro", CoquiConfig: "coqui"}
    total = sum(WORKER_MEMORY[kinds.get(type(e), "coqui")] for e in engines)
    return total + (ASR_MEMORY if asr_check else 0)


def uses_gpu(engines: Sequence[Any]) -> bool:
    """Whether the engine runs on a GPU: its device is cuda, or auto with CUDA there."""
    for e in engines:
        device = getattr(e, "device", "auto")
        if device == "cuda":
            return True
        if device != "auto":
            continue
        if isinstance(e, CoquiConfig):
            try:
                import torch

                if torch.cuda.is_available():
                    return True
            except ImportError:
                pass
            continue
        try:
            import onnxruntime

            if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
                return True
        except ImportError:
            pass
    return False


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How many worker processes, and how many intra-op threads each (None: ONNX Runtime's own
    choice, one per physical core: one worker in this process, as before workers existed)."""

    workers: int
    threads: int | None
    reason: str = ""

    def describe(self) -> str:
        threads = "ONNX Runtime's default threads" if self.threads is None else f"{self.threads} thread(s)"
        return f"{self.workers} worker(s) x {threads}" + (f" ({self.reason})" if self.reason else "")


def plan_workers(
    workers: int | str,
    threads: int | str,
    *,
    cores: int,
    memory: int | None,
    per_worker: int,
    gpu: bool = False,
    one_at_a_time: str = "",
    items: int | None = None,
) -> Plan:
    """Workers and threads for a run. Explicit numbers are kept; threads 'auto' is one per worker
    on a CPU, whatever the number of workers, because Piper's audio differs in its last bits from
    one intra-op thread count to another (Kokoro's does not): with one thread each, 1, 2 or 16
    workers make the same dataset, on any machine; on a GPU the engine's own choice (None).
    `auto` workers: one when the engine runs on a GPU (one process keeps it busy; --in-flight
    batches its work) or the items are made one at a time (`one_at_a_time` says why); else one
    worker per core (on two cores two one-thread processes made 1.03x-1.14x the audio of one
    two-thread process end to end; one thread per worker is the most audio per core), but never more
    workers than MEMORY_SHARE of the free `memory` holds at `per_worker` bytes each, nor more than
    there are `items`. Only when the memory holds fewer workers than there are cores are the
    cores left over divided among them as threads (the machine used, at the price of that
    dataset's last bits depending on it)."""
    if workers != AUTO:
        n = int(workers)
        t = int(threads) if threads != AUTO else (None if gpu else 1)
        if memory is not None and n > 1 and n * per_worker > memory:
            log.warning(
                "%d workers of about %.1f GiB each may not fit in the %.1f GiB free",
                n,
                per_worker / GiB,
                memory / GiB,
            )
        return Plan(n, t, "as asked")
    explicit = None if threads == AUTO else int(threads)
    if gpu or one_at_a_time:
        why = (
            one_at_a_time
            or "the engine runs on a GPU: one process keeps it busy (--in-flight batches its work)"
        )
        return Plan(1, explicit if explicit is not None else None if gpu else 1, why)
    n = max(1, cores // (explicit or 1))
    because = [f"{cores} core(s)"]
    if memory is not None:
        fits = max(1, int(memory * MEMORY_SHARE // per_worker))
        because.append(f"{memory / GiB:.1f} GiB free, about {per_worker / GiB:.1f} GiB per worker")
        if fits < n:
            n = fits
            because.append(f"memory for {fits}")
    limited_by_memory = memory is not None and n < cores // (explicit or 1)
    if items is not None and 0 < items < n:
        n = items
        because.append(f"{items} item(s)")
    spare = max(1, cores // n) if limited_by_memory else 1
    return Plan(n, explicit or spare, ", ".join(because))
