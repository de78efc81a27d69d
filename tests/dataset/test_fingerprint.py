"""dataset.json: a resume with options that change the conversations is refused, naming them;
one that only changes speed goes on; --resume-with-changes adds anyway. An empty source is no
failure and leaves a dataset that validates."""

from __future__ import annotations

import json

import pytest

from synth.dataset.fingerprint import DATASET_FILE, differences
from synth.workflows.validate import validate_dataset
from tests.helpers import EXAMPLES, run_cli, write_jsonl


def test_differences_name_each_option():
    assert differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == [
        "b: then 2, now 3",
        "c: then None, now 4",
    ]


@pytest.mark.slow
def test_resume_with_other_options_is_refused_naming_them(tmp_path):
    out = tmp_path / "ds"
    first = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--limit", "1")
    assert first.returncode == 0, first.stderr
    recorded = json.loads((out / DATASET_FILE).read_text())["options"]
    assert recorded["pipeline.seed"] == 0 and recorded["samples.speech_profile"] == "llama-omni"
    changed = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--seed", "4",
        "--speech-profile", "rate:10",
    )  # fmt: skip
    assert changed.returncode == 1
    assert "pipeline.seed: then 0, now 4" in changed.stderr and "samples.speech_profile" in changed.stderr
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 1  # nothing was added
    faster = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--max-batch", "4",
                     "--limit", "2")  # fmt: skip
    assert faster.returncode == 0, faster.stderr  # batching changes speed, not the conversations
    anyway = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--seed", "4",
                     "--resume-with-changes")  # fmt: skip
    assert anyway.returncode == 0, anyway.stderr
    assert validate_dataset(out).ok


@pytest.mark.slow
def test_an_empty_source_and_blank_lines_are_no_failure(tmp_path):
    out = tmp_path / "empty"
    res = run_cli(
        "generate", "--dialogs", str(write_jsonl(tmp_path / "none.jsonl", [])), "--out", str(out), "--quiet"
    )
    assert res.returncode == 0 and "generated 0" in res.stdout, res.stderr
    assert validate_dataset(out).ok and (out / "manifest.jsonl").read_text() == ""
    text = tmp_path / "dialogues_test.txt"
    text.write_text("Hello , there . __eou__ Hi ! __eou__\n\n   \nHow are you ? __eou__ Fine . __eou__\n")
    res = run_cli("generate", "--dialogs", str(text), "--out", str(tmp_path / "dd"), "--quiet")
    assert res.returncode == 0 and "generated 2" in res.stdout, res.stderr
    ids = sorted(p.name for p in (tmp_path / "dd" / "conversations").iterdir())
    assert ids == ["dailydialog_test_000000", "dailydialog_test_000003"]  # line numbers keep the ids
