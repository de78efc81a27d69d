import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import run_cli


def test_llama_omni_export(tmp_path, example_dataset):
    out = tmp_path / "train.json"
    res = run_cli("export", str(example_dataset), str(out), "--to", "llama-omni")
    assert res.returncode == 0, res.stderr
    entries = json.loads(out.read_text())
    assert len(entries) == 18
    for e in entries:
        assert Path(e["speech"]).is_file()
        assert e["conversations"][0] == {"from": "human", "value": "<speech>"}
        assert e["conversations"][1]["from"] == "gpt" and e["conversations"][1]["value"]
    first = [e for e in entries if e["conversation_id"] == "bakery_morning"]
    assert [e["turn_number"] for e in first] == [0, 1, 2, 3]
    turn1 = (example_dataset / "conversations" / "bakery_morning" / "turn_1.txt").read_text().strip()
    assert first[0]["conversations"][1]["value"] == turn1  # chat: the reply is the next turn
    rel = tmp_path / "rel.json"
    run_cli("export", str(example_dataset), str(rel), "--to", "llama-omni", "--relative")
    assert all((example_dataset / e["speech"]).is_file() for e in json.loads(rel.read_text()))


def test_hf_export_loads_from_disk(tmp_path, example_dataset):
    import datasets

    out = tmp_path / "hf"
    res = run_cli("export", str(example_dataset), str(out), "--to", "hf")
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(out))
    assert len(ds) == 18
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
    row = ds.remove_columns("audio")[0]
    assert row["conversation_id"] == "bakery_morning" and row["turn_number"] == 0
    # datasets decodes Audio with torchcodec where installed; the stored bytes are a real WAV:
    raw = ds.cast_column("audio", datasets.Audio(decode=False))[0]["audio"]
    audio, rate = sf.read(io.BytesIO(raw["bytes"]), dtype="float32")
    assert rate == 16000 and abs(len(audio) / rate - row["duration_sec"]) < 1e-3
    assert np.abs(audio).max() > 0.05
    assert row["audio_path"] == "conversations/bakery_morning/turn_0.wav"  # the folder is kept


def test_hf_export_undecoded_reads_rows_without_torchcodec(tmp_path, example_dataset):
    """`ds[0]` on a machine without torchcodec (this one): the audio stays bytes + path."""
    import importlib.util

    import datasets

    assert importlib.util.find_spec("torchcodec") is None  # the point of the option
    out = tmp_path / "hf"
    res = run_cli("export", str(example_dataset), str(out), "--to", "hf", "--undecoded")
    assert res.returncode == 0, res.stderr
    row = datasets.load_from_disk(str(out))[0]
    assert row["audio_path"] == f"conversations/{row['conversation_id']}/turn_{row['turn_number']}.wav"
    audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
    on_disk, _ = sf.read(str(example_dataset / row["audio_path"]), dtype="float32")
    assert rate == 16000 and np.array_equal(audio, on_disk)


def test_export_of_a_broken_dataset_names_the_file(tmp_path, example_dataset):
    ds = tmp_path / "ds"
    shutil.copytree(example_dataset, ds)
    (ds / "conversations" / "lost_umbrella" / "samples.jsonl").unlink()
    res = run_cli("export", str(ds), str(tmp_path / "x.json"), "--to", "llama-omni")
    assert res.returncode == 1 and "lost_umbrella/samples.jsonl: missing" in res.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("gzip", [False, True])
def test_lhotse_export_loads_and_validates_with_lhotse(tmp_path, example_dataset, gzip):
    import lhotse
    from lhotse.qa import validate_recordings_and_supervisions

    out = tmp_path / "lhotse"
    res = run_cli("export", str(example_dataset), str(out), "--to", "lhotse", *(["--gzip"] if gzip else []))
    assert res.returncode == 0, res.stderr
    suffix = ".jsonl.gz" if gzip else ".jsonl"
    recordings = lhotse.load_manifest(out / f"recordings{suffix}")
    supervisions = lhotse.load_manifest(out / f"supervisions{suffix}")
    cuts = lhotse.CutSet.from_file(out / f"cuts{suffix}").to_eager()
    assert isinstance(recordings, lhotse.RecordingSet) and isinstance(supervisions, lhotse.SupervisionSet)
    validate_recordings_and_supervisions(recordings, supervisions)
    lhotse.validate(cuts, read_data=True)
    assert len(cuts) == 18
    cut = cuts["bakery_morning-turn_1"]
    sup = cut.supervisions[0]
    assert (
        sup.text == (example_dataset / "conversations" / "bakery_morning" / "turn_1.txt").read_text().strip()
    )
    assert sup.speaker == "B" and sup.custom["conversation_id"] == "bakery_morning"
    assert sup.custom["turn_number"] == 1 and sup.custom["voice"]
    audio = cut.load_audio()[0]
    on_disk, _ = sf.read(
        str(example_dataset / "conversations" / "bakery_morning" / "turn_1.wav"), dtype="float32"
    )
    np.testing.assert_allclose(audio, on_disk, atol=1e-6)
    words = [a.symbol for a in sup.alignment["word"]]
    assert " ".join(words) == sup.text
    assert all(a.start >= 0 and a.end <= cut.duration + 1e-6 for a in sup.alignment["word"])


