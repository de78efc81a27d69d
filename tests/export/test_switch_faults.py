"""Exports killed with SIGKILL at random moments, from outside, with real processes and files:
after every kill the output is the previous export exactly, or the new one complete (read back
by the reader of its trainer: lhotse, datasets, moshi-finetune's layout, LLaMA-Omni's JSON),
never a manifest pointing at a half-written WAV or a torn JSON; the next run cleans up after the
killed one, and nothing stays beside the output."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf

RUN = """
import sys
from pathlib import Path
from synth.cli import main
sys.exit(main(["export", *sys.argv[1:]]))
"""


def _replicate(src: Path, dst: Path, copies: int) -> Path:
    """A bigger real dataset: each conversation of `src` `copies` times under new ids (folder,
    metadata and samples say the new id), so an export runs long enough to be killed mid-way."""
    (dst / "conversations").mkdir(parents=True)
    lines = []
    for line in (src / "manifest.jsonl").read_text().splitlines():
        entry = json.loads(line)
        for k in range(copies):
            cid = f"{entry['conversation_id']}_{k}"
            folder = dst / "conversations" / cid
            shutil.copytree(src / "conversations" / entry["conversation_id"], folder)
            meta = json.loads((folder / "metadata.json").read_text())
            meta["conversation_id"] = cid
            (folder / "metadata.json").write_text(json.dumps(meta, indent=2))
            samples = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
            (folder / "samples.jsonl").write_text(
                "".join(json.dumps({**s, "conversation_id": cid}) + "\n" for s in samples)
            )
            lines.append(json.dumps({**entry, "conversation_id": cid, "path": f"conversations/{cid}"}) + "\n")
    (dst / "manifest.jsonl").write_text("".join(lines))
    (dst / "half.jsonl").write_text("".join(lines[: len(lines) // 2]))
    return dst


@pytest.fixture(scope="module")
def big(tmp_path_factory, example_dataset, duplex_dataset) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("big")
    return {
        "turns": _replicate(example_dataset, tmp / "turns", 25),  # 100 conversations, 450 turns
        "duplex": _replicate(duplex_dataset, tmp / "duplex", 20),  # 40 with conversation.wav
    }


def _fingerprint(path: Path) -> dict[str, str]:
    """Every file of an export and its hash (hidden names aside: no reader of these exports
    opens them; the exports before this fix kept their temporary manifests there)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _manifest_ids(dataset: Path, manifest: str) -> list[str]:
    return [json.loads(x)["conversation_id"] for x in (dataset / manifest).read_text().splitlines()]


def _turn_count(dataset: Path, ids: list[str]) -> int:
    return sum(
        json.loads((dataset / "conversations" / c / "metadata.json").read_text())["total_turns"] for c in ids
    )


# -- each export's complete-state check, by its trainer's reader --------------------------------
def _llama_omni(out: Path, dataset: Path, ids: list[str]) -> None:
    items = json.loads(out.read_text())
    assert len(items) == _turn_count(dataset, ids)
    for item in items:
        assert sf.info(item["speech"]).frames > 0


def _lhotse(out: Path, dataset: Path, ids: list[str]) -> None:
    import lhotse

    cuts = lhotse.CutSet.from_file(out / "cuts.jsonl").to_eager()
    recordings = lhotse.load_manifest(out / "recordings.jsonl")
    supervisions = lhotse.load_manifest(out / "supervisions.jsonl")
    assert len(supervisions) == _turn_count(dataset, ids) == sum(len(c.supervisions) for c in cuts)
    assert len(recordings) == len(cuts)
    lhotse.validate(cuts, read_data=True)  # every WAV it names whole


def _moshi(out: Path, dataset: Path, ids: list[str]) -> None:
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert [Path(x["path"]).stem for x in lines] == ids
    for x in lines:
        info = sf.info(str(out / x["path"]))
        assert info.samplerate == 24000 and info.channels == 2 and info.frames == round(x["duration"] * 24000)
        alignments = json.loads((out / x["path"]).with_suffix(".json").read_text())["alignments"]
        assert alignments and all(len(a) == 3 for a in alignments)


