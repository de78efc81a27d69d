"""Each check of `synth validate` on a real generated dataset, broken one way at a time."""

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from synth.workflows.validate import validate_dataset


@pytest.fixture
def dataset(tmp_path, example_dataset):
    out = tmp_path / "ds"
    shutil.copytree(example_dataset, out)
    return out


def first(ds):
    return ds / "conversations" / "bakery_morning"


def errors(ds):
    report = validate_dataset(ds)
    assert not report.ok
    return "\n".join(report.errors)


def test_generated_dataset_is_valid(example_dataset):
    report = validate_dataset(example_dataset)
    assert report.ok, report.format()
    assert report.conversations == 4 and report.turns == 18 and report.audio_sec > 30


def test_wrong_wav_format(dataset):
    sf.write(str(first(dataset) / "turn_0.wav"), np.zeros((8000, 2), np.float32), 22050, subtype="FLOAT")
    msg = errors(dataset)
    assert "bakery_morning/turn_0.wav" in msg and "22050 Hz" in msg and "2 channels" in msg


def test_empty_and_unclean_transcripts(dataset):
    (first(dataset) / "turn_1.txt").write_text("  \n")
    (first(dataset) / "turn_2.txt").write_text("Then I will , he said .\n")
    msg = errors(dataset)
    assert "turn_1.txt: empty transcript" in msg and "turn_2.txt: transcript is not clean" in msg


def test_missing_files_and_fields(dataset):
    (first(dataset) / "turn_3.wav").unlink()
    meta_path = dataset / "conversations" / "lost_umbrella" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["turns"][0]["duration_sec"]
    meta["turns"][2]["turn_id"] = 7
    meta["turns"][1]["duration_sec"] += 1.0
    meta_path.write_text(json.dumps(meta))
    msg = errors(dataset)
    assert "bakery_morning/turn_3.wav: missing" in msg
    assert "turns[0]: missing field 'duration_sec'" in msg
    assert "turn_id 7, expected 2" in msg
    assert "turns[1]: duration_sec" in msg and "the WAV lasts" in msg


def test_each_problem_names_where_it_is(dataset):
    """Besides its message, each problem names its conversation, file, turn and field (what a
    program filters on)."""
    meta_path = dataset / "conversations" / "lost_umbrella" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["turns"][2]["turn_id"] = 7
    meta["turns"][1]["speaker"] = "Z"
    meta_path.write_text(json.dumps(meta))
    (first(dataset) / "turn_1.txt").write_text("  \n")
    problems = [p for p in validate_dataset(dataset).problems if p.kind == "error"]
    assert {(p.conversation, p.file, p.turn, p.field) for p in problems} == {
        ("lost_umbrella", "metadata.json", 2, "turn_id"),
        ("lost_umbrella", "metadata.json", 1, "speaker"),
        ("lost_umbrella", "metadata.json", None, None),  # damaged: not what was written
        ("bakery_morning", "turn_1.txt", 1, None),  # empty
        ("bakery_morning", "turn_1.txt", 1, "text"),  # not the turn's text
        ("bakery_morning", "turn_1.txt", None, None),  # damaged
    }
    (speaker,) = [p for p in problems if p.field == "speaker"]
    assert str(speaker) == "conversations/lost_umbrella/metadata.json turns[1]: speaker 'Z' not in speakers"


def test_a_sample_line_that_is_no_object_is_named(dataset):
    """A line of samples.jsonl that is JSON but not an object (was: an AttributeError from the
    targets' check)."""
    path = first(dataset) / "samples.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1] + ["[1, 2]"]) + "\n")
    assert "bakery_morning/samples.jsonl line 4: not a sample" in errors(dataset)


def test_manifest_mismatches(dataset):
    manifest = dataset / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text(
        "\n".join(
            lines[1:]
            + [
                lines[1],
                '{"conversation_id": "ghost", "path": '
                '"conversations/ghost", "num_turns": 1, '
                '"duration_sec": 1.0, "total_tokens": 5}',
            ]
        )
        + "\n"
    )
    msg = errors(dataset)
    assert "folder not in manifest.jsonl" not in msg  # not listed: nothing reads it, a warning
    assert any(
        "bakery_morning: folder not in manifest.jsonl" in w for w in validate_dataset(dataset).warnings
    )
    assert "'lost_umbrella' listed 2 times" in msg
    assert "'ghost' has no folder" in msg


def test_cli_exit_codes(dataset):
    from tests.helpers import run_cli

    ok = run_cli("validate", str(dataset))
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK")
    (first(dataset) / "metadata.json").write_text("{not json")
    bad = run_cli("validate", str(dataset), "--json")
    assert bad.returncode == 1
    assert any("metadata.json: not valid JSON" in e for e in json.loads(bad.stdout)["errors"])


# -- issue 32: what is going on in the folder, and what to run ----------------------------------


def test_damage_names_the_repair_command(dataset):
    """validate names the damage and the fix: generate --repair with the dialogs the conversations
    were made from and the dataset as it was given (issue 30 item 5)."""
    from tests.helpers import EXAMPLES

    (first(dataset) / "turn_2.wav").unlink()
    report = validate_dataset(dataset)
    assert "conversations/bakery_morning: damaged: turn_2.wav: missing" in report.errors
    assert any(
        f"`synth generate --dialogs {EXAMPLES} --out {dataset} --repair`" in a for a in report.advice
    ), report.advice
    assert "to do: 1 damaged conversation(s) (bakery_morning)" in report.format()


