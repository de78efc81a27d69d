"""The shipped Slurm scripts (deploy/slurm/) on a real one-node Slurm: munged, slurmctld and
slurmd from Debian's packages (installed here with apt-get when missing, as root), configured in
the test's temporary folder on ports of their own, a CPU-only node. The generation array runs
with one task cancelled mid-shard and requeued; the merged dataset must hold every conversation
exactly once and validate. The serve job must be found and reached by a client. Every daemon and
job process started here is ended by its process id, also when a test fails.

Without a scheduler: the Apptainer variant's command line (Apptainer itself is in no package
registry these machines reach), and the definition file's smoke check, which is the Docker
image's own and runs here as written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from synth.workflows.sharding import Shard
from tests.helpers import REPO, free_port, write_jsonl

SLURM = REPO / "deploy" / "slurm"
APPTAINER_DEF = REPO / "deploy" / "apptainer" / "synth.def"
SYNTH_BIN = Path(sys.executable).with_name("synth")
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
PROGRAMS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "scancel", "sinfo")
SHARDS = 4

TOPICS = [
    ("the herb garden", "the basil keeps bolting in the heat"),
    ("the night train", "the sleeper cabins were sold out by noon"),
    ("the birthday dinner", "nobody can agree on the restaurant"),
    ("the storm warning", "the ferry may not sail tomorrow"),
    ("the bread recipe", "the dough needs another hour to rise"),
    ("the library move", "half the shelves are still in boxes"),
    ("the bicycle repair", "the chain slipped twice on the hill"),
    ("the choir concert", "the tenors learned their part last night"),
    ("the new flat", "the landlord still has not fixed the boiler"),
    ("the job interview", "they asked me to sketch a bridge on a napkin"),
]


def dialogs() -> list[dict]:
    """Twenty short four-turn dialogs (written for this test)."""
    out = []
    for i in range(20):
        topic, news = TOPICS[i % len(TOPICS)]
        lines = [
            ("A", f"Any news about {topic}?"),
            ("B", f"Only that {news}."),
            ("A", "Then let us sort it out together on Friday." if i % 2 else "I will call you tonight."),
            ("B", "That works for me, thank you." if i % 3 else "Fine, talk to you soon."),
        ]
        out.append(
            {"conversation_id": f"slurm_{i:02d}", "turns": [{"speaker": s, "text": t} for s, t in lines]}
        )
    return out


# --- the cluster -------------------------------------------------------------------------------


def ensure_slurm() -> None:
    """Install Debian's Slurm and MUNGE when they are missing (root only, like mounting a tmpfs)."""
    if all(shutil.which(p) for p in PROGRAMS):
        return
    if os.geteuid() != 0:
        pytest.fail(
            "Slurm is not installed and installing it (apt-get) needs root: run the full suite as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "DPkg::Lock::Timeout=300",
        *PACKAGES,
    ]
    res = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:  # an old or missing package list: update it once and try again
        subprocess.run(
            ["apt-get", "update", "-q", "-o", "DPkg::Lock::Timeout=300"],
            capture_output=True,
            env=env,
            timeout=600,
        )
        res = subprocess.run(install, capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, (
        f"apt-get install {' '.join(PACKAGES)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    missing = [p for p in PROGRAMS if not shutil.which(p)]
    assert not missing, f"installed {PACKAGES} but {missing} are not on PATH"


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll `check` until it returns something true; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Cluster:
    root: Path
    env: dict[str, str]
    daemons: list[subprocess.Popen] = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def run(self, *cmd: str, check: bool = True, env: dict[str, str] | None = None, timeout: float = 120):
        res = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            cwd=self.root,
            timeout=timeout,
        )
        if check:
            assert res.returncode == 0, (
                f"{shlex.join(cmd)}: exit {res.returncode}\n{res.stdout}\n{res.stderr}"
            )
        return res

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` of one job or array task, as fields ({} once Slurm forgot it)."""
        res = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        if res.returncode != 0 or not res.stdout.strip():
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", res.stdout.splitlines()[0]))

    def state(self, job_id: str) -> str:
        return self.job(job_id).get("JobState", "")

    def log(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace")[-4000:] if path.exists() else f"(no {name})"

    def processes(self) -> list[int]:
        """Every process started by this cluster or its jobs: their environment names its config."""
        mark = f"SLURM_CONF={self.env['SLURM_CONF']}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
        return pids


def slurm_conf(root: Path, node: str, cpus: int) -> str:
    return f"""\
ClusterName=synthtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire is also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket={root}/munge/munge.socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# the main scheduling pass (requeued jobs, dependencies) every 2 s instead of 60 s
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
# the node offers more CPUs than the machine has, so that every shard runs at once
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
KillWait=10
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=synth Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    ensure_slurm()
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir(mode=0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o400)
    node = socket.gethostname().split(".")[0]
    (root / "slurm.conf").write_text(slurm_conf(root, node, cpus=max(SHARDS + 1, os.cpu_count() or 1)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SYNTH_"))}
    env.update(
        SLURM_CONF=str(root / "slurm.conf"), PATH=f"{SYNTH_BIN.parent}:{env.get('PATH', '/usr/bin:/bin')}"
    )
    c = Cluster(root, env)
    sock = root / "munge" / "munge.socket"
    commands = [
        ["munged", "-F", "--force", f"--key-file={key}", f"--socket={sock}", f"--pid-file={root}/munge/munged.pid",
         f"--log-file={root}/munge/munged.log", f"--seed-file={root}/munge/munged.seed"],
        ["slurmctld", "-D", "-i"],
        ["slurmd", "-D"],
    ]  # fmt: skip
    try:
        for i, cmd in enumerate(commands):
            c.outputs.append(open(root / f"{cmd[0]}.out", "w"))
            c.daemons.append(
                subprocess.Popen(cmd, stdout=c.outputs[-1], stderr=subprocess.STDOUT, env=env, cwd=root)
            )
            if i == 0:
                wait_for(sock.exists, 30, f"munged's socket ({c.log('munge/munged.log')})")
        wait_for(
            lambda: c.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip() == "idle",
            90,
            f"the node to be idle:\n{c.log('slurmctld.log')}\n{c.log('slurmd.log')}",
        )
        yield c
    finally:
        stop_cluster(c)


def stop_cluster(c: Cluster) -> None:
    with contextlib.suppress(Exception):
        c.run("scancel", "--user", "root", check=False, timeout=30)
        wait_for(lambda: not c.run("squeue", "-h", check=False, timeout=30).stdout.strip(), 30, "jobs to end")
    for proc in reversed(c.daemons):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
    for pid in c.processes():  # slurmstepd and job processes that outlived their daemons
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for output in c.outputs:
        output.close()


# --- sharded generation ---------------------------------------------------------------------


def manifest_ids(root: Path) -> list[str]:
    path = root / "manifest.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["conversation_id"] for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.faults
def test_array_with_a_task_cancelled_and_requeued_merges_every_conversation_once(cluster, tmp_path):
    """submit.sh over 20 dialogs in 4 shards; the biggest shard's task is cancelled once it has a
    conversation and run again with requeue.sh. It resumes (keeps what it made, makes the rest),
    the dependent merge job runs, and the merged dataset has every conversation once and
    validates. Then a finished shard run again makes nothing and a new merge job adds nothing."""
    started = time.monotonic()
    source = write_jsonl(tmp_path / "dialogs.jsonl", dialogs())
    ids = [d["conversation_id"] for d in dialogs()]
    share = {i: [c for c in ids if Shard(i, SHARDS).owns(c)] for i in range(SHARDS)}
    victim = max(share, key=lambda i: len(share[i]))
    assert len(share[victim]) >= 3, share
    out, scratch = tmp_path / "dataset", tmp_path / "dataset.shards"
    settings = {
        "SYNTH_SOURCE": str(source),
        "SYNTH_OUT": str(out),
        "SYNTH_SHARD_COUNT": str(SHARDS),
        "SYNTH_GRES": "none",  # the node has no GPU: override the script's --gres=gpu:1
        "SYNTH_SBATCH_ARGS": "--cpus-per-task=1",
        "SYNTH_BIN": str(SYNTH_BIN),
    }
    submitted = cluster.run(str(SLURM / "submit.sh"), env=settings)
    array = re.search(r"^synth-generate (\d+):", submitted.stdout, re.M).group(1)
    merge = re.search(r"^synth-merge (\d+):", submitted.stdout, re.M).group(1)
    assert (scratch / "jobs").read_text() == f"array={array}\nmerge={merge}\nshards={SHARDS}\n"
    task = f"{array}_{victim}"
    logs = lambda: "\n".join(
        f"--- {p.name}\n{p.read_text()}" for p in sorted((scratch / "logs").glob("*.out"))
    )

    # cancel the task once it has written a conversation of its shard, before it is done
    wait_for(lambda: manifest_ids(scratch / f"shard-{victim}"), 300, f"shard {victim}'s first conversation")
    assert cluster.state(task) == "RUNNING", (cluster.job(task), logs())
    cluster.run("scancel", task)
    wait_for(lambda: cluster.state(task) == "CANCELLED", 60, f"{task} to be cancelled")
    wait_for(
        lambda: not cluster.run("squeue", "-h", "-j", task, check=False).stdout.strip(), 60, f"{task} to stop"
    )
    # the job ended only once synth had: nothing still writes into the shard beside the requeued task
    pattern = f"--out {scratch}/shard-{victim} "
    still = subprocess.run(["pgrep", "-af", "--", pattern], capture_output=True, text=True)
    assert still.returncode == 1, (still, logs())  # 1: no process matched (0: some did; 2+: pgrep failed)
    before = manifest_ids(scratch / f"shard-{victim}")
    assert 0 < len(before) < len(share[victim]), (before, share[victim])
    assert not (scratch / f"shard-{victim}.done").exists()

    requeued = cluster.run(str(SLURM / "requeue.sh"), str(victim), env={"SYNTH_OUT": str(out)})
    assert f"requeued {task}" in requeued.stdout, requeued.stdout
    assert f"synth-merge {merge}: waits for tasks 0..{SHARDS - 1} of {array}" in requeued.stdout

    def merge_finished(merge: str) -> str:
        job = cluster.job(merge)
        assert job.get("Reason") != "DependencyNeverSatisfied", (job, logs())
        return (
            job["JobState"] if job.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT") else ""
        )

    assert wait_for(lambda: merge_finished(merge), 600, "the merge job", interval=1) == "COMPLETED", logs()
    assert cluster.job(merge)["ExitCode"] == "0:0"
    again = cluster.job(task)
    assert (again["JobState"], again["ExitCode"], again["Restarts"]) == ("COMPLETED", "0:0", "1"), again

    # the requeued task resumed its shard: kept what it had, made only the rest
    log = (scratch / "logs" / f"generate-{array}_{victim}.out").read_text()
    assert re.findall(rf"synth slurm: shard {victim}, task {victim} of array {array}, run (\d)", log) == [
        "1",
        "2",
    ], log
    assert f"skipped {len(before)} already in the manifest (resume)" in log, log
    assert f"generated {len(share[victim]) - len(before)} conversation(s)" in log, log
    for i in range(SHARDS):  # each task made exactly its shard
        assert sorted(manifest_ids(scratch / f"shard-{i}")) == sorted(share[i]), i
        assert (scratch / f"shard-{i}.done").exists()

    merged = manifest_ids(out)
    assert len(merged) == len(ids) and sorted(merged) == sorted(ids), merged
    for d in dialogs():
        folder = out / "conversations" / d["conversation_id"]
        assert (folder / "turn_1.txt").read_text().strip() == d["turns"][1]["text"]
    merge_log = (scratch / "logs" / f"merge-{merge}.out").read_text()
    assert f"merged {len(ids)} conversation(s)" in merge_log and "\nOK" in merge_log, merge_log
    checked = cluster.run(str(SYNTH_BIN), "validate", str(out))
    assert checked.stdout.strip().endswith("OK"), checked.stdout
    print(f"array, cancel, requeue and merge: {time.monotonic() - started:.0f} s")

    # a shard run again after everything finished: it makes nothing new, a new merge job adds nothing
    again = cluster.run(str(SLURM / "requeue.sh"), "0", env={"SYNTH_OUT": str(out)})
    second = re.search(
        rf"^synth-merge (\d+): new, after tasks 0..{SHARDS - 1} of {array}$", again.stdout, re.M
    )
    assert second, again.stdout
    merge = second.group(1)
    assert wait_for(lambda: merge_finished(merge), 300, "the second merge job", interval=1) == "COMPLETED", (
        logs()
    )
    assert (
        f"skipped {len(share[0])} already in the manifest (resume)"
        in (scratch / "logs" / f"generate-{array}_0.out").read_text()
    )
    assert f"skipped {len(ids)} already in" in (scratch / "logs" / f"merge-{merge}.out").read_text(), logs()
    assert sorted(manifest_ids(out)) == sorted(ids)


@pytest.mark.slow
def test_afterok_on_the_array_never_fires_once_a_task_was_cancelled(cluster, tmp_path):
    """Why requeue.sh sets the merge job's dependency again: on Slurm 22.05 a task that was
    cancelled and then requeued runs to completion, yet `afterok:<array>` stays failed, since the
    array keeps the cancelled run's exit status. (If Slurm stops doing this, requeue.sh's second
    step is merely redundant.)"""
    submit = lambda *a: cluster.run("sbatch", "--parsable", f"--output={tmp_path}/%j.out", *a).stdout.strip()
    # 15 s: the first task must still run when scancel reaches it, after the polls of squeue that
    # saw it start (with 4 s, a loaded machine could let it complete first)
    array = submit("--array=0-1", "--wrap", "sleep 15")
    after = submit(f"--dependency=afterok:{array}", "--wrap", "true")
    wait_for(lambda: cluster.state(f"{array}_0") == "RUNNING", 60, "the first task to start")
    cluster.run("scancel", f"{array}_0")
    wait_for(lambda: cluster.state(f"{array}_0") == "CANCELLED", 60, "the task to be cancelled")
    cluster.run("scontrol", "requeue", f"{array}_0")
    done = lambda: all(cluster.state(f"{array}_{i}") == "COMPLETED" for i in (0, 1))
    wait_for(done, 120, "both tasks to complete, the requeued one too")
    reason = lambda: cluster.job(after).get("Reason") == "DependencyNeverSatisfied"
    wait_for(reason, 60, "the dependent job's verdict", interval=0.5)
    assert cluster.job(f"{array}_0")["Restarts"] == "1"
    cluster.run("scancel", after)


# --- the serve job --------------------------------------------------------------------------


@pytest.mark.slow
def test_serve_job_records_where_clients_find_it(cluster, tmp_path):
    services, served = tmp_path / "services", tmp_path / "served"
    settings = {"SYNTH_SERVICE_DIR": str(services), "SYNTH_OUT": str(served), "SYNTH_BIN": str(SYNTH_BIN)}
    job = cluster.run(
        "sbatch", "--parsable", "--gres=none", f"--output={tmp_path}/serve-%j.out", str(SLURM / "serve.sbatch"),
        env=settings,
    ).stdout.strip().split(";")[0]  # fmt: skip
    log = lambda: (
        (tmp_path / f"serve-{job}.out").read_text() if (tmp_path / f"serve-{job}.out").exists() else ""
    )
    record = services / f"{job}.json"

    def recorded() -> bool:
        assert cluster.state(job) in ("PENDING", "RUNNING"), (cluster.job(job), log())
        return record.exists()

    wait_for(recorded, 180, "the serve job's address record")
    found = json.loads(record.read_text())
    assert found["job_id"] == job and found["node"] == cluster.job(job)["NodeList"]
    assert found["server"] == f"{found['host']}:{found['port']}" and found["tls"] is False
    assert found["port"] > 0 and found["metrics_port"] > 0
    assert [p.name for p in services.iterdir()] == [record.name]  # no temporary file left

    listed = cluster.run(str(SLURM / "servers.sh"), env=settings).stdout.split()
    assert listed == [found["server"]]
    health = cluster.run(str(SYNTH_BIN), "health", "--server", found["server"])
    assert health.stdout.strip() == f"{found['server']}: SERVING"
    flags = cluster.run(str(SLURM / "servers.sh"), "--flags", env=settings).stdout.split()
    one = write_jsonl(tmp_path / "one.jsonl", dialogs()[:1])
    sent = cluster.run(str(SYNTH_BIN), "batch", *flags, "--dialogs", str(one), "--out", str(tmp_path / "copy"), "--quiet",
                       "--failures", str(tmp_path / "batch_failures.jsonl"))  # fmt: skip
    assert manifest_ids(served) == ["slurm_00"] == manifest_ids(tmp_path / "copy"), sent.stdout

    cluster.run("scancel", job)
    wait_for(
        lambda: not cluster.run("squeue", "-h", "-j", job, check=False).stdout.strip(),
        90,
        "the serve job to end",
    )
    assert not record.exists(), log()
    gone = cluster.run(str(SLURM / "servers.sh"), check=False, env=settings)
    assert gone.returncode == 1 and "no running synth server" in gone.stderr
    assert "synth slurm: clients find this server in" in log()


# --- the Apptainer variant, without Apptainer ---------------------------------------------------


def container_command(env: dict[str, str], *folders: str) -> tuple[list[str], dict[str, str]]:
    """The command lib.sh's synth_command builds, and the APPTAINERENV_ variables it exports."""
    script = f'source {shlex.quote(str(SLURM / "lib.sh"))}; synth_command "$@"; printf "%s\\0" "${{SYNTH[@]}}"; printf "\\0"; env -0'
    res = subprocess.run(
        ["bash", "-c", script, "lib", *folders],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
    )
    assert res.returncode == 0, res.stderr
    command, _, environ = res.stdout.partition("\0\0")
    exported = dict(e.split("=", 1) for e in environ.split("\0") if e.startswith("APPTAINERENV_"))
    return command.split("\0"), exported


def test_container_variant_command_line():
    plain, exported = container_command({"SYNTH_BIN": "/opt/synth/bin/synth"}, "/scratch/run")
    assert plain == ["/opt/synth/bin/synth"] and exported == {}
    env = {"SYNTH_CONTAINER": "/images/synth.sif", "SYNTH_DEVICE": "cuda", "SYNTH_MODEL": "a.onnx,b.onnx"}
    command, exported = container_command(env, "/scratch/run", "/data/in put")
    assert command == [
        "apptainer", "exec", "--nv", "--bind", "/scratch/run", "--bind", "/data/in put", "/images/synth.sif", "synth",
    ]  # fmt: skip
    # the image's ENV (SYNTH_DEVICE=auto ...) would win over the job's: handed in explicitly
    assert exported == {f"APPTAINERENV_{k}": v for k, v in env.items()}
    cpu, _ = container_command({**env, "SYNTH_APPTAINER_FLAGS": "", "SYNTH_APPTAINER": "singularity"})
    assert cpu == ["singularity", "exec", "/images/synth.sif", "synth"]


@pytest.mark.slow
def test_array_task_runs_synth_through_the_container(tmp_path):
    """generate.sbatch as an array task would run it (the variables Slurm sets, no scheduler),
    with SYNTH_CONTAINER set: the command it starts is `apptainer exec --nv --bind ... IMAGE synth
    generate ... --shard auto`. A stand-in `apptainer` on PATH records that command and runs its
    synth part on this machine, so the task also really makes its shard."""
    stand_in = tmp_path / "bin" / "apptainer"
    stand_in.parent.mkdir()
    stand_in.write_text(
        "#!/usr/bin/env bash\n"
        'printf "%s\\n" "$@" > "$RECORD"\n'
        'env | grep "^APPTAINERENV_" | sort > "$RECORD.env"\n'
        'while [[ "$1" != *.sif ]]; do shift; done; shift\n'
        f'[[ "$1" == synth ]] && shift && exec {shlex.quote(str(SYNTH_BIN))} "$@"\n'
        "exit 99\n"
    )
    stand_in.chmod(0o755)
    (tmp_path / "src").mkdir()
    source = write_jsonl(tmp_path / "src" / "dialogs.jsonl", dialogs()[:6])
    env = {
        "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "RECORD": str(tmp_path / "argv"),
        "SYNTH_CONTAINER": "/images/synth.sif",
        "SYNTH_SOURCE": str(source),
        "SYNTH_OUT": str(tmp_path / "dataset"),
        "SLURM_ARRAY_JOB_ID": "77",
        "SLURM_ARRAY_TASK_ID": "3",  # --array=1-3: the last task is shard 2 of 3
        "SLURM_ARRAY_TASK_MIN": "1",
        "SLURM_ARRAY_TASK_MAX": "3",
        "SLURM_ARRAY_TASK_COUNT": "3",
        "SLURM_ARRAY_TASK_STEP": "1",
    }
    res = subprocess.run(
        ["bash", str(SLURM / "generate.sbatch")], capture_output=True, text=True, env=env, timeout=300
    )
    assert res.returncode == 0, res.stdout + res.stderr
    shard = tmp_path / "dataset.shards" / "shard-2"
    assert (tmp_path / "argv").read_text().splitlines() == [
        "exec", "--nv", "--bind", str(tmp_path / "dataset.shards"), "--bind", str(tmp_path / "src"),
        "/images/synth.sif", "synth", "generate", "--dialogs", str(source), "--out", str(shard), "--shard", "auto",
        "--quiet",
    ]  # fmt: skip
    assert (
        "APPTAINERENV_SYNTH_CONTAINER=/images/synth.sif" in (tmp_path / "argv.env").read_text().splitlines()
    )
    made = sorted(manifest_ids(shard))
    assert made == sorted(
        d["conversation_id"] for d in dialogs()[:6] if Shard(2, 3).owns(d["conversation_id"])
    )
    assert (tmp_path / "dataset.shards" / "shard-2.done").exists()


# --- the Apptainer definition: the Docker image's smoke check -----------------------------------


def dockerfile_commands() -> tuple[list[str], list[str]]:
    """The Dockerfile's CMD and its HEALTHCHECK command (exec form, JSON arrays)."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])\s*$", text, re.M).group(1))
    health = json.loads(re.search(r"^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$", text, re.M).group(1))
    return cmd, health


def definition_sections() -> dict[str, str]:
    sections, name = {"header": ""}, "header"
    for line in APPTAINER_DEF.read_text().splitlines(keepends=True):
        m = re.match(r"^%(\w+)", line)
        if m:
            name = m.group(1)
            sections[name] = ""
        else:
            sections[name] += line
    return sections


def test_definition_smoke_check_is_the_dockerfile_one():
    """The image's %test starts the Docker image's CMD and passes its HEALTHCHECK command: the
    same words, so the two smoke checks cannot drift apart."""
    cmd, health = dockerfile_commands()
    sections = definition_sections()
    header = dict(re.findall(r"^(\w+):\s*(\S+)", sections["header"], re.M))
    assert header["Bootstrap"] in ("docker-archive", "docker-daemon", "docker")
    synth_lines = [
        shlex.split(line.split("#")[0])
        for line in sections["test"].splitlines()
        if re.match(r"\s*synth\s", line)
    ]
    started = [words[:-1] for words in synth_lines if words[-1] == "&"]
    assert started == [cmd], synth_lines
    until = re.findall(r"^\s*until (synth [^;]*);", sections["test"], re.M)
    assert [shlex.split(u) for u in until] == [health], sections["test"]


@pytest.mark.slow
def test_definition_smoke_check_runs(tmp_path):
    """%test as written (POSIX sh, the venv's synth on PATH, the image's port and metrics port)
    in a network namespace of its own, so that nothing else here holds port 50051: it passes;
    with a server that cannot start it fails, and says why."""
    if (
        not shutil.which("unshare")
        or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode
    ):
        pytest.fail("cannot make a network namespace here: unshare --net needs root")
    script = tmp_path / "smoke.sh"
    script.write_text(definition_sections()["test"])
    if not shutil.which("ip"):
        pytest.fail("no `ip` (iproute2) to bring up the namespace's loopback: apt-get install iproute2")
    env = {
        "PATH": f"{SYNTH_BIN.parent}:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
    }
    run = lambda extra: subprocess.run(
        ["unshare", "--net", "sh", "-c", f'ip link set lo up && exec sh "{script}"'],
        capture_output=True, text=True, env={**env, **extra}, timeout=240,
    )  # fmt: skip
    ok = run({})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "localhost:50051: SERVING" in ok.stdout
    bad = run({"SYNTH_ENGINE": "no-such-engine"})
    assert bad.returncode != 0 and "synth serve exited" in bad.stderr, bad.stdout + bad.stderr


def test_scripts_name_what_is_missing(tmp_path):
    """Outside Slurm, before anything is submitted or merged: the missing setting, the shard
    that did not finish, the count that is not a number."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    run = lambda script, **env: subprocess.run(
        ["bash", str(SLURM / script)], capture_output=True, text=True, env={**base, **env}, cwd=tmp_path
    )
    res = run("submit.sh", SYNTH_OUT="ds", SYNTH_SHARD_COUNT="2")
    assert res.returncode == 2 and "SYNTH_SOURCE is not set" in res.stderr, res.stderr
    res = run("submit.sh", SYNTH_SOURCE="d.jsonl", SYNTH_OUT="ds", SYNTH_SHARD_COUNT="two")
    assert res.returncode == 2 and "SYNTH_SHARD_COUNT must be a whole number" in res.stderr, res.stderr
    scratch = tmp_path / "ds.shards"
    (scratch / "shard-0").mkdir(parents=True)
    (scratch / "shard-0.done").write_text("job 1\n")
    res = run("merge.sbatch", SYNTH_OUT=str(tmp_path / "ds"), SYNTH_SHARD_COUNT="3")
    assert res.returncode == 2 and f"shard(s) 1 2 of 3 not finished in {scratch}" in res.stderr, res.stderr
    assert not (tmp_path / "ds").exists()
    res = run("serve.sbatch", SLURM_JOB_ID="5")
    assert res.returncode == 2 and "SYNTH_SERVICE_DIR is not set" in res.stderr, res.stderr