def _hf(out: Path, dataset: Path, ids: list[str]) -> None:
    import datasets

    ds = datasets.load_from_disk(str(out))
    assert len(ds) == _turn_count(dataset, ids)
    for row in ds.select(range(0, len(ds), 37)):
        audio, rate = sf.read(__import__("io").BytesIO(row["audio"]["bytes"]))
        assert rate == 16000 and len(audio) > 0


def _shar(out: Path, dataset: Path, ids: list[str]) -> None:
    import lhotse

    cuts = list(lhotse.CutSet.from_shar(in_dir=out / "shards"))
    assert len(cuts) == _turn_count(dataset, ids)
    assert list(dict.fromkeys(c.custom["conversation_id"] for c in cuts)) == ids
    for cut in cuts[::17]:
        assert cut.load_audio().shape[1] == cut.recording.num_samples > 0


CASES: dict[str, tuple[str, str, list[str], Callable[[Path, Path, list[str]], None]]] = {
    # name: (dataset, output name, export flags, complete-state check)
    "llama-omni": ("turns", "train.json", ["--to", "llama-omni"], _llama_omni),
    "lhotse": ("turns", "lhotse", ["--to", "lhotse"], _lhotse),
    "lhotse-conversations": ("turns", "lhotse", ["--to", "lhotse", "--conversations"], _lhotse),
    "moshi": ("duplex", "moshi", ["--to", "moshi"], _moshi),
    "hf": ("turns", "hf", ["--to", "hf", "--undecoded"], _hf),
    "lhotse-shar": ("turns", "shar", ["--to", "lhotse-shar", "--cuts-per-shard", "40"], _shar),
}