def test_a_conversation_tokenized_otherwise_is_named(dataset):
    """One set of sample settings per dataset: conversations whose `tokens` disagree with
    dataset.json are errors, each named, with the `synth tokenize` that makes them agree; so is a
    manifest whose total_tokens are not the conversations' own."""
    import shutil

    from synth import api
    from synth.samples.builder import SampleConfig
    from synth.samples.retokenize import retokenize

    before = dataset.parent / "before"
    shutil.copytree(dataset, before)
    retokenize(dataset, api.sample_builder(SampleConfig(speech_profile="rate:10")))
    assert validate_dataset(dataset).ok
    assert (
        json.loads((dataset / "dataset.json").read_text())["options"]["samples.speech_profile"] == "rate:10"
    )
    for name in ("metadata.json", "samples.jsonl", "integrity.json"):  # one conversation as it was
        shutil.copy(before / "conversations" / "bakery_morning" / name, first(dataset) / name)
    report = validate_dataset(dataset)
    assert not report.ok
    assert [e for e in report.errors if "tokens made with" in e] == [
        "conversations/bakery_morning/metadata.json: tokens made with speech_profile llama-omni, not "
        "rate:10 (the dataset's settings, as dataset.json says: speech profile rate:10, tokenizer "
        "meta-llama/Llama-3.1-8B-Instruct, format chat, pad multiple 64)"
    ]
    assert any("manifest.jsonl bakery_morning: total_tokens" in e for e in report.errors)
    assert any(f"`synth tokenize {dataset} --speech-profile rate:10`" in a for a in report.advice)
    shutil.copy(before / "dataset.json", dataset / "dataset.json")  # dataset.json says llama-omni now
    wrong = [e for e in validate_dataset(dataset).errors if "tokens made with" in e]
    assert len(wrong) == 3 and "bakery_morning" not in " ".join(wrong)


def test_a_running_writer_is_told_from_an_interrupted_one(dataset):
    """A conversation being written now (its staging lock held by a live writer, which has a
    record) is no error, and validate names the writer; the staging folder of a writer that is
    gone is a leftover of an interrupted run, removed by `validate --recover`."""
    import os

    from synth.dataset.writer import DatasetWriter
    from tests.helpers import run_cli

    writer = DatasetWriter(dataset)
    with writer.staged("in_progress"):
        report = validate_dataset(dataset)
        assert report.ok, report.format()
        assert any(
            "being written now by " in w  # the command: pytest's, or an xdist worker's
            and f"pid {os.getpid()}" in w
            and "1 conversation(s) in progress" in w
            for w in report.warnings
        ), report.warnings
    writer.close()
    gone = dataset / ".tmp" / "lost_umbrella.otherhost-1-deadbeef.abc123"
    gone.mkdir()
    (gone / "turn_0.wav").write_bytes(b"half")
    (dataset / ".tmp" / (gone.name + ".lock")).touch()  # its lock, held by nobody
    report = validate_dataset(dataset)
    assert report.ok and any(
        "1 unfinished conversation(s)" in w and "interrupted run" in w for w in report.warnings
    )
    assert any(f"synth validate {dataset} --recover" in a for a in report.advice)
    res = run_cli("validate", str(dataset), "--recover")
    assert res.returncode == 0 and "removed 1 unfinished conversation(s)" in res.stdout, res.stdout
    assert "interrupted run" not in res.stdout and not gone.exists()


def test_an_interrupted_rewrite_is_not_damage(dataset):
    """The hidden files of a rewrite killed before its switch: the old dataset, whole (OK, a
    warning naming the rewrite and the command to run again); killed during its switch: FAILED,
    part old and part new, naming `--recover`, which makes it the new one."""
    from synth.dataset.journal import JOURNAL, Rewrite, pending
    from synth.dataset.writer import recover_dataset

    info = {"tool": "synth tokenize", "pid": 4242, "command": "synth tokenize ds --speech-profile rate:10",
            "cwd": "/somewhere", "options": {"samples.speech_profile": "rate:10"}}  # fmt: skip
    rewrite = Rewrite(dataset, info)
    folders = sorted((dataset / "conversations").iterdir())
    for folder in folders:
        meta = json.loads((folder / "metadata.json").read_text())
        meta["tokens"]["speech_profile"] = "rate:10"
        rewrite.conversation(folder, {"metadata.json": json.dumps(meta).encode()})
    report = validate_dataset(dataset)
    assert report.ok, report.format()
    assert not any("damaged" in e for e in report.errors)
    (warning,) = [w for w in report.warnings if "interrupted before its switch" in w]
    assert (
        "(`synth tokenize ds --speech-profile rate:10`, pid 4242" in warning
        and "the dataset is the old one" in warning
    )
    assert (
        "to speech profile rate:10" in warning
        and "the old one (speech profile llama-omni, tokenizer" in warning
    )
    assert any(f"synth tokenize {dataset} --speech-profile rate:10` again" in a for a in report.advice), (
        report.advice
    )
    # killed during the switch: its journal written, one file switched in
    import os

    from synth.dataset.journal import _relative, next_path

    targets = [_relative(dataset, t) for t in rewrite.targets]
    (dataset / JOURNAL).write_text(json.dumps({"switch": targets}))
    os.replace(next_path(dataset / targets[0]), dataset / targets[0])
    assert pending(dataset) == targets
    report = validate_dataset(dataset)
    assert not report.ok and any("interrupted while it switched its new files in" in e for e in report.errors)
    assert any(f"`synth validate {dataset} --recover` finishes the switch" in a for a in report.advice)
    assert "finished an interrupted rewrite" in recover_dataset(dataset)
    for folder in folders:
        assert json.loads((folder / "metadata.json").read_text())["tokens"]["speech_profile"] == "rate:10"
    assert not (dataset / JOURNAL).exists() and not list(dataset.rglob("*.next"))
