"""The dataset card (synth.export.card) the hf, lhotse and lhotse-shar exports write, and the
per-turn quality scores they carry: read back by `datasets` (the folder, the card's YAML, its
config and features), huggingface_hub's DatasetCard and lhotse's own readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from synth.export.card import hub_licence, model_licence, size_category
from tests.helpers import EXAMPLES, run_cli


@pytest.fixture(scope="module")
def scored_dataset(tmp_path_factory) -> Path:
    """Two conversations of the examples, every turn scored (signal and intelligibility)."""
    out = tmp_path_factory.mktemp("scored") / "ds"
    res = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--limit", "2",
        "--noise-scale", "0", "--noise-w", "0", "--score", "signal,intelligibility",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    return out


def _blocks(root: Path) -> dict[tuple[str, int], dict]:
    out = {}
    for line in open(root / "manifest.jsonl"):
        cid = json.loads(line)["conversation_id"]
        meta = json.loads((root / "conversations" / cid / "metadata.json").read_text())
        out.update({(cid, t["turn_id"]): t["quality"] for t in meta["turns"]})
    return out


def _front(card: Path) -> tuple[dict, str]:
    text = card.read_text()
    assert text.startswith("---\n")
    head, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(head), body


def test_size_categories_licences_and_models():
    import datasets

    hub_sizes = json.loads(
        (Path(datasets.__file__).parent / "utils" / "resources" / "size_categories.json").read_text()
    )
    cases = {
        0: "n<1K",
        999: "n<1K",
        1000: "1K<n<10K",
        99_999: "10K<n<100K",
        10**6: "1M<n<10M",
        10**13: "n>1T",
    }
    for rows, name in cases.items():
        assert size_category(rows) == name and name in hub_sizes
    assert hub_licence("CC0") == "cc0-1.0"
    assert hub_licence("Creative Commons Attribution-ShareAlike 4.0") == "cc-by-sa-4.0"
    assert hub_licence("CC BY-NC-SA 4.0") == "cc-by-nc-sa-4.0"
    assert hub_licence("See URL") is None
    assert model_licence({"engine": "kokoro", "model": "kokoro-v1.0.onnx"}).hub == "apache-2.0"
    assert model_licence({"engine": "coqui", "model": "tts_models/en/vctk/vits"}).hub == "unknown"


@pytest.mark.slow
def test_hf_export_card_loads_with_datasets_and_carries_the_scores(scored_dataset, tmp_path):
    import datasets
    from huggingface_hub import DatasetCard

    out = tmp_path / "hf"
    res = run_cli("export", str(scored_dataset), str(out), "--to", "hf")
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(out))  # the card beside the arrow files changes nothing
    front, body = _front(out / "README.md")
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == front["license"] == "cc0-1.0"  # the embedded voice's MODEL_CARD
    assert front["language"] == ["en"] and front["size_categories"] == ["n<1K"]
    assert "text-to-speech" in front["task_categories"]
    languages = json.loads(
        (Path(datasets.__file__).parent / "utils" / "resources" / "languages.json").read_text()
    )
    assert all(code in languages for code in front["language"])
    assert datasets.Features._from_yaml_list(front["dataset_info"]["features"]) == ds.features
    assert front["dataset_info"]["splits"] == [{"name": "train", "num_examples": len(ds)}]
    (config,) = front["configs"]
    files = {f["split"]: str(out / f["path"]) for f in config["data_files"]}
    again = datasets.load_dataset("arrow", data_files=files, split="train", cache_dir=str(tmp_path / "c"))
    assert len(again) == len(ds) and again.features == ds.features

    blocks = _blocks(scored_dataset)
    manifest = [json.loads(line) for line in open(scored_dataset / "manifest.jsonl")]
    turns = sum(m["num_turns"] for m in manifest)
    hours = sum(m["duration_sec"] for m in manifest) / 3600
    assert f"| conversations | {len(manifest)} |" in body and f"| turns | {turns} |" in body
    assert f"| hours (conversation / speech) | {hours:.3f} /" in body
    assert "## Quality scores per turn" in body and "| wer (higher is worse) |" in body
    wers = [b["wer"] for b in blocks.values()]
    assert f"| wer (higher is worse) | {len(wers)} | {sum(wers) / len(wers):.4g} |" in body
    assert len(ds) == len(blocks)
    for row in ds.select_columns(["conversation_id", "turn_number", "quality"]):
        stored = blocks[(row["conversation_id"], row["turn_number"])]
        q = row["quality"]
        assert q["scorers"] == stored["scorers"]
        for key in ("wer", "cer", "asr_text", "loudness_db", "words_per_sec", "clipped"):
            assert q[key] == pytest.approx(stored[key])


def test_hf_export_of_an_unscored_dataset_has_no_quality_column(example_dataset, tmp_path):
    import datasets

    out = tmp_path / "hf"
    assert run_cli("export", str(example_dataset), str(out), "--to", "hf").returncode == 0
    ds = datasets.load_from_disk(str(out))
    assert "quality" not in ds.features
    front, body = _front(out / "README.md")
    assert "## Quality scores per turn" not in body and front["license"] == "cc0-1.0"


@pytest.mark.slow
def test_lhotse_exports_carry_the_scores_and_a_card(scored_dataset, tmp_path):
    import lhotse

    blocks = _blocks(scored_dataset)
    shar = tmp_path / "shar"
    res = run_cli("export", str(scored_dataset), str(shar), "--to", "lhotse-shar", "--cuts-per-shard", "4")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in shar.iterdir()) == ["README.md", "shards"]
    cuts = list(lhotse.CutSet.from_shar(in_dir=shar / "shards"))
    assert len(cuts) == len(blocks)
    for cut in cuts:
        key = (cut.custom["conversation_id"], cut.custom["turn_number"])
        assert cut.supervisions[0].custom["quality"] == blocks[key] == cut.custom["quality"]
        assert cut.load_audio().shape[1] == cut.recording.num_samples
    front, body = _front(shar / "README.md")
    assert front["license"] == "cc0-1.0" and front["size_categories"] == ["n<1K"]
    assert f"{len(cuts)} cut(s)" in body and 'CutSet.from_shar(in_dir="path/to/this/folder/shards")' in body

    plain = tmp_path / "lhotse"
    assert run_cli("export", str(scored_dataset), str(plain), "--to", "lhotse").returncode == 0
    sups = lhotse.load_manifest(plain / "supervisions.jsonl")
    assert {
        (s.custom["conversation_id"], s.custom["turn_number"]): s.custom["quality"] for s in sups
    } == blocks
    assert _front(plain / "README.md")[0]["license"] == "cc0-1.0"
    # an output of the flat layout earlier synths wrote is replaced
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "cuts.000000.jsonl.gz").write_bytes(b"")
    assert run_cli("export", str(scored_dataset), str(flat), "--to", "lhotse-shar").returncode == 0
    assert sorted(p.name for p in flat.iterdir()) == ["README.md", "shards"]