def _run(dataset: Path, out: Path, flags: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(dataset), str(out), *flags, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _finish(p: subprocess.Popen) -> None:
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err.decode()


def _stats(top: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file and folder under `top`."""
    out = {}
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            try:
                st = os.lstat(os.path.join(folder, name))
            except FileNotFoundError:
                continue
            out[os.path.join(folder, name)] = (st.st_size, st.st_mtime_ns)
    return out


def _beside(stats: dict[str, tuple[int, int]], out: Path) -> dict[str, tuple[int, int]]:
    """The stats of what is not the output itself (staging folders, temporary files)."""
    return {k: v for k, v in stats.items() if k != str(out) and not k.startswith(f"{out}{os.sep}")}


def _until_writing(p: subprocess.Popen, work: Path, before: dict[str, tuple[int, int]]) -> float:
    """Wait until the export writes anything in its folder (beside the output, or into the
    output in place, as the exports before this fix did); returns when that was."""
    while p.poll() is None and _stats(work) == before:
        time.sleep(0.003)
    return time.monotonic()


@pytest.mark.faults
@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_an_export_killed_at_random_moments_leaves_the_old_or_the_new(tmp_path, big, case):
    """The old export (of half the conversations) is in place; the new one (all of them) is
    killed at random moments spread over the time it writes (from its first write to 60% past
    its switch into place, the window shrinking to the fastest run seen), and the old export is
    put back before each try; more tries (up to 12) until one kill lands mid-export. After every kill the output is
    byte for byte the old export, or the new one complete. Then a last run finishes, and only
    the output is left in its folder."""
    name, out_name, flags, complete = CASES[case]
    dataset = big[name]
    work = tmp_path / "work"
    work.mkdir()
    out = work / out_name
    half, every = _manifest_ids(dataset, "half.jsonl"), _manifest_ids(dataset, "manifest.jsonl")
    _finish(_run(dataset, out, flags, "--manifest", str(dataset / "half.jsonl")))
    complete(out, dataset, half)
    old = tmp_path / "old"
    (shutil.copytree if out.is_dir() else shutil.copy2)(out, old)
    old_print = _fingerprint(out)

    def put_back_old() -> dict[str, tuple[int, int]]:
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
        (shutil.copytree if old.is_dir() else shutil.copy2)(old, out)
        return _stats(work)

    before = put_back_old()
    old_inode = os.lstat(out).st_ino
    p = _run(dataset, out, flags)  # how long a run writes, here: from its first write to its switch
    first = _until_writing(p, work, before)
    while p.poll() is None and os.lstat(out).st_ino == old_inode:  # not the exit: its teardown
        time.sleep(0.002)  # (closing the dataset, the interpreter) would spread kills past the switch
    writes = time.monotonic() - first
    _finish(p)
    complete(out, dataset, every)

    rng = random.Random(case)
    states: list[str] = []
    kills, most = 5, 12
    while len(states) < most and (len(states) < kills or "old (killed mid-export)" not in states):
        i = len(states) % kills
        before = put_back_old()
        old_inode = os.lstat(out).st_ino
        p = _run(dataset, out, flags)
        start = _until_writing(p, work, before)
        kill_at = start + writes * 1.6 * (i + rng.random()) / kills
        while time.monotonic() < kill_at and p.poll() is None:
            if os.lstat(out).st_ino != old_inode:  # switched before its moment: this run wrote faster
                writes = min(writes, time.monotonic() - start)  # than the timing run (a cold start,
                break  # a busy machine), so the later moments are spread over the faster window
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if _fingerprint(out) == old_print:
            wrote = _beside(_stats(work), out) != _beside(before, out)
            states.append("old (killed mid-export)" if wrote else "old (killed before writing)")
            continue
        try:
            complete(out, dataset, every)
        except Exception as exc:  # neither the old export nor a complete new one: say what broke
            try:
                complete(out, dataset, half)
                as_old = "reads as the old export, but its files changed"
            except Exception as old_exc:
                as_old = f"as the old export: {old_exc!r}"
            raise AssertionError(
                f"kill {len(states)} of {case}: broken: {as_old}; as the new one: {exc!r}"
            ) from exc
        states.append(
            "new (finished)" if p.returncode != -signal.SIGKILL else "new (killed after the switch)"
        )
    print(case, f"writes for {writes:.2f} s;", states)
    assert "old (killed mid-export)" in states, f"no kill landed mid-export: {states}"

    _finish(_run(dataset, out, flags))  # a run after the kills cleans up what they left
    complete(out, dataset, every)
    assert sorted(x.name for x in work.iterdir()) == [out_name]


@pytest.mark.slow
def test_an_export_never_replaces_a_folder_it_did_not_write(tmp_path, example_dataset):
    """The output of a folder export is replaced whole, so a folder holding anything else is
    refused, untouched; a second export into the same output at once is refused too."""
    from tests.helpers import run_cli

    for flags in (["--to", "moshi"], ["--to", "lhotse"], ["--to", "hf"]):
        mine = tmp_path / "mine"
        mine.mkdir(exist_ok=True)
        (mine / "thesis.tex").write_text("mine\n")
        res = run_cli("export", str(example_dataset), str(mine), *flags)
        assert res.returncode == 1 and "does not write (thesis.tex)" in res.stderr, res.stderr
        assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    res = run_cli("export", str(example_dataset), str(example_dataset), "--to", "lhotse")
    assert res.returncode == 1 and "does not write" in res.stderr  # never the dataset itself

    import fcntl

    busy = tmp_path / ".busy.synth-export"
    busy.mkdir()
    fd = os.open(busy, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        res = run_cli("export", str(example_dataset), str(tmp_path / "busy"), "--to", "lhotse")
        assert res.returncode == 1 and "another export into it is running" in res.stderr
    finally:
        os.close(fd)
    assert run_cli("export", str(example_dataset), str(tmp_path / "busy"), "--to", "lhotse").returncode == 0
    assert not busy.exists()


def test_switch_without_exchange_is_undone_by_the_next_run(tmp_path):
    """Where the file system cannot exchange two names, the switch is three renames (old aside,
    new in, old into the staging folder); a kill after the first leaves nothing at the output,
    and the next run puts the old export back; a kill after the second leaves the new one, and
    the next run removes the old one from aside."""
    from synth.export.switch import OLD_SUFFIX, recover_switch, switch

    def tree(path: Path, text: str) -> Path:
        path.mkdir()
        (path / "a").write_text(text)
        return path

    out, aside = tmp_path / "out", tmp_path / f".out{OLD_SUFFIX}"
    switch(tree(tmp_path / "new", "new"), tree(out, "old"), exchange=lambda a, b: False)
    assert (out / "a").read_text() == "new" and (tmp_path / "new" / "a").read_text() == "old"
    shutil.rmtree(tmp_path / "new")

    out.rename(aside)  # killed after the first rename
    recover_switch(out)
    assert (out / "a").read_text() == "new" and not aside.exists()
    tree(aside, "older")  # killed after the second
    recover_switch(out)
    assert (out / "a").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
