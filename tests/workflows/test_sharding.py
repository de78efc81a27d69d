import json
import os
import subprocess

import pytest

from synth.errors import ConfigError
from synth.workflows.sharding import Shard
from tests.helpers import REPO, SYNTH_COMMAND, write_jsonl


def test_shards_partition_ids_stably():
    ids = [f"conv_{i}" for i in range(2000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(cid)] for cid in ids]
    assert all(len(o) == 1 for o in owners)  # every id in exactly one shard
    sizes = [sum(o == [i] for o in owners) for i in range(4)]
    assert min(sizes) > 400  # spread evenly
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4) and Shard(2, 4).spec() == "2/4"
    assert [Shard(0, 4).owns(c) for c in ids] == [Shard.parse("0/4").owns(c) for c in ids]


@pytest.mark.parametrize("spec", ["4/4", "1", "a/b", "-1/3", "0/0"])
def test_bad_shard_specs(spec):
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(spec)


def slurm(task: int, count: int, low: int = 0, step: int = 1, **extra: str) -> dict[str, str]:
    """The variables Slurm sets in an array task (checked on Slurm 22.05: --array=1,3,7 gives
    MIN=1 MAX=7 COUNT=3 STEP=1; --array=0-6:2 gives STEP=2)."""
    env = {
        "SLURM_ARRAY_JOB_ID": "812",
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_ARRAY_TASK_MIN": str(low),
        "SLURM_ARRAY_TASK_MAX": str(low + (count - 1) * step),
        "SLURM_ARRAY_TASK_STEP": str(step),
    }
    return {**env, **extra}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (slurm(0, 4), Shard(0, 4)),
        (slurm(3, 4), Shard(3, 4)),
        (slurm(1, 4, low=1), Shard(0, 4)),  # --array=1-4: ids start at 1
        (slurm(4, 4, low=1), Shard(3, 4)),
        (slurm(6, 4, step=2), Shard(3, 4)),  # --array=0-6:2
        (slurm(17, 30, low=10), Shard(7, 30)),
        # SYNTH_SHARD_COUNT: the task id is the shard index (shard 2 of 4 run alone: --array=2)
        ({**slurm(2, 1, low=2), "SYNTH_SHARD_COUNT": "4"}, Shard(2, 4)),
        ({"JOB_COMPLETION_INDEX": "0", "SYNTH_SHARD_COUNT": "4"}, Shard(0, 4)),
        ({"JOB_COMPLETION_INDEX": "3", "SYNTH_SHARD_COUNT": " 4 "}, Shard(3, 4)),
        # Slurm wins over a Kubernetes index (a Slurm job started from a pod)
        ({**slurm(1, 2), "JOB_COMPLETION_INDEX": "0", "SYNTH_SHARD_COUNT": "2"}, Shard(1, 2)),
    ],
)
def test_shard_auto_from_the_scheduler(env, expected):
    assert Shard.from_environment(env) == expected
    assert Shard.parse("auto", env) == expected
    assert Shard.parse(" AUTO ", env) == expected


def test_shard_auto_tasks_cover_every_shard_once():
    """Every task of an array that does not start at 0 gets its own shard, all N of them."""
    for low, step, count in ((0, 1, 4), (1, 1, 4), (5, 3, 7)):
        shards = [Shard.from_environment(slurm(low + k * step, count, low, step)) for k in range(count)]
        assert sorted(s.index for s in shards) == list(range(count))
        assert {s.count for s in shards} == {count}


