"""`synth export --to lhotse-shar`: read back by lhotse's own Shar reader (`CutSet.from_shar`)
and batched by its DynamicBucketingSampler; every turn, its audio, text, words and conversation
fields come back; shards of the stated size; a killed export resumes from its finished shards."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import run_cli


def _turns(dataset: Path) -> dict[str, tuple[dict, dict, dict]]:
    """cut id -> (metadata turn, sample, metadata) for every turn of a dataset."""
    out = {}
    for line in (dataset / "manifest.jsonl").read_text().splitlines():
        cid = json.loads(line)["conversation_id"]
        folder = dataset / "conversations" / cid
        meta = json.loads((folder / "metadata.json").read_text())
        samples = [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]
        for turn, sample in zip(meta["turns"], samples):
            out[f"{cid}-turn_{turn['turn_id']}"] = (turn, sample, meta)
    return out


def _check_read_back(dataset: Path, out: Path, per_shard: int) -> None:
    """Every turn of `dataset` in the Shar folder `out`, read by lhotse: audio sample for sample,
    text, words, the conversation fields, in manifest order, `per_shard` cuts a shard."""
    import lhotse

    expected = _turns(dataset)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "shards"]  # the card outside the shards
    out = out / "shards"
    names = sorted(p.name for p in out.iterdir())
    shards = -(-len(expected) // per_shard)
    assert names == sorted(
        [f"cuts.{i:06d}.jsonl.gz" for i in range(shards)] + [f"recording.{i:06d}.tar" for i in range(shards)]
    )
    for i in range(shards):
        with gzip.open(out / f"cuts.{i:06d}.jsonl.gz", "rt") as fh:
            assert len(fh.read().splitlines()) == min(per_shard, len(expected) - i * per_shard)
    cuts = list(lhotse.CutSet.from_shar(in_dir=out))
    assert [c.id for c in cuts] == list(expected)  # every turn, once, in order
    for cut in cuts:
        turn, sample, meta = expected[cut.id]
        cid = meta["conversation_id"]
        wav, rate = sf.read(str(dataset / "conversations" / cid / turn["audio_file"]), dtype="float32")
        audio = cut.load_audio()
        assert cut.sampling_rate == rate == 16000 and audio.shape == (1, len(wav))
        np.testing.assert_array_equal(audio[0], wav)  # lossless
        sup = cut.supervisions[0]
        assert (
            sup.text
            == turn["text"]
            == (dataset / "conversations" / cid / turn["transcript_file"]).read_text().strip()
        )
        assert sup.speaker == turn["speaker"]
        words = sup.alignment["word"]
        assert [w.symbol for w in words] == [w["word"] for w in turn["words"]]
        for got, want in zip(words, turn["words"]):
            assert got.start == pytest.approx(want["start"] - turn["start_time"], abs=1e-6)
            assert got.end == pytest.approx(want["end"] - turn["start_time"], abs=1e-6)
            assert 0 <= got.start <= got.end <= cut.duration + 1e-6
        fields = {
            "conversation_id": cid,
            "turn_number": turn["turn_id"],
            "speaker": turn["speaker"],
            "speaker_id": sample["speaker_id"],
            "voice": turn["voice"],
            "target": sample["target"],
            "num_turns": meta["total_turns"],
            "conversation_start": turn["start_time"],
            "conversation_end": turn["end_time"],
        }
        for key, value in fields.items():
            assert cut.custom[key] == value == sup.custom[key], key
        n = turn["turn_id"]
        reply = sample["target"] == "reply"
        assert cut.custom["target_text"] == meta["turns"][n + 1 if reply else n]["text"]


@pytest.mark.slow
def test_shar_export_reads_back_through_lhotse(tmp_path, example_dataset, duplex_dataset):
    import lhotse
    from lhotse.dataset import DynamicBucketingSampler

    out = tmp_path / "shar"
    res = run_cli("export", str(example_dataset), str(out), "--to", "lhotse-shar", "--cuts-per-shard", "5")
    assert res.returncode == 0, res.stderr
    assert "exported 18 cut(s)" in res.stdout
    _check_read_back(example_dataset, out, 5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shar"]  # nothing left beside it

    # lhotse's dynamic bucketing sampler batches it: every cut once, batches within the budget
    cuts = lhotse.CutSet.from_shar(in_dir=out / "shards")
    sampler = DynamicBucketingSampler(cuts, max_duration=20.0, num_buckets=2, shuffle=True, seed=1)
    seen = []
    for batch in sampler:
        assert sum(c.duration for c in batch) <= 20.0 or len(batch) == 1
        seen += [c.id for c in batch]
    assert sorted(seen) == sorted(_turns(example_dataset))

    # full-duplex data (overlaps, backchannels, conversation audio) in WAV, into the same folder:
    # the previous export is replaced whole
    res = run_cli("export", str(duplex_dataset), str(out), "--to", "lhotse-shar", "--cuts-per-shard", "3",
                  "--shar-audio", "wav")  # fmt: skip
    assert res.returncode == 0, res.stderr
    _check_read_back(duplex_dataset, out, 3)


@pytest.mark.slow
def test_shar_export_refuses_what_it_must_not_replace(tmp_path, example_dataset):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("my own file\n")
    res = run_cli("export", str(example_dataset), str(keep), "--to", "lhotse-shar")
    assert res.returncode == 1 and "holds files a lhotse-shar export does not write (notes.txt)" in res.stderr
    assert sorted(p.name for p in keep.iterdir()) == ["notes.txt"]
    res = run_cli(
        "export", str(example_dataset), str(tmp_path / "s"), "--to", "lhotse-shar", "--cuts-per-shard", "0"
    )
    assert res.returncode == 2 and "--cuts-per-shard 0: must be at least 1" in res.stderr
    res = run_cli(
        "export", str(example_dataset), str(tmp_path / "s"), "--to", "lhotse-shar", "--shar-audio", "mp3"
    )
    assert res.returncode == 2 and "--shar-audio 'mp3'" in res.stderr
    assert not (tmp_path / "s").exists()


RUN = """
import json, sys
from pathlib import Path
from synth.export import EXPORTS
from synth.export.shar import SharOptions
summary = EXPORTS["lhotse-shar"].run(Path(sys.argv[1]), Path(sys.argv[2]), None, SharOptions(cuts_per_shard=1))
print(json.dumps({"count": summary.count, "details": summary.details, "notes": summary.notes}))
"""


def _journaled(journal: Path) -> int:
    try:
        return sum(1 for x in journal.read_text().splitlines() if x.endswith("}") and '"digest": "' in x)
    except FileNotFoundError:
        return 0


@pytest.mark.faults
@pytest.mark.slow
def test_shar_export_killed_resumes_from_its_finished_shards(tmp_path, example_dataset):
    """kill -9 once some shards are finished; the rerun keeps those whose content is unchanged,
    rewrites one whose conversation changed meanwhile, and the result reads back complete."""
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    out = tmp_path / "shar"
    journal = tmp_path / ".shar.synth-export" / "journal.jsonl"
    p = subprocess.Popen([sys.executable, "-c", RUN, str(ds), str(out)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _journaled(journal) < 6 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    finished = _journaled(journal)
    assert 6 <= finished < 18 and not out.exists()  # killed mid-way: no export yet
    # the first conversation changes before the rerun: its shards must not be reused
    meta_path = ds / "conversations/bakery_morning/metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["turns"][0]["text"] = "Good morning! Is any of the rye bread from yesterday left?"
    meta["turns"][0]["words"] = [
        {**w, "word": word} for w, word in zip(meta["turns"][0]["words"], meta["turns"][0]["text"].split())
    ][: len(meta["turns"][0]["text"].split())]
    meta_path.write_text(json.dumps(meta))
    res = subprocess.run(
        [sys.executable, "-c", RUN, str(ds), str(out)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["count"] == 18 and summary["details"]["shards"] == 18
    assert summary["details"]["reused_shards"] == finished - 1  # all but the changed turn's shard
    assert "resumed" in summary["notes"][0]
    (ds / "conversations/bakery_morning/turn_0.txt").write_text(meta["turns"][0]["text"] + "\n")
    _check_read_back(ds, out, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "shar"]  # the staging folder is gone
