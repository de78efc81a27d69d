import json
import shutil

import pytest

from synth.samples.tokenizer import export_llama3_hf as build_llama3_tokenizer_dir
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli


@pytest.mark.slow
def test_tokenize_rewrites_samples_metadata_and_manifest(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    before = {
        json.loads(l)["conversation_id"]: json.loads(l)
        for l in (ds / "manifest.jsonl").read_text().splitlines()
    }
    tok = build_llama3_tokenizer_dir(tmp_path / "tok")
    res = run_cli(
        "tokenize", str(ds), "--tokenizer", str(tok), "--format", "transcribe", "--pad-multiple", "32"
    )
    assert res.returncode == 0, res.stderr
    after = {
        json.loads(l)["conversation_id"]: json.loads(l)
        for l in (ds / "manifest.jsonl").read_text().splitlines()
    }
    assert list(after) == list(before)
    folder = ds / "conversations" / "bakery_morning"
    samples = [json.loads(l) for l in (folder / "samples.jsonl").read_text().splitlines()]
    meta = json.loads((folder / "metadata.json").read_text())
    assert {s["target"] for s in samples} == {"transcript"}
    assert all(len(s["input_ids"]) % 32 == 0 for s in samples)
    assert meta["tokens"]["tokenizer"] == str(tok) and meta["tokens"]["format"] == "transcribe"
    assert after["bakery_morning"]["total_tokens"] == meta["total_tokens"]
    # transcribe targets are each turn's own text: one more target than chat's n-1 replies + 1
    assert after["bakery_morning"]["speech_tokens"] == before["bakery_morning"]["speech_tokens"]
    assert not list(folder.glob(".*.new"))
    assert validate_dataset(ds).ok


@pytest.mark.slow
def test_tokenize_errors_name_the_file(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    res = run_cli("tokenize", str(ds), "--tokenizer", str(tmp_path / "no" / "such"))
    assert res.returncode == 2 and "no such folder" in res.stderr  # a bad --tokenizer value
    (ds / "conversations" / "team_standup" / "metadata.json").write_text("{")
    res = run_cli("tokenize", str(ds))
    assert res.returncode == 1 and "team_standup/metadata.json: not valid JSON" in res.stderr
    shutil.rmtree(ds / "conversations" / "lost_umbrella")
    res = run_cli("tokenize", str(ds))
    assert res.returncode == 1 and "lost_umbrella is missing" in res.stderr


@pytest.mark.slow
def test_tokenize_a_relative_path_records_its_settings_and_rewrites_the_splits(tmp_path, example_dataset):
    """`synth tokenize ds --speech-profile rate:10` from the dataset's parent (the path of the
    issue 32 crash): dataset.json records the new settings, so a resume with the old ones is
    refused and one with the new ones goes on; the splits inside the dataset follow the new
    counts; nothing hidden is left. A dataset without dataset.json gets a partial one, which the
    next generate with the same settings completes."""
    import subprocess

    from tests.helpers import EXAMPLES
    from tests.helpers import SYNTH as synth

    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    assert run_cli("splits", str(ds), "--stages", "1k,2k").returncode == 0
    res = subprocess.run(
        [synth, "tokenize", "ds", "--speech-profile", "rate:10"], cwd=tmp_path, capture_output=True, text=True
    )
    assert res.returncode == 0 and "dataset.json records these settings" in res.stdout, res.stderr
    assert json.loads((ds / "dataset.json").read_text())["options"]["samples.speech_profile"] == "rate:10"
    tokens = {
        json.loads(x)["conversation_id"]: json.loads(x)["total_tokens"]
        for x in (ds / "manifest.jsonl").read_text().splitlines()
    }
    for line in (ds / "splits" / "stage_2048.jsonl").read_text().splitlines():
        assert json.loads(line)["total_tokens"] == tokens[json.loads(line)["conversation_id"]]
    assert not [
        p for p in ds.rglob(".*") if p.name.endswith(".next") or p.name in (".rewrite", ".switch.json")
    ]
    assert validate_dataset(ds).ok
    old = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(ds), "--quiet")
    assert old.returncode == 1 and "samples.speech_profile: then 'rate:10', now 'llama-omni'" in old.stderr
    new = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(ds), "--quiet", "--speech-profile", "rate:10"
    )
    assert new.returncode == 0, new.stderr
    anyway = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(ds), "--quiet", "--resume-with-changes"
    )
    assert anyway.returncode == 1 and "one set of sample settings" in anyway.stderr, anyway.stderr
    (ds / "dataset.json").unlink()  # made before dataset.json, or merged by an older synth
    assert run_cli("tokenize", str(ds), "--speech-profile", "llama-omni").returncode == 0
    partial = json.loads((ds / "dataset.json").read_text())
    assert partial["partial"] and partial["options"]["samples.speech_profile"] == "llama-omni"
    again = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(ds), "--quiet")
    assert again.returncode == 0, again.stderr
    full = json.loads((ds / "dataset.json").read_text())
    assert "partial" not in full and full["options"]["pipeline.seed"] == 0
    assert validate_dataset(ds).ok