def test_lhotse_conversations_level_on_the_timeline(tmp_path, duplex_dataset, example_dataset):
    """One two-channel recording and MultiCut per conversation; each turn a supervision on its
    speaker's channel at its timeline place, its words aligned within the recording. A dataset
    without conversation.wav gets one mixed into the export."""
    import lhotse
    from lhotse.qa import validate_recordings_and_supervisions

    for dataset in (duplex_dataset, example_dataset):
        out = tmp_path / dataset.name / "lhotse"
        res = run_cli("export", str(dataset), str(out), "--to", "lhotse", "--conversations")
        assert res.returncode == 0, res.stderr
        recordings = lhotse.load_manifest(out / "recordings.jsonl")
        supervisions = lhotse.load_manifest(out / "supervisions.jsonl")
        validate_recordings_and_supervisions(recordings, supervisions)
        cuts = lhotse.CutSet.from_file(out / "cuts.jsonl").to_eager()
        lhotse.validate(cuts, read_data=True)
        for cut in cuts:
            meta = json.loads((dataset / "conversations" / cut.id / "metadata.json").read_text())
            assert type(cut).__name__ == "MultiCut" and cut.num_channels == 2
            audio = cut.load_audio()
            for sup, turn in zip(cut.supervisions, meta["turns"]):
                assert sup.start == turn["start_time"] and sup.text == turn["text"]
                first = sup.alignment["word"][0]
                assert sup.start <= first.start <= sup.end
                # the supervision's channel holds the turn's audio at its place
                wav, _ = sf.read(
                    str(dataset / "conversations" / cut.id / turn["audio_file"]), dtype="float32"
                )
                s0 = round(sup.start * 16000)
                seg = audio[sup.channel, s0 : s0 + len(wav)]
                channels = meta.get("channels") or [meta["speakers"][:1], meta["speakers"][1:]]
                alone = np.ones(len(wav), bool)  # where nothing else is on this channel
                for o in [t for t in meta["turns"] if t is not turn] + meta.get("events", []):
                    if o["speaker"] in channels[sup.channel]:
                        a = round(o.get("start_time", o.get("start")) * 16000) - s0
                        b = round(o.get("end_time", o.get("end")) * 16000) - s0
                        alone[max(a, 0) : max(b, 0)] = False
                assert alone.mean() > 0.5
                np.testing.assert_allclose(seg[alone], wav[alone], atol=1e-4)


def _moshi_chunks(jsonl: Path, duration_sec: float):
    """moshi-finetune's own reading path (finetune/data/dataset.py get_dataset_iterator and
    interleaver.py InterleavedTokenizer.__call__): sphn reads the JSONL and its stereo WAVs in
    chunks, then the alignments come from the JSON beside the WAV, cut to the chunk by a binary
    search on word starts, and the interleaver keeps the main speaker's words."""
    import os

    import sphn

    def dicho(alignment, val, i=0, j=None):  # as in finetune/data/interleaver.py
        if j is None:
            j = len(alignment)
        if i == j:
            return i
        k = (i + j) // 2
        if alignment[k][1][0] < val:
            return dicho(alignment, val, k + 1, j)
        return dicho(alignment, val, i, k)

    dataset = sphn.dataset_jsonl(
        str(jsonl), duration_sec=duration_sec, num_threads=2, sample_rate=24000, pad_last_segment=True
    ).seq(skip=0, step_by=1)
    for sample in dataset:
        wav = sample["data"][..., : sample["unpadded_len"]]
        start_sec = sample["start_time_sec"]
        with open(os.path.splitext(sample["path"])[0] + ".json") as f:
            alignments = json.load(f)["alignments"]
        a, b = dicho(alignments, start_sec), dicho(alignments, start_sec + duration_sec)
        chunk = [(w[0], (w[1][0] - start_sec, w[1][1] - start_sec), w[2]) for w in alignments[a:b]]
        main_only = [w for w in chunk if w[2] == "SPEAKER_MAIN"]  # Interleaver(keep_main_only=True)
        yield sample["path"], start_sec, wav, chunk, main_only


