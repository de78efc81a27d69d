"""A stable partition of a source by conversation id, so that N machines each make their share
of one source (`synth generate --shard I/N`) and a rerun of a shard resumes exactly that share.
The hash is SHA-256 of the id: independent of the source's order, the machine and Python's
per-process string hashing.

`--shard auto` reads I and N from the scheduler that started the process, so one command line
serves a Slurm job array and a Kubernetes Indexed Job alike (see `Shard.from_environment`)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

AUTO = "auto"
# N when the scheduler does not say it: Kubernetes never does; with Slurm it makes the array task
# id the shard index itself, so that some shards of N can be run alone (sbatch --array=2,5).
COUNT_VARIABLE = "SYNTH_SHARD_COUNT"


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (from 0): the part of a source this machine makes."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                "shard",
                f"shards are numbered from 0: with {self.count} shard(s) the index is 0 to {self.count - 1}"
                if self.count >= 1
                else "the count must be at least 1",
                f"{self.index}/{self.count}",
            )

    @classmethod
    def parse(cls, spec: str, environ: Mapping[str, str] | None = None) -> Shard:
        """'I/N', e.g. '0/4' .. '3/4', or 'auto': from the scheduler's environment."""
        if spec.strip().lower() == AUTO:
            return cls.from_environment(os.environ if environ is None else environ)
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not m:
            raise ConfigError("shard", "expected I/N, e.g. 0/4, or auto", spec)
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Shard:
        """The shard of this Slurm array task or Kubernetes Indexed Job pod, 0-based.

        Slurm: I = (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP and
        N = SLURM_ARRAY_TASK_COUNT, so `--array=1-4` and `--array=0-6:2` give 0/4 .. 3/4 too;
        with SYNTH_SHARD_COUNT set, I = SLURM_ARRAY_TASK_ID and N = SYNTH_SHARD_COUNT.
        Kubernetes: I = JOB_COMPLETION_INDEX and N = SYNTH_SHARD_COUNT, which the Job sets to
        its `completions` (Kubernetes does not pass that to the pod)."""
        if environ.get("SLURM_ARRAY_TASK_ID", "").strip():
            return _from_slurm(environ)
        if environ.get("JOB_COMPLETION_INDEX", "").strip():
            index = _integer(environ, "JOB_COMPLETION_INDEX")
            if not environ.get(COUNT_VARIABLE, "").strip():
                raise ConfigError(
                    "shard",
                    f"a Kubernetes Indexed Job (JOB_COMPLETION_INDEX={index}) does not tell its pods "
                    f"how many completions it has: set {COUNT_VARIABLE} to the Job's completions",
                    AUTO,
                )
            return cls._checked(index, _integer(environ, COUNT_VARIABLE), "JOB_COMPLETION_INDEX")
        raise ConfigError(
            "shard",
            "no scheduler in the environment: auto needs SLURM_ARRAY_TASK_ID (a Slurm job array, "
            f"sbatch --array=0-3) or JOB_COMPLETION_INDEX with {COUNT_VARIABLE} (a Kubernetes "
            "Indexed Job); elsewhere give the shard as I/N, e.g. 0/4",
            AUTO,
        )

    @classmethod
    def _checked(cls, index: int, count: int, index_name: str) -> Shard:
        if count < 1 or not 0 <= index < count:
            raise ConfigError(
                "shard",
                f"{index_name}={index} is not a shard index of {count} shard(s) (0..{count - 1})",
                AUTO,
            )
        return cls(index, count)

    def owns(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def spec(self) -> str:
        return f"{self.index}/{self.count}"


def _from_slurm(environ: Mapping[str, str]) -> Shard:
    task = _integer(environ, "SLURM_ARRAY_TASK_ID")
    if environ.get(COUNT_VARIABLE, "").strip():
        return Shard._checked(task, _integer(environ, COUNT_VARIABLE), "SLURM_ARRAY_TASK_ID")
    for name in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX"):
        if not environ.get(name, "").strip():
            raise ConfigError(
                "shard",
                f"SLURM_ARRAY_TASK_ID is set but {name} is not (Slurm sets both in array tasks)",
                AUTO,
            )
    count = _integer(environ, "SLURM_ARRAY_TASK_COUNT")
    low, high = _integer(environ, "SLURM_ARRAY_TASK_MIN"), _integer(environ, "SLURM_ARRAY_TASK_MAX")
    step = _integer(environ, "SLURM_ARRAY_TASK_STEP") if environ.get("SLURM_ARRAY_TASK_STEP") else 1
    # Only an evenly spaced array maps its task ids onto 0..N-1; a list such as --array=1,2,7 has
    # no such map (its COUNT is 3 but its ids are not three steps), so N must be stated.
    if count < 1 or step < 1 or high - low != (count - 1) * step:
        raise ConfigError(
            "shard",
            f"the job array's task ids ({low}-{high}, step {step}, {count} task(s)) are not one "
            f"evenly spaced range, so they do not number the shards: submit --array=0-{count - 1} "
            f"or set {COUNT_VARIABLE} (then the task id is the shard index)",
            AUTO,
        )
    offset = task - low
    if offset < 0 or offset % step or task > high:
        raise ConfigError(
            "shard", f"SLURM_ARRAY_TASK_ID={task} is not a task of the array {low}-{high}:{step}", AUTO
        )
    return Shard(offset // step, count)


def _integer(environ: Mapping[str, str], name: str) -> int:
    value = environ.get(name, "").strip()
    if not re.fullmatch(r"\d+", value):
        raise ConfigError("shard", f"{name}={value!r} is not a whole number", AUTO)
    return int(value)
