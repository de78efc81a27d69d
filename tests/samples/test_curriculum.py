import json
import shutil

import pytest

from synth.errors import SynthError
from synth.samples.curriculum import parse_stages, write_splits
from tests.helpers import run_cli


def test_parse_stages():
    assert parse_stages("8192,16384") == [8192, 16384]
    assert parse_stages("8k, 16K,32k") == [8192, 16384, 32768]
    for bad, msg in (
        ("16k,8k", "strictly increasing"),
        ("8k,8k", "strictly increasing"),
        ("8k,x", "'x' is not"),
        ("0", "'0' is not"),
        ("", "'' is not"),
    ):
        with pytest.raises(SynthError, match=msg):
            parse_stages(bad)


def test_splits_hold_the_conversations_that_fit(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    entries = [json.loads(l) for l in (ds / "manifest.jsonl").read_text().splitlines()]
    tokens = sorted(e["total_tokens"] for e in entries)
    stages = [tokens[1], tokens[-1] - 1, tokens[-1] * 2]
    summaries, too_long = write_splits(ds, stages)
    assert too_long == 0
    for summary in summaries:
        got = [json.loads(l) for l in summary.path.read_text().splitlines()]
        assert sorted(e["conversation_id"] for e in got) == sorted(
            e["conversation_id"] for e in entries if e["total_tokens"] <= summary.stage
        )
        assert summary.conversations == len(got)
    assert [s.conversations for s in summaries] == [2, 3, 4]
    res = run_cli("splits", str(ds), "--stages", f"{tokens[0] - 1}")
    assert res.returncode == 0 and "4 conversation(s) exceed the last stage" in res.stdout
    res = run_cli("splits", str(ds), "--stages", "16k,8k")
    assert res.returncode == 2 and "strictly increasing" in res.stderr


def test_splits_reject_a_corrupt_manifest(tmp_path):
    (tmp_path / "manifest.jsonl").write_text(
        '{"conversation_id": "a", "path": "conversations/a", "num_turns": 1, "duration_sec": 1.0}\n{bad\n'
    )
    with pytest.raises(SynthError, match="manifest.jsonl line 1: no total_tokens"):
        write_splits(tmp_path, [10])
    (tmp_path / "manifest.jsonl").write_text('{"conversation_id": "a", "num_turns": 1}\n')
    with pytest.raises(SynthError, match="manifest.jsonl line 1: missing field 'path'"):
        write_splits(tmp_path, [10])
    (tmp_path / "manifest.jsonl").write_text("{bad\n")
    with pytest.raises(SynthError, match="manifest.jsonl line 1: not valid JSON"):
        write_splits(tmp_path, [10])


def test_bands_put_each_conversation_in_exactly_one_stage(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    entries = [json.loads(x) for x in (ds / "manifest.jsonl").read_text().splitlines()]
    tokens = sorted(e["total_tokens"] for e in entries)
    stages = [tokens[1], tokens[-1] - 1, tokens[-1] * 2]
    summaries, too_long = write_splits(ds, stages, bands=True)
    seen = []
    for lower, summary in zip([0, *stages], summaries):
        got = [json.loads(x) for x in summary.path.read_text().splitlines()]
        assert summary.path.name == f"band_{summary.stage}.jsonl" and summary.lower == lower
        assert all(lower < e["total_tokens"] <= summary.stage for e in got)
        assert sum(summary.histogram) == summary.conversations == len(got)
        seen += [e["conversation_id"] for e in got]
    assert sorted(seen) == sorted(e["conversation_id"] for e in entries)  # each exactly once
    assert [s.conversations for s in summaries] == [2, 1, 1] and too_long == 0
    res = run_cli("splits", str(ds), "--stages", ",".join(map(str, stages)), "--bands")
    assert res.returncode == 0 and "band" in res.stdout and "#" in res.stdout, res.stderr


def test_the_loader_takes_a_stage(tmp_path, example_dataset):
    from synth.training import ConversationDataset

    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    tokens = sorted(json.loads(x)["total_tokens"] for x in (ds / "manifest.jsonl").read_text().splitlines())
    with pytest.raises(SynthError, match="run `synth splits"):
        ConversationDataset(ds, stage=tokens[1])
    write_splits(ds, [tokens[1], tokens[-1]], bands=True)
    write_splits(ds, [tokens[1], tokens[-1]])
    assert len(ConversationDataset(ds, stage=tokens[1]).conversations) == 2
    assert len(ConversationDataset(ds, stage=tokens[-1]).conversations) == 4
    assert len(ConversationDataset(ds, stage=tokens[-1], bands=True).conversations) == 2
