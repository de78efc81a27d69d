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
