"""Cost at scale (issue 23 item 5): one `synth generate` process (a real child process of the
installed command) over N short conversations that this script writes (10,000 by default: two
turns of a few words each, noise off), watched from outside.

- At N/100, N/10, N/2 and N conversations finished (100, 1k, 5k, 10k): throughput over the
  stretch before (conversations/s, speech s/s, and CPU seconds of the process per conversation,
  which the machine's other jobs disturb less than wall time) and the process's memory (VmHWM,
  the peak so far, and VmRSS from /proc/<pid>/status). Target: flat within 5%, as ratios of the
  last stretch to the one ending at N/10 (throughput at 10k / at 1k) and of the peak at N to the
  peak at N/10 (RSS at 10k / at 1k).
- Resume start-up on the finished dataset: a second `synth generate` on the same source and
  folder, timed until it has skipped everything and exited, against two baselines of the same
  run: the same command with nothing to do (an empty source into a new folder: imports, engine,
  tokenizer) and the resume of a copy of the first N/10 conversations (`--limit N/10`); and how
  much of it is the manifest read and the integrity size check (`DatasetWriter.done_ids()`,
  `DatasetWriter.damaged()`), `recover()` and reading the source, timed in this process on the
  same folders.
- `synth validate` on the N/10 copy and on the whole dataset: seconds per 1k conversations, and
  the ratio (target: 1, validation linear in the size).

    python bench/bench_scale.py                       # 10,000 conversations (hours on 2 shared cores)
    python bench/bench_scale.py --count 300           # a smoke run (a few minutes)
    python bench/bench_scale.py --count 300 --json scale.json --out /tmp/scale

Everything is written into a temporary folder (removed at the end, also when the run is
interrupted) unless --out names one, which must be new or empty and is kept. Timings of file
reads are with a warm page cache (the dataset was just written); a cluster's cold shared
filesystem is slower.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

from _common import machine, say, synth_command, vm_status, work_folder

# Your own short sentences: the i-th dialog takes its parts from lists of coprime lengths, so
# every stretch of the run has the same mix of texts (no numbers that grow with i: "nine
# thousand..." would make later conversations longer).
OPENERS = [
    "Did you water the plants",
    "Is the kettle still warm",
    "Can we leave a bit early",
    "Have you seen my blue scarf",
    "Should I call the plumber",
    "Are the tickets on the table",
    "Will you fetch the mail",
]
WHEN = ["today", "this morning", "before noon", "tonight", "after work"]
REPLIES = [
    "Yes, I did that already.",
    "Not yet, give me a minute.",
    "I think so, let me check.",
    "Sure, that sounds fine.",
    "No, but I will do it soon.",
    "Maybe ask your sister first.",
]
ENDINGS = ["", " Thanks.", " Good."]
GENERATE_FLAGS = ["--quiet", "--noise-scale", "0", "--noise-w", "0"]


def write_dialogs(path: Path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(count):
            a = f"{OPENERS[i % len(OPENERS)]} {WHEN[i % len(WHEN)]}?"
            b = REPLIES[i % len(REPLIES)] + ENDINGS[i % len(ENDINGS)]
            fh.write(json.dumps({"conversation_id": f"scale_{i:06d}", "turns": [a, b]}) + "\n")


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """A child process reaped with wait4, so its exact peak RSS (ru_maxrss) is known at exit."""

    live: list[Child] = []

    def __init__(self, cmd: list[str], log: Path):
        self.cmd, self.log = cmd, log
        self.began = time.perf_counter()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid
        self.returncode: int | None = None
        self.maxrss_kib = 0
        self.wall = 0.0
        Child.live.append(self)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self._reaped(status, usage)
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def _reaped(self, status: int, usage: Any) -> None:
        self.wall = time.perf_counter() - self.began
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode  # Popen must not wait for it again
        self.maxrss_kib = usage.ru_maxrss  # KiB on Linux
        Child.live.remove(self)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def check(self) -> None:
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(self.cmd)}: exit {self.returncode}:\n{self.output()[-3000:]}")

    @classmethod
    def stop_all(cls) -> None:
        for child in list(cls.live):
            if child.proc.poll() is None:
                child.proc.terminate()
                try:
                    child.proc.wait(10)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()


def timed(cmd: list[str], log: Path) -> Child:
    child = Child(cmd, log)
    child.wait()
    child.check()
    return child


def marks_for(count: int) -> list[int]:
    return sorted({max(1, count // 100), max(1, count // 10), max(1, count // 2), count})


def label(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def watch_generate(cmd: list[str], out: Path, count: int, log: Path, say: Any) -> dict[str, Any]:
    """Run the generate process, reading its manifest as it grows; a row per mark."""
    marks = marks_for(count)
    manifest = out / "manifest.jsonl"
    child = Child(cmd, log)
    offset, pending = 0, b""
    done, speech = 0, 0.0
    first: dict[str, float] | None = None
    last_mem: dict[str, int] | None = None
    recent: deque[tuple[float, int]] = deque()  # (time, VmRSS KiB) of the last half second
    last_cpu: float | None = None
    rows: list[dict[str, Any]] = []
    prev: dict[str, float] = {}
    while True:
        exited = child.poll() is not None
        mem, cpu = vm_status(child.pid), proc_cpu(child.pid)
        if mem is not None:
            last_mem = mem
            recent.append((time.perf_counter(), mem["VmRSS"]))
        while recent and recent[0][0] < time.perf_counter() - 0.5:
            recent.popleft()
        if cpu is not None:
            last_cpu = cpu
        try:
            with open(manifest, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            data = b""
        offset += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        now = time.perf_counter()
        for line in lines:
            if not line.strip():
                continue
            done += 1
            speech += float(json.loads(line).get("speech_duration_sec") or 0.0)
            if first is None:
                first = {"t": now, "done": done, "speech": speech, "cpu": last_cpu or 0.0}
                prev = dict(first)
                say(f"first conversation after {now - child.began:.1f} s")
            while marks and done >= marks[0]:
                mark = marks.pop(0)
                # the last sample of the live process (at most 0.1 s old); its exit peak is apart
                hwm = last_mem["VmHWM"] if last_mem else child.maxrss_kib
                row = {
                    "mark": mark,
                    "label": label(mark),
                    "elapsed_sec": round(now - child.began, 2),
                    "stretch_conversations": done - prev["done"],
                    "stretch_sec": round(now - prev["t"], 3),
                    "stretch_speech_sec": round(speech - prev["speech"], 2),
                    "stretch_cpu_sec": round((last_cpu or 0.0) - prev["cpu"], 2),
                    "vmhwm_mib": round(hwm / 1024, 1),
                    # the largest of the last half second: the sample after the last conversation
                    # may already see the process letting go of its engine on the way out
                    "vmrss_mib": round(max((v for _, v in recent), default=0) / 1024, 1),
                    "load_avg": round(os.getloadavg()[0], 2),
                }
                n, dt = row["stretch_conversations"], row["stretch_sec"]
                row["conv_per_sec"] = round(n / dt, 3) if dt > 0 else None
                row["speech_per_sec"] = round(row["stretch_speech_sec"] / dt, 2) if dt > 0 else None
                row["cpu_sec_per_conv"] = round(row["stretch_cpu_sec"] / n, 4) if n else None
                rows.append(row)
                prev = {"t": now, "done": done, "speech": speech, "cpu": last_cpu or 0.0}
                say(
                    f"{row['label']:>5}: {row['conv_per_sec']} conv/s, {row['speech_per_sec']} speech s/s, "
                    f"{row['cpu_sec_per_conv']} cpu s/conv, VmHWM {row['vmhwm_mib']} MiB, "
                    f"VmRSS {row['vmrss_mib']} MiB, load {row['load_avg']}"
                )
        if exited:
            break
        time.sleep(0.1)
    child.check()
    if done != count:
        raise RuntimeError(
            f"the manifest lists {done} conversations, {count} were asked for:\n{child.output()}"
        )
    return {
        "rows": rows,
        "startup_sec": round(first["t"] - child.began, 2) if first else None,
        "wall_sec": round(child.wall, 2),
        "speech_sec": round(speech, 1),
        "peak_rss_mib_at_exit": round(child.maxrss_kib / 1024, 1),
    }


def copy_first(src: Path, dst: Path, n: int) -> None:
    """A dataset of the first n conversations of `src` (their folders, manifest lines and the
    recorded options): what a run that stopped at n would have left, integrity records included."""
    lines = (src / "manifest.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)[:n]
    (dst / "conversations").mkdir(parents=True)
    for line in lines:
        cid = json.loads(line)["conversation_id"]
        shutil.copytree(src / "conversations" / cid, dst / "conversations" / cid)
    (dst / "manifest.jsonl").write_text("".join(lines), encoding="utf-8")
    shutil.copy2(src / "dataset.json", dst / "dataset.json")


def in_process(root: Path, source: Path, limit: int, rounds: int) -> dict[str, float]:
    """Best-of-rounds seconds of what a resume does before it skips: the manifest read, the
    integrity size check, recover(), and reading the source; and `validate_dataset` (what `synth
    validate` runs, without the interpreter's start-up)."""
    from synth.dataset.writer import DatasetWriter
    from synth.dialogs.sources import open_dialogs
    from synth.workflows.validate import validate_dataset

    best = {"manifest_read": 1e9, "size_check": 1e9, "recover": 1e9, "read_source": 1e9, "validate": 1e9}
    for _ in range(rounds):
        writer = DatasetWriter(root)
        t0 = time.perf_counter()
        ids = writer.done_ids()  # a fresh writer reads the whole manifest
        t1 = time.perf_counter()
        bad = writer.damaged()  # the manifest is read: this is the size check
        t2 = time.perf_counter()
        if bad:
            raise RuntimeError(f"{root}: damaged conversations: {list(bad)[:3]}")
        fresh = DatasetWriter(root)
        t3 = time.perf_counter()
        fresh.recover()
        t4 = time.perf_counter()
        read = sum(1 for _ in open_dialogs(str(source), limit=limit))
        t5 = time.perf_counter()
        report = validate_dataset(root)
        t6 = time.perf_counter()
        if not report.ok or report.conversations != limit:
            raise RuntimeError(f"{root}: validate: {report.format(5)}")
        if len(ids) != limit or read != limit:
            raise RuntimeError(
                f"{root}: {len(ids)} in the manifest, {read} read from the source, {limit} expected"
            )
        for key, sec in (
            ("manifest_read", t1 - t0),
            ("size_check", t2 - t1),
            ("recover", t4 - t3),
            ("read_source", t5 - t4),
            ("validate", t6 - t5),
        ):
            best[key] = min(best[key], sec)
    return {k: round(v, 4) for k, v in best.items()}


def resume_work(sec: dict[str, float]) -> float:
    return sec["manifest_read"] + sec["size_check"] + sec["recover"] + sec["read_source"]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def run(args: argparse.Namespace, work: Path, say: Any) -> dict[str, Any]:
    synth = synth_command()
    count, small = args.count, max(1, args.count // 10)
    source, empty = work / "dialogs.jsonl", work / "empty.jsonl"
    write_dialogs(source, count)
    empty.write_text("", encoding="utf-8")
    full, part = work / "dataset", work / f"dataset_first_{small}"
    logs = work / "logs"
    logs.mkdir()

    def generate(src: Path, out: Path, *extra: str) -> list[str]:
        return [synth, "generate", "--dialogs", str(src), "--out", str(out), *GENERATE_FLAGS, *extra]

    say(f"generating {count} conversations into {full}")
    scale = watch_generate(generate(source, full), full, count, logs / "generate.log", say)
    copy_first(full, part, small)

    say("resume start-up, rounds of: nothing to do / resume of the first N/10 / resume of all N")
    resume: dict[str, list[float]] = {"nothing_to_do": [], "resume_small": [], "resume_full": []}
    resume_rss: dict[str, int] = {}
    for r in range(args.rounds):
        runs = (
            ("nothing_to_do", generate(empty, work / f"empty_{r}")),
            ("resume_small", generate(source, part, "--limit", str(small))),
            ("resume_full", generate(source, full)),
        )
        for name, cmd in runs:
            child = timed(cmd, logs / f"{name}_{r}.log")
            want = {"nothing_to_do": None, "resume_small": small, "resume_full": count}[name]
            if want is not None and f"skipped {want} already" not in child.output():
                raise RuntimeError(f"{name}: expected 'skipped {want} already':\n{child.output()}")
            resume[name].append(round(child.wall, 3))
            resume_rss[name] = max(resume_rss.get(name, 0), child.maxrss_kib)
            say(f"round {r} {name}: {child.wall:.2f} s")
    breakdown = {
        "full": in_process(full, source, count, args.rounds),
        "small": in_process(part, source, small, args.rounds),
    }

    say("synth validate: nothing / first N/10 / all N")
    validate: dict[str, list[float]] = {"empty": [], "small": [], "full": []}
    for r in range(args.rounds):
        for name, folder in (("empty", work / "empty_0"), ("small", part), ("full", full)):
            child = timed([synth, "validate", str(folder)], logs / f"validate_{name}_{r}.log")
            validate[name].append(round(child.wall, 3))
            say(f"round {r} validate {name}: {child.wall:.2f} s")

    rows = scale["rows"]
    at = {row["mark"]: row for row in rows}
    ref, last = at.get(small), at.get(count)
    best = {k: min(v) for k, v in resume.items()}
    vbest = {k: min(v) for k, v in validate.items()}
    per_1k_small = vbest["small"] / (small / 1000)
    per_1k_full = vbest["full"] / (count / 1000)
    resume_full = best["resume_full"]
    bd = breakdown["full"]
    return {
        "machine": machine(),
        "count": count,
        "marks": [row["mark"] for row in rows],
        "generate": scale,
        "targets": {
            "throughput_conv_ratio": ratio(last and last["conv_per_sec"], ref and ref["conv_per_sec"]),
            "throughput_speech_ratio": ratio(last and last["speech_per_sec"], ref and ref["speech_per_sec"]),
            "cpu_per_conv_ratio": ratio(last and last["cpu_sec_per_conv"], ref and ref["cpu_sec_per_conv"]),
            "vmhwm_ratio": ratio(last and last["vmhwm_mib"], ref and ref["vmhwm_mib"]),
            "vmrss_ratio": ratio(last and last["vmrss_mib"], ref and ref["vmrss_mib"]),
        },
        "resume": {
            "rounds_sec": resume,
            "best_sec": best,
            "peak_rss_mib": {k: round(v / 1024, 1) for k, v in resume_rss.items()},
            "over_nothing_to_do_sec": round(resume_full - best["nothing_to_do"], 3),
            # what a resume does per finished conversation (in this process), at N vs at N/10
            "per_conversation_ratio": ratio(resume_work(bd) / count, resume_work(breakdown["small"]) / small),
            "in_process_sec": breakdown,
            "share_of_resume": {
                "manifest_read": round(bd["manifest_read"] / resume_full, 4),
                "size_check": round(bd["size_check"] / resume_full, 4),
                "recover": round(bd["recover"] / resume_full, 4),
                "read_source": round(bd["read_source"] / resume_full, 4),
            },
        },
        "validate": {
            "rounds_sec": validate,
            "best_sec": vbest,
            "sec_per_1k_small": round(per_1k_small, 3),
            "sec_per_1k_full": round(per_1k_full, 3),
            "per_1k_ratio": ratio(per_1k_full, per_1k_small),
            # validate_dataset in this process: no interpreter start-up in the figures
            "in_process_sec_per_1k_small": round(breakdown["small"]["validate"] / (small / 1000), 3),
            "in_process_sec_per_1k_full": round(bd["validate"] / (count / 1000), 3),
            "in_process_per_1k_ratio": ratio(bd["validate"] / count, breakdown["small"]["validate"] / small),
        },
        "load_avg_at_end": round(os.getloadavg()[0], 2),
    }


def table(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_gib']} GiB, "
        f"Python {m['python']}; load average {m['load_avg_at_start']} at start, {result['load_avg_at_end']} at end",
        f"generate: {result['count']} conversations, {result['generate']['speech_sec']} s of speech, "
        f"{result['generate']['wall_sec']} s wall, first conversation after {result['generate']['startup_sec']} s",
        "",
        f"{'done':>6} {'stretch':>8} {'conv/s':>8} {'speech s/s':>10} {'cpu s/conv':>10} "
        f"{'VmHWM MiB':>10} {'VmRSS MiB':>10} {'load':>5}",
    ]
    for r in result["generate"]["rows"]:
        r = {k: "-" if v is None else v for k, v in r.items()}
        out.append(
            f"{r['label']:>6} {r['stretch_conversations']:>8} {r['conv_per_sec']:>8} {r['speech_per_sec']:>10} "
            f"{r['cpu_sec_per_conv']:>10} {r['vmhwm_mib']:>10} {r['vmrss_mib']:>10} {r['load_avg']:>5}"
        )
    out.append(
        f"{'exit':>6} {'':>8} {'':>8} {'':>10} {'':>10} {result['generate']['peak_rss_mib_at_exit']:>10}"
    )
    t = result["targets"]
    small, count = label(max(1, result["count"] // 10)), label(result["count"])
    out += [
        "",
        f"target flat within 5% ({count} / {small}): conv/s {t['throughput_conv_ratio']}, speech s/s "
        f"{t['throughput_speech_ratio']}, cpu s/conv {t['cpu_per_conv_ratio']}, VmHWM {t['vmhwm_ratio']}, "
        f"VmRSS {t['vmrss_ratio']}",
    ]
    r = result["resume"]
    b, ip = r["best_sec"], r["in_process_sec"]
    out += [
        "",
        f"resume start-up (best of {len(r['rounds_sec']['resume_full'])}): nothing to do {b['nothing_to_do']} s, "
        f"resume of {small} {b['resume_small']} s, resume of {count} {b['resume_full']} s "
        f"({r['over_nothing_to_do_sec']} s over nothing to do)",
        f"  in this process on {count}: manifest read {ip['full']['manifest_read']} s, integrity size check "
        f"{ip['full']['size_check']} s, recover() {ip['full']['recover']} s, reading the source "
        f"{ip['full']['read_source']} s; per conversation, {count} / {small}: {r['per_conversation_ratio']}",
        f"  on {small}: manifest read {ip['small']['manifest_read']} s, size check {ip['small']['size_check']} s, "
        f"recover() {ip['small']['recover']} s, source {ip['small']['read_source']} s",
        f"  shares of the {count} resume: manifest {r['share_of_resume']['manifest_read']:.1%}, size check "
        f"{r['share_of_resume']['size_check']:.1%}, recover {r['share_of_resume']['recover']:.1%}, source "
        f"{r['share_of_resume']['read_source']:.1%}",
    ]
    v = result["validate"]
    out += [
        "",
        f"validate: empty {v['best_sec']['empty']} s, {small} {v['best_sec']['small']} s, {count} "
        f"{v['best_sec']['full']} s; per 1k: {v['sec_per_1k_small']} s vs {v['sec_per_1k_full']} s, ratio "
        f"{v['per_1k_ratio']}",
        f"  validate_dataset in this process (no start-up), per 1k: {v['in_process_sec_per_1k_small']} s "
        f"on {small} vs {v['in_process_sec_per_1k_full']} s on {count}, ratio {v['in_process_per_1k_ratio']}",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=10_000, help="conversations (default 10000)")
    ap.add_argument("--out", type=Path, help="work folder, kept (default: a temporary one, removed)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the resume and validate timings")
    ap.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the results as JSON to PATH (- or none: stdout)",
    )
    args = ap.parse_args()
    if args.count < 10:
        ap.error("--count must be at least 10")

    with work_folder(ap, args.out, "synth-scale-") as work:
        try:
            result = run(args, work, say)
        finally:
            Child.stop_all()
    if args.json == "-":
        print(json.dumps(result, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(result))


if __name__ == "__main__":
    main()
