"""`synth` end to end in child processes, as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from synth.workflows.validate import validate_dataset
from tests.helpers import EXAMPLES, SYNTH, run_cli, write_jsonl


def manifest_ids(out: Path) -> list[str]:
    path = out / "manifest.jsonl"
    return [json.loads(l)["conversation_id"] for l in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize(
    "command",
    [
        "generate",
        "voices",
        "validate",
        "splits",
        "tokenize",
        "export",
        "serve",
        "batch",
        "health",
        "convert",
        "transcribe",
        "check",
    ],
)
@pytest.mark.slow
def test_help_on_every_subcommand(command):
    res = run_cli(command, "--help")
    assert res.returncode == 0 and "usage: synth " + command in res.stdout


def test_voices_lists_catalog_as_json():
    res = run_cli("voices", "--json")
    voices = [json.loads(l) for l in res.stdout.splitlines()]
    assert len(voices) == 18 and {"id", "engine", "model", "speaker", "params"} <= set(voices[0])


@pytest.mark.slow
def test_example_run_resumes_without_duplicates(example_dataset):
    assert sorted(manifest_ids(example_dataset)) == [
        "bakery_morning",
        "dialogs_000003",
        "lost_umbrella",
        "team_standup",
    ]
    again = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(example_dataset), "--quiet")
    assert again.returncode == 0 and "skipped 4 already in the manifest" in again.stdout
    assert len(manifest_ids(example_dataset)) == 4
    refused = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(example_dataset), "--no-resume", "--quiet"
    )
    assert refused.returncode == 1 and "already holds 4 conversation(s)" in refused.stderr


def test_bad_input_skip_and_fail(tmp_path):
    dialogs = write_jsonl(
        tmp_path / "mixed.jsonl",
        [
            {"conversation_id": "good1", "turns": ["Hello there.", "Hi."]},
            "{oops",
            {"conversation_id": "good1", "turns": ["Same id again."]},
            {"conversation_id": "empty_turn", "turns": ["Fine.", ""]},
            {"conversation_id": "good2", "turns": ["Bye now."], "voices": {"A": "joe-vt0.80"}},
            {"conversation_id": "badvoice", "turns": ["Who am I?"], "voices": {"A": "ghost"}},
        ],
    )
    out = tmp_path / "skip"
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--gap", "fixed:0.3")
    assert res.returncode == 3, res.stderr
    assert "mixed.jsonl line 2: invalid JSON" in res.stderr
    assert "line 3: conversation_id: duplicate conversation_id 'good1'" in res.stderr
    assert "line 4: turns[1].text: text is empty" in res.stderr
    assert "unknown voice 'ghost'" in res.stderr
    failures = [json.loads(l) for l in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 4
    assert sorted(manifest_ids(out)) == ["good1", "good2"]
    assert validate_dataset(out).ok
    meta = json.loads((out / "conversations" / "good2" / "metadata.json").read_text())
    assert meta["voices"]["A"]["id"] == "joe-vt0.80" and meta["gap_distribution"] == "fixed:0.3"

    out2 = tmp_path / "fail"
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(out2), "--quiet", "--on-error", "fail")
    assert res.returncode == 1 and "mixed.jsonl line 2: invalid JSON" in res.stderr
    assert manifest_ids(out2) == ["good1"]
    assert validate_dataset(out2).ok


@pytest.mark.slow
def test_usage_errors_name_the_option(tmp_path):
    """A bad option value is a usage error: exit 2, naming the flag, in one line and a pointer to
    --help; a run that fails on its input exits 1."""
    res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(tmp_path / "o"), "--voice", "A=nobody")
    assert res.returncode == 2 and "--voice: unknown voice 'nobody'" in res.stderr
    res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(tmp_path / "o"), "--gap", "x")
    assert res.returncode == 2 and "argument --gap: expected fixed:X" in res.stderr
    assert "(see `synth generate --help`)" in res.stderr and len(res.stderr.splitlines()) == 2
    for flags, says in (
        (("--gap", "weird:1"), "argument --gap"),
        (("--backchannels", "1.5"), "--backchannels 1.5: must be a probability"),
        (("--shard", "3/2"), "shards are numbered from 0"),
        (("--conversation-audio", "--augment", "--augment-noise", "nowhere/"), "--augment-noise 'nowhere/'"),
        (("--voice", "A=gender:nonbinary"), "--voice"),
        (
            ("--conversation-audio", "--augment-noise", "white"),
            "--augment-noise set, but augmentation is off",
        ),
        (("--augment-snr", "5,10"), "--augment-snr set, but augmentation is off"),
    ):
        res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(tmp_path / "o"), *flags)
        assert res.returncode == 2 and says in res.stderr, (flags, res.stderr)
    res = run_cli("generate", "--dialogs", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "no such file" in res.stderr  # --dialogs names nothing
    for corpus, flags, says in (
        ("librispeech", ("--min-duration", "-1"), "--min-duration -1.0: must be more than 0"),
        ("commonvoice", ("--speakers", "0"), "--speakers 0: must be at least 1"),
    ):
        res = run_cli("convert", corpus, str(tmp_path), "--out", str(tmp_path / "c"), *flags)
        assert res.returncode == 2 and says in res.stderr, (corpus, res.stderr)


@pytest.mark.slow
def test_dailydialog_sources_through_the_cli(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table(
            {
                "dialog": [
                    ["Good evening , sir .", "Evening ! Table for two ?"],
                    ["I ' d like a coffee .", "Right away ."],
                ]
            }
        ),
        tmp_path / "train.parquet",
    )
    out = tmp_path / "hf"
    res = run_cli(
        "generate", "--dialogs", str(tmp_path / "train.parquet"), "--limit", "1", "--out", str(out), "--quiet"
    )
    assert res.returncode == 0, res.stderr
    assert manifest_ids(out) == ["train_train_000000"]
    txt = out / "conversations" / "train_train_000000" / "turn_1.txt"
    assert txt.read_text() == "Evening! Table for two?\n"

    raw = tmp_path / "dialogues_test.txt"
    raw.write_text("Can I help you ? __eou__ Just looking , thanks . __eou__\n")
    res = run_cli("generate", "--dialogs", str(raw), "--out", str(tmp_path / "dd"), "--quiet")
    assert res.returncode == 0 and manifest_ids(tmp_path / "dd") == ["dailydialog_test_000000"]


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_each_conversation_once(tmp_path):
    records = [
        {
            "conversation_id": f"k{i:02d}",
            "turns": [
                f"This is conversation number {i}, first turn.",
                "And here comes the answer, in a second turn.",
            ],
        }
        for i in range(8)
    ]
    dialogs = write_jsonl(tmp_path / "k.jsonl", records)
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [SYNTH, "generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(manifest_ids(out)) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(manifest_ids(out))
    assert 2 <= done_before < 8, "the kill must land mid-run"
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    counts = Counter(manifest_ids(out))
    assert sorted(counts) == [r["conversation_id"] for r in records]
    assert set(counts.values()) == {1}
    report = validate_dataset(out)
    assert report.ok and not report.warnings, report.format()


def test_first_hour_basics(tmp_path, example_dataset):
    """Bare `synth` shows the overview; every option of every command says what it does;
    a closed pipe is not an error; the hf export without `datasets` gives the install hint."""
    import argparse
    import subprocess

    from synth.cli import build_parser

    res = run_cli()
    assert res.returncode == 2 and "generate" in res.stdout and "error" not in res.stderr
    undocumented = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.option_strings and action.dest != "help" and not action.help:
                undocumented.append(f"{path} {action.option_strings[0]}")

    walk(build_parser(), "synth")
    assert undocumented == []
    shell = subprocess.run(
        f"'{sys.executable}' -m synth.cli voices --json | head -3",
        shell=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert len(shell.stdout.splitlines()) == 3 and "Error" not in shell.stderr, shell.stderr
    blocked = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, *a):\n"
        "        if name.split('.')[0] == 'datasets': raise ImportError('no datasets here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from synth.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", blocked, "export", str(example_dataset), str(tmp_path / "hf"), "--to", "hf"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and "pip install 'synth[hf]'" in res.stderr and "Traceback" not in res.stderr