def test_moshi_export_reads_through_moshi_finetunes_loader(tmp_path, duplex_dataset):
    out = tmp_path / "moshi"
    res = run_cli("export", str(duplex_dataset), str(out), "--to", "moshi")
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert {x["path"] for x in lines} == {"data_stereo/duo.wav", "data_stereo/trio.wav"}
    seen_main = 0
    for path, start, wav, _chunk, main_only in _moshi_chunks(out / "data.jsonl", 5.0):
        cid = Path(path).stem
        meta = json.loads((duplex_dataset / "conversations" / cid / "metadata.json").read_text())
        main = meta["main_speaker"]
        assert wav.shape[0] == 2
        expected = [
            w["word"] for t in meta["turns"] if t["speaker"] == main for w in t["words"]
            if start <= w["start"] < start + 5.0
        ]  # fmt: skip
        expected += [
            e["text"]
            for e in meta.get("events", [])
            if e["speaker"] == main and start <= e["start"] < start + 5
        ]
        assert sorted(w[0] for w in main_only) == sorted(expected)
        for _word, (s, e), _ in main_only:  # the model's side speaks where its words are
            seg = wav[0, int(s * 24000) : int(e * 24000)]
            if e - s > 0.1:
                assert np.sqrt(np.mean(seg**2)) > 0.01
                seen_main += 1
    assert seen_main > 10
    # the stereo file is the conversation audio resampled (same main speaker): channel 0 matches
    conv, _ = sf.read(str(duplex_dataset / "conversations/duo/conversation.wav"), dtype="float32")
    moshi, rate = sf.read(str(out / "data_stereo/duo.wav"), dtype="float32")
    assert rate == 24000 and abs(moshi.shape[0] - conv.shape[0] * 1.5) <= 2
    assert [x["duration"] for x in lines if x["path"] == "data_stereo/duo.wav"] == [moshi.shape[0] / 24000]


def test_moshi_main_speaker_option_and_missing_timings(tmp_path, duplex_dataset):
    out = tmp_path / "moshi"
    res = run_cli("export", str(duplex_dataset), str(out), "--to", "moshi", "--main-speaker", "user")
    assert res.returncode == 0, res.stderr
    duo = json.loads((out / "data_stereo/duo.json").read_text())["alignments"]
    user_words = {w["word"] for t in json.loads((duplex_dataset / "conversations/duo/metadata.json").read_text())["turns"]
                  if t["speaker"] == "user" for w in t["words"]}  # fmt: skip
    assert {w[0] for w in duo if w[2] == "SPEAKER_MAIN"} >= user_words
    assert {w[2] for w in duo} == {"SPEAKER_MAIN", "SPEAKER_assistant"}
    assert [w[1][0] for w in duo] == sorted(w[1][0] for w in duo)
    # a dataset without word timings: the export says which conversation and what to do
    ds = tmp_path / "old"
    shutil.copytree(duplex_dataset, ds)
    meta_path = ds / "conversations/duo/metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["turns"][0]["words"]
    meta_path.write_text(json.dumps(meta))
    res = run_cli("export", str(ds), str(tmp_path / "m2"), "--to", "moshi")
    assert res.returncode == 1 and "duo: turn 0 has no word timings" in res.stderr


def test_hf_rows_carry_word_timings_and_the_conversation_audio(tmp_path, duplex_dataset):
    import datasets

    out = tmp_path / "hf"
    res = run_cli("export", str(duplex_dataset), str(out), "--to", "hf", "--undecoded")
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(out))
    for row in ds:
        meta = json.loads(
            (duplex_dataset / "conversations" / row["conversation_id"] / "metadata.json").read_text()
        )
        turn = meta["turns"][row["turn_number"]]
        assert " ".join(w["word"] for w in row["words"]) == row["text"]
        assert row["words"][0]["start"] == pytest.approx(
            turn["words"][0]["start"] - turn["start_time"], abs=1e-6
        )
        assert row["conversation_audio_path"] == f"conversations/{row['conversation_id']}/conversation.wav"
        assert turn["speaker"] in meta["channels"][row["channel"]]