def test_shard_auto_reads_the_process_environment(monkeypatch):
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX", "SYNTH_SHARD_COUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    monkeypatch.setenv("SYNTH_SHARD_COUNT", "3")
    assert Shard.parse("auto") == Shard(1, 3)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, r"shard 'auto': no scheduler .*SLURM_ARRAY_TASK_ID.*JOB_COMPLETION_INDEX.*I/N"),
        ({"SLURM_JOB_ID": "5"}, "no scheduler"),  # a Slurm job that is not an array
        ({"JOB_COMPLETION_INDEX": "2"}, "set SYNTH_SHARD_COUNT to the Job's completions"),
        ({"JOB_COMPLETION_INDEX": "4", "SYNTH_SHARD_COUNT": "4"}, r"JOB_COMPLETION_INDEX=4 .* \(0..3\)"),
        ({"JOB_COMPLETION_INDEX": "x", "SYNTH_SHARD_COUNT": "4"}, "JOB_COMPLETION_INDEX='x' is not a whole"),
        ({"JOB_COMPLETION_INDEX": "1", "SYNTH_SHARD_COUNT": "0"}, "not a shard index of 0"),
        # --array=1,3,7: three tasks whose ids are not one evenly spaced range
        ({**slurm(3, 3, low=1), "SLURM_ARRAY_TASK_MAX": "7"}, "not one evenly spaced range"),
        ({**slurm(3, 4), "SLURM_ARRAY_TASK_COUNT": ""}, "SLURM_ARRAY_TASK_COUNT is not"),
        (slurm(9, 4), "SLURM_ARRAY_TASK_ID=9 is not a task of the array 0-3"),
        (slurm(1, 4, step=2), "SLURM_ARRAY_TASK_ID=1 is not a task"),
        ({**slurm(4, 1, low=4), "SYNTH_SHARD_COUNT": "4"}, r"SLURM_ARRAY_TASK_ID=4 .* \(0..3\)"),
    ],
)
def test_shard_auto_errors_name_the_option_and_the_variable(env, says):
    with pytest.raises(ConfigError, match=says) as info:
        Shard.from_environment(env)
    assert info.value.option == "shard"
    assert info.value.render("--shard").startswith("--shard 'auto': ")


def test_shard_auto_through_the_command_line(tmp_path):
    """`synth generate --shard auto` with no scheduler: exit 1, the message naming --shard and
    nothing written; under a Kubernetes index it makes exactly that shard's share."""

    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [{"conversation_id": f"k{i}", "turns": [{"speaker": "A", "text": "Shall we go?"}]} for i in range(6)],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    env.pop("SYNTH_SHARD_COUNT", None)
    cmd = [*SYNTH_COMMAND, "generate", "--dialogs", str(dialogs), "--quiet"]
    bad = subprocess.run(
        [*cmd, "--out", str(tmp_path / "x"), "--shard", "auto"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert bad.returncode == 2 and "argument --shard: no scheduler" in bad.stderr, bad.stderr
    assert not (tmp_path / "x").exists()
    env.update(JOB_COMPLETION_INDEX="1", SYNTH_SHARD_COUNT="3")
    ok = subprocess.run(
        [*cmd, "--out", str(tmp_path / "k"), "--shard", "auto"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert ok.returncode == 0, ok.stderr
    made = sorted(
        json.loads(x)["conversation_id"] for x in (tmp_path / "k" / "manifest.jsonl").read_text().splitlines()
    )
    assert made == sorted(f"k{i}" for i in range(6) if Shard(1, 3).owns(f"k{i}"))


def test_kubernetes_indexed_job_runs_shard_auto():
    """deploy/generate-job.yaml: `--shard=auto` with SYNTH_SHARD_COUNT equal to the Job's
    completions, so its pods (JOB_COMPLETION_INDEX 0..completions-1) make every shard once."""
    import yaml

    job = yaml.safe_load((REPO / "deploy" / "generate-job.yaml").read_text())
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    assert "--shard=auto" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SYNTH_SHARD_COUNT"] == str(spec["completions"])
    shards = [
        Shard.parse("auto", {**env, "JOB_COMPLETION_INDEX": str(i)}) for i in range(spec["completions"])
    ]
    assert shards == [Shard(i, spec["completions"]) for i in range(spec["completions"])]
