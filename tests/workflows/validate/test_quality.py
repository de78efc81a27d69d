"""The quality checks of `synth validate` on a dataset made with the embedded voice: scores
stored as synth.quality stores them pass; every bad value of a turn's `quality` block or of a
manifest line's summary is named with its conversation, turn and key."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from synth.dataset.integrity import INTEGRITY_FILE, record_bytes
from synth.workflows.validate import validate_dataset

CID = "bakery_morning"
GOOD = {
    "scorers": {"intelligibility": "whisper-tiny.en/1", "dnsmos": "p835-1", "signal": "1"},
    "wer": 0.0,
    "cer": 0.02,
    "asr_text": "good morning",
    "dnsmos_ovrl": 2.71,
    "clipped": 0,
    "loudness_db": -20.4,
    "takes": 2,
    "gate_failed": ["dnsmos_ovrl"],
}


@pytest.fixture
def dataset(tmp_path, example_dataset):
    out = tmp_path / "ds"
    shutil.copytree(example_dataset, out)
    return out


def _store(ds, blocks, summary=None):
    """Each turn's block (None: none) into the conversation's metadata, sealed again as the
    writer seals it; `summary` into its manifest line."""
    folder = ds / "conversations" / CID
    meta = json.loads((folder / "metadata.json").read_text())
    for turn, block in zip(meta["turns"], blocks):
        if block is not None:
            turn["quality"] = block
    (folder / "metadata.json").write_text(json.dumps(meta))  # NaN and Infinity as Python writes them
    names = json.loads((folder / INTEGRITY_FILE).read_text())["files"]
    (folder / INTEGRITY_FILE).write_bytes(record_bytes(folder, names))
    if summary is not None:
        lines = (ds / "manifest.jsonl").read_text().splitlines()
        for i, line in enumerate(lines):
            entry = json.loads(line)
            if entry["conversation_id"] == CID:
                entry["quality"] = summary
                lines[i] = json.dumps(entry)
        (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def _quality_problems(ds):
    return [p for p in validate_dataset(ds).problems if (p.field or "").startswith("quality")]


def test_scores_as_stored_pass(dataset):
    """Blocks and a summary as synth.quality writes them (the mean rounded to 4 decimals, its
    min and max not: 0.1234 for two turns of 0.12345 is in order) are no problem."""
    _store(
        dataset,
        [GOOD, {**GOOD, "wer": 0.12345, "takes": 1, "gate_failed": []}, None, {"scorers": {}}],
        {"wer": {"min": 0.0, "mean": 0.0617, "max": 0.12345}, "cer": {"min": 0.12345, "mean": 0.1234,
         "max": 0.12345}, "turns_scored": 3},
    )  # fmt: skip
    report = validate_dataset(dataset)
    assert report.ok, report.format()


def test_each_bad_turn_score_is_named(dataset):
    _store(
        dataset,
        [
            [0.5],
            {"wer": math.nan, "cer": "0.1"},
            {"scorers": {"dnsmos": 2}, "dnsmos_ovrl": math.inf, "asr_text": 5, "gate_failed": "wer"},
            {**GOOD, "takes": 0, "clipped": True, "speaker_sim": None},
        ],
    )
    problems = _quality_problems(dataset)
    assert {(p.conversation, p.file, p.turn, p.field) for p in problems} == {
        (CID, "metadata.json", 0, "quality"),
        (CID, "metadata.json", 1, "quality.scorers"),
        (CID, "metadata.json", 1, "quality.wer"),
        (CID, "metadata.json", 1, "quality.cer"),
        (CID, "metadata.json", 2, "quality.scorers.dnsmos"),
        (CID, "metadata.json", 2, "quality.dnsmos_ovrl"),
        (CID, "metadata.json", 2, "quality.asr_text"),
        (CID, "metadata.json", 2, "quality.gate_failed"),
        (CID, "metadata.json", 3, "quality.takes"),
        (CID, "metadata.json", 3, "quality.clipped"),
        (CID, "metadata.json", 3, "quality.speaker_sim"),
    }
    assert len(problems) == 11
    said = "\n".join(p.message for p in problems)
    at = f"conversations/{CID}/metadata.json turns"
    for line in (
        f"{at}[0]: quality is [0.5], not an object",
        f"{at}[1]: quality.scorers is missing: it must name each scorer that ran with its version",
        f"{at}[1]: quality.wer is nan, not a finite number",
        f"{at}[1]: quality.cer is '0.1', not a finite number",
        f"{at}[2]: quality.scorers.dnsmos is 2, not a version string",
        f"{at}[2]: quality.dnsmos_ovrl is inf, not a finite number",
        f"{at}[2]: quality.asr_text is 5, not a string",
        f"{at}[2]: quality.gate_failed is 'wer', not a list of names",
        f"{at}[3]: quality.takes is 0, not a whole number of takes, at least 1",
        f"{at}[3]: quality.clipped is True, not a finite number",
        f"{at}[3]: quality.speaker_sim is null, not a finite number",
    ):
        assert line in said, said
    assert all(p.kind == "error" for p in problems)
    assert not validate_dataset(dataset).ok


def test_each_bad_summary_is_named(dataset):
    _store(
        dataset,
        [GOOD] * 4,
        {
            "wer": {"min": 0.2, "mean": 0.1, "max": 0.3},
            "cer": {"min": 0.3, "mean": 0.3, "max": 0.2},
            "dnsmos_ovrl": {"min": 2.0, "max": 3.0},
            "loudness_db": {"min": -20.0, "mean": math.nan, "max": "-19"},
            "clipped": 5,
            "turns_scored": "4",
            "turns_flagged": -1,
        },
    )
    problems = _quality_problems(dataset)
    assert {(p.conversation, p.file, p.turn, p.field) for p in problems} == {
        (CID, "manifest.jsonl", None, f"quality.{key}")
        for key in ("wer", "cer", "dnsmos_ovrl", "loudness_db", "clipped", "turns_scored", "turns_flagged")
    }
    said = "\n".join(p.message for p in problems)
    at = f"manifest.jsonl {CID}"
    for line in (
        f"{at}: quality.turns_scored is '4', not a number of turns",
        f"{at}: quality.turns_flagged is -1, not a number of turns",
        f"{at}: quality.wer: min 0.2, mean 0.1, max 0.3 are not in order",
        f"{at}: quality.cer: min 0.3, mean 0.3, max 0.2 are not in order",
        f"{at}: quality.dnsmos_ovrl: mean missing: not a finite number",
        f"{at}: quality.loudness_db: mean nan, max '-19': not a finite number",
        f"{at}: quality.clipped is 5, not an object of min, mean and max",
    ):
        assert line in said, said


def test_a_summary_that_is_not_an_object_is_named(dataset):
    _store(dataset, [GOOD] * 4, "high")
    (problem,) = _quality_problems(dataset)
    assert problem.message == f"manifest.jsonl {CID}: quality is 'high', not an object"
    assert (problem.conversation, problem.field) == (CID, "quality")
