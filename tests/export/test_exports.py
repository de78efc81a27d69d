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
                channel = audio[sup.channel]
                if cut.sampling_rate != 16000:  # full band: made from the engine's audio, not the turns
                    import soxr

                    channel = soxr.resample(channel, cut.sampling_rate, 16000)
                s0 = round(sup.start * 16000)
                seg = channel[s0 : s0 + len(wav)]
                channels = meta.get("channels") or [meta["speakers"][:1], meta["speakers"][1:]]
                alone = np.ones(len(wav), bool)  # where nothing else is on this channel
                for o in [t for t in meta["turns"] if t is not turn] + meta.get("events", []):
                    if o["speaker"] in channels[sup.channel]:
                        a = round(o.get("start_time", o.get("start")) * 16000) - s0
                        b = round(o.get("end_time", o.get("end")) * 16000) - s0
                        alone[max(a, 0) : max(b, 0)] = False
                assert alone.mean() > 0.5
                if cut.sampling_rate == 16000:  # copied from the turns, sample for sample
                    np.testing.assert_allclose(seg[alone], wav[alone], atol=1e-4)
                else:
                    assert np.corrcoef(seg[alone], wav[alone])[0, 1] > 0.95


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
    # the stereo file is the conversation audio at 24 kHz (same main speaker): its length matches
    conv, conv_rate = sf.read(str(duplex_dataset / "conversations/duo/conversation.wav"), dtype="float32")
    moshi, rate = sf.read(str(out / "data_stereo/duo.wav"), dtype="float32")
    assert rate == 24000 and abs(moshi.shape[0] - conv.shape[0] * 24000 / conv_rate) <= 2
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


# -- target kinds ------------------------------------------------------------------------------
def _samples_of(dataset: Path, cid: str) -> list[dict]:
    lines = (dataset / "conversations" / cid / "samples.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_llama_omni_and_hf_carry_the_target_kind(tmp_path, example_dataset):
    """Every item says whether its target is the reply or the turn's own transcript, as its
    sample does; the hf rows have it as `target_kind` beside the target text."""
    import datasets

    out = tmp_path / "train.json"
    assert run_cli("export", str(example_dataset), str(out), "--to", "llama-omni").returncode == 0
    items = json.loads(out.read_text())
    res = run_cli("export", str(example_dataset), str(tmp_path / "hf"), "--to", "hf", "--undecoded")
    assert res.returncode == 0, res.stderr
    rows = datasets.load_from_disk(str(tmp_path / "hf")).remove_columns("audio")
    assert len(items) == len(rows) == 18
    for item, row in zip(items, rows):
        sample = _samples_of(example_dataset, item["conversation_id"])[item["turn_number"]]
        assert item["target"] == row["target_kind"] == sample["target"]
        assert item["conversations"][1]["value"] == row["target"]
        meta = json.loads(
            (example_dataset / "conversations" / item["conversation_id"] / "metadata.json").read_text()
        )
        n = item["turn_number"]
        expected = meta["turns"][n + 1]["text"] if sample["target"] == "reply" else meta["turns"][n]["text"]
        assert item["conversations"][1]["value"] == expected
    kinds = [i["target"] for i in items]
    assert kinds.count("transcript") == 4 and kinds.count("reply") == 14  # each conversation's last turn


# -- turns over Whisper's 30 s window ----------------------------------------------------------
STORY = [
    "The old lighthouse on the northern cliff had been dark for almost twenty years.",
    "Nobody in the village remembered exactly why the keeper had left so suddenly.",
    "Some said a storm had broken the great lamp, and others blamed the council.",
    "Last spring a retired engineer bought the building for a single silver coin.",
    "She spent the summer scraping rust from the stairs and replacing the windows.",
    "By autumn the children were climbing the hill every evening to watch her work.",
    "When the new lens finally arrived, it came on a fishing boat wrapped in blankets.",
    "Fitting it took three days, two broken wrenches, and a great deal of patience.",
    "On the first clear night of winter, she climbed to the top and flipped the switch.",
    "The beam swept across the water, and every boat in the harbour sounded its horn.",
    "Now the lighthouse shines again, and the keeper sleeps in the room below the lamp.",
    "She says it is the quietest job she has ever had, except on nights with fog.",
]


@pytest.fixture(scope="module")
def long_turn_dataset(tmp_path_factory) -> Path:
    """A dialog whose second turn runs well past 30 s, made with rate counting (which allows it)."""
    from tests.helpers import write_jsonl

    tmp = tmp_path_factory.mktemp("long")
    dialogs = write_jsonl(
        tmp / "d.jsonl",
        [
            {
                "conversation_id": "story",
                "turns": [
                    {"speaker": "A", "text": "What happened to the lighthouse?"},
                    {"speaker": "B", "text": " ".join(STORY)},
                    {"speaker": "A", "text": "That is a lovely ending."},
                    {"speaker": "B", "text": "It really is."},
                ],
            }
        ],
    )
    out = tmp / "ds"
    res = run_cli(
        "generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--speech-profile", "rate:10",
        "--noise-scale", "0", "--noise-w", "0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "conversations/story/metadata.json").read_text())
    assert meta["turns"][1]["duration_sec"] > 35  # the case under test
    return out


@pytest.mark.slow
def test_llama_omni_refuses_or_drops_a_turn_over_30_s(tmp_path, long_turn_dataset):
    from synth.export import EXPORTS
    from synth.export.llama_omni import LlamaOmniOptions

    out = tmp_path / "train.json"
    res = run_cli("export", str(long_turn_dataset), str(out), "--to", "llama-omni")
    assert res.returncode == 1
    assert "story turn 1 (" in res.stderr and "longer than 30 s" in res.stderr, res.stderr
    assert "--long-turns drop" in res.stderr and "--long-turns split" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written, nothing left

    res = run_cli("export", str(long_turn_dataset), str(out), "--to", "llama-omni", "--long-turns", "drop")
    assert res.returncode == 0, res.stderr
    assert [i["id"] for i in json.loads(out.read_text())] == ["story_turn_0", "story_turn_2", "story_turn_3"]
    summary = EXPORTS["llama-omni"].run(long_turn_dataset, out, None, LlamaOmniOptions(long_turns="drop"))
    assert summary.count == 3 and summary.details["dropped_turns"] == 1
    assert "story turn 1" in summary.notes[0]

    res = run_cli("export", str(long_turn_dataset), str(out), "--to", "llama-omni", "--long-turns", "cut")
    assert res.returncode == 2 and "--long-turns 'cut'" in res.stderr


def _offset(whole: np.ndarray, part: np.ndarray) -> int:
    """Where `part` lies in `whole`, sample for sample (anchored on its loudest sample)."""
    j = int(np.argmax(np.abs(part)))
    for i in np.flatnonzero(whole == part[j]) - j:
        if 0 <= i <= len(whole) - len(part) and np.array_equal(whole[i : i + len(part)], part):
            return int(i)
    raise AssertionError("the piece is not a slice of the turn's audio")


@pytest.mark.slow
def test_llama_omni_splits_a_long_turn_at_sentence_ends(tmp_path, long_turn_dataset):
    """Pieces of at most 30 s, cut at sentence ends where the speaker paused: each is a slice of
    the turn's audio, no word is cut (every word lies inside a piece, what is left out between
    pieces is silence, Whisper hears each piece's own words), and LLaMA-Omni's loading path
    (whisper.pad_or_trim to 30 s, log-mel) keeps every sample. The pieces carry the turn in order;
    the last keeps the turn's reply target."""
    import whisper

    from synth.asr.recognizer import Recognizer
    from synth.asr.wer import wer
    from synth.export import EXPORTS
    from synth.export.llama_omni import LlamaOmniOptions
    from synth.export.pieces import sentence_end

    ds = long_turn_dataset
    out = tmp_path / "train.json"
    res = run_cli("export", str(ds), str(out), "--to", "llama-omni", "--long-turns", "split")
    assert res.returncode == 0, res.stderr
    items = json.loads(out.read_text())
    meta = json.loads((ds / "conversations/story/metadata.json").read_text())
    turn = meta["turns"][1]
    pieces = [i for i in items if i["turn_number"] == 1]
    assert [i["id"] for i in items] == [
        "story_turn_0",
        *(p["id"] for p in pieces),
        "story_turn_2",
        "story_turn_3",
    ]
    assert len(pieces) >= 2 and [p["piece"] for p in pieces] == list(range(len(pieces)))
    assert {p["pieces"] for p in pieces} == {len(pieces)}
    whole, _ = sf.read(str(ds / "conversations/story/turn_1.wav"), dtype="int16")
    recognizer = Recognizer()
    texts, spans = [], []
    for k, p in enumerate(pieces):
        audio, rate = sf.read(p["speech"], dtype="int16")
        assert rate == 16000 and len(audio) <= whisper.audio.N_SAMPLES  # at most 30 s
        speech = audio.astype(np.float32) / 32768
        padded = whisper.pad_or_trim(speech)  # LLaMA-Omni's loading: nothing trimmed
        assert np.array_equal(padded[: len(speech)], speech)
        assert whisper.log_mel_spectrogram(padded, n_mels=128).shape == (128, 3000)
        text = Path(p["speech"]).with_suffix(".txt").read_text().strip()
        texts.append(text)
        assert k == len(pieces) - 1 or sentence_end(text.split()[-1])
        assert wer(text, recognizer.transcribe(speech).text) < 0.2, text
        start = _offset(whole, audio)
        spans.append((start, start + len(audio)))
        kind, target = p["target"], p["conversations"][1]["value"]
        if k < len(pieces) - 1:
            assert (kind, target) == ("transcript", text)
        else:
            assert (kind, target) == ("reply", meta["turns"][2]["text"])
    assert " ".join(texts) == turn["text"] == " ".join(STORY)
    assert spans[0][0] == 0 and spans[-1][1] == len(whole)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # in order, never overlapping
    for w in turn["words"]:  # every word inside one piece
        s, e = (
            round((w["start"] - turn["start_time"]) * 16000),
            round((w["end"] - turn["start_time"]) * 16000),
        )
        assert any(a <= s and e <= b for a, b in spans), w
    level = np.sqrt(np.mean((whole.astype(np.float64) / 32768) ** 2))
    for a, b in zip(spans, spans[1:]):  # left out between pieces: the pause
        gap = whole[a[1] : b[0]].astype(np.float64) / 32768
        assert gap.size == 0 or np.sqrt(np.mean(gap**2)) < 0.1 * level
    assert items[0]["conversations"][1]["value"] == turn["text"]  # the turn before: the whole reply

    # the summary says it; a second export leaves one pieces folder, the new one
    summary = EXPORTS["llama-omni"].run(ds, out, None, LlamaOmniOptions(long_turns="split"))
    assert summary.details["split_turns"] == 1 and summary.details["pieces"] == len(pieces)
    folders = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(folders) == 1 and folders[0].name.startswith("train.json.pieces-")
    assert all(Path(i["speech"]).is_file() for i in json.loads(out.read_text()))


# -- moshi: full band --------------------------------------------------------------------------
def _share_above(audio: np.ndarray, rate: int, cut: float = 8000.0) -> float:
    """The share of a signal's energy above `cut` Hz (all channels together)."""
    x = np.asarray(audio, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(x if x.ndim == 2 else x[:, None], axis=0)) ** 2
    freqs = np.fft.rfftfreq(x.shape[0], 1 / rate)
    return float(spectrum[freqs > cut].sum() / spectrum.sum())


def _native_conversation_wav(engine, meta: dict, path: Path, rate: int) -> None:
    """conversation.wav as full-band generation makes it: every turn spoken by the embedded Piper
    engine at its native rate, resampled once to `rate`, at its start on its speaker's channel.
    (The voices are bright ones: joe-vt1.20 is read at 26.46 kHz, so it reaches 13 kHz.)"""
    import soxr

    from synth.engines import SynthesisRequest

    voices = {v.id: v for v in engine.voices()}
    channel_of = {s: i for i, members in enumerate(meta["channels"]) for s in members}
    voice_of = {0: voices["joe-vt1.20"], 1: voices["joe-vt1.04"]}
    rendered = engine.synthesize(
        [SynthesisRequest(t["text"], voice_of[channel_of[t["speaker"]]]) for t in meta["turns"]]
    )
    placed = []
    for t, a in zip(meta["turns"], rendered):
        audio = soxr.resample(a.samples, a.sample_rate, rate)
        placed.append((channel_of[t["speaker"]], round(t["start_time"] * rate), audio))
    mix = np.zeros((max(s + len(a) for _, s, a in placed), 2), dtype=np.float32)
    for ch, s, a in placed:
        mix[s : s + len(a), ch] += a
    sf.write(str(path), 0.5 * mix / np.abs(mix).max(), rate, subtype="PCM_16")


def _legacy_copy(dataset: Path, to: Path) -> Path:
    """`dataset` as synth wrote it before full band: conversation.wav mixed at 16 kHz from the
    turns, no conversation_audio_rate."""
    from synth.dataset.mixdown import placements, write_mix
    from synth.dataset.records import ConversationMetadata

    shutil.copytree(dataset, to)
    for meta_path in to.glob("conversations/*/metadata.json"):
        raw = json.loads(meta_path.read_text())
        raw.pop("conversation_audio_rate", None)
        meta = ConversationMetadata.from_dict(raw)
        write_mix(meta_path.with_name("conversation.wav"), placements(meta_path.parent, meta, meta.channels))
        meta_path.write_text(json.dumps(raw))
    return to


@pytest.mark.slow
def test_moshi_full_band_copy_resample_and_band_limited(tmp_path, duplex_dataset, example_dataset, engine):
    """A 24 kHz conversation.wav is copied sample for sample (its energy above 8 kHz kept), one at
    22.05 kHz resampled once, and files made from 16 kHz audio are still made but reported as
    band-limited, with how to get full band."""
    from synth.export import EXPORTS
    from synth.export.moshi import MoshiOptions

    ds = tmp_path / "ds"
    shutil.copytree(duplex_dataset, ds)
    for cid, rate in (("duo", 24000), ("trio", 22050)):
        meta_path = ds / "conversations" / cid / "metadata.json"
        meta = json.loads(meta_path.read_text())
        _native_conversation_wav(engine, meta, meta_path.with_name("conversation.wav"), rate)
        meta["conversation_audio_rate"] = rate
        meta_path.write_text(json.dumps(meta))
    export = EXPORTS["moshi"]
    summary = export.run(ds, tmp_path / "full", None, MoshiOptions())
    assert summary.details == {"copied": 1, "resampled": 1, "mixed": 0, "band_limited": 0}
    assert not summary.notes
    src, _ = sf.read(str(ds / "conversations/duo/conversation.wav"), dtype="int16")
    copied, rate = sf.read(str(tmp_path / "full/data_stereo/duo.wav"), dtype="int16")
    assert rate == 24000 and np.array_equal(copied, src)  # as they are
    src_trio, _ = sf.read(str(ds / "conversations/trio/conversation.wav"), dtype="float32")
    resampled, rate = sf.read(str(tmp_path / "full/data_stereo/trio.wav"), dtype="float32")
    assert rate == 24000 and abs(len(resampled) - len(src_trio) * 24000 / 22050) <= 2

    legacy_ds = _legacy_copy(duplex_dataset, tmp_path / "legacy_ds")
    legacy = export.run(legacy_ds, tmp_path / "legacy", None, MoshiOptions())
    assert legacy.details == {"copied": 0, "resampled": 2, "mixed": 0, "band_limited": 2}
    mixed = export.run(example_dataset, tmp_path / "mixed", None, MoshiOptions())
    assert mixed.details == {"copied": 0, "resampled": 0, "mixed": 4, "band_limited": 4}
    for s in (legacy, mixed):
        assert (
            len(s.notes) == 1
            and "band-limited to 8 kHz" in s.notes[0]
            and "--conversation-audio" in s.notes[0]
        )

    def share(path: Path) -> float:
        audio, rate = sf.read(str(path), dtype="float32")
        return _share_above(audio, rate)

    measured = {
        "24 kHz conversation.wav (source)": share(ds / "conversations/duo/conversation.wav"),
        "copied": share(tmp_path / "full/data_stereo/duo.wav"),
        "22.05 kHz conversation.wav (source)": share(ds / "conversations/trio/conversation.wav"),
        "resampled from 22.05 kHz": share(tmp_path / "full/data_stereo/trio.wav"),
        "from a 16 kHz conversation.wav": share(tmp_path / "legacy/data_stereo/duo.wav"),
        "mixed from 16 kHz turns": share(tmp_path / "mixed/data_stereo/bakery_morning.wav"),
    }
    print("share of energy above 8 kHz:", json.dumps(measured, indent=1))
    assert measured["copied"] == measured["24 kHz conversation.wav (source)"] > 1e-4
    assert 0.8 < measured["resampled from 22.05 kHz"] / measured["22.05 kHz conversation.wav (source)"] < 1.25
    assert measured["resampled from 22.05 kHz"] > 1e-4
    assert measured["from a 16 kHz conversation.wav"] < 1e-6 and measured["mixed from 16 kHz turns"] < 1e-6

    # moshi-finetune's reader takes the copied file as it is
    chunks = [c for c in _moshi_chunks(tmp_path / "full/data.jsonl", 5.0) if Path(c[0]).stem == "duo"]
    first = chunks[0][2]
    np.testing.assert_allclose(first[:, :1000].T, copied[:1000] / 32768, atol=1e-4)

    # the other side as main speaker: channels swapped, still copied exactly
    swapped = export.run(ds, tmp_path / "user", None, MoshiOptions(main_speaker="user"))
    assert swapped.details["copied"] == 1
    user, _ = sf.read(str(tmp_path / "user/data_stereo/duo.wav"), dtype="int16")
    assert np.array_equal(user, src[:, ::-1])

    # a rate in metadata that the file does not have is an error naming both
    meta_path = ds / "conversations/duo/metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["conversation_audio_rate"] = 16000
    meta_path.write_text(json.dumps(meta))
    res = run_cli("export", str(ds), str(tmp_path / "bad"), "--to", "moshi")
    assert res.returncode == 1 and "24000 Hz" in res.stderr and "conversation_audio_rate 16000" in res.stderr


@pytest.mark.slow
def test_moshi_export_of_window_sessions_loads_window_by_window_full_band(moshi_windows_dataset, tmp_path):
    """What a moshi-finetune fork with TTT layers reads: `--for moshi` sessions of 2 windows of
    20 s, exported, then read by moshi-finetune's own path window by window: every file is
    exactly its two windows (no tail window), each window in order with the main speaker's
    words in its text stream, and the audio is full band (energy above 8 kHz, as the engine
    made it)."""
    ds = moshi_windows_dataset
    out = tmp_path / "moshi"
    assert run_cli("export", str(ds), str(out), "--to", "moshi").returncode == 0
    full = {
        json.loads(line)["path"]: json.loads(line)["duration"]
        for line in (out / "data.jsonl").read_text().splitlines()
    }
    windows: dict[str, list[float]] = {}
    words = 0
    for path, start, wav, _chunk, main_only in _moshi_chunks(out / "data.jsonl", 20.0):
        windows.setdefault(Path(path).name, []).append(start)
        assert wav.shape[0] == 2 and wav.shape[1] > 0
        words += len(main_only)
    padded = [p for p, d in full.items() if abs(d - 40.0) < 1e-6]
    assert len(padded) >= 3  # every session but the source's last fills its two windows exactly
    for name in (Path(p).name for p in padded):
        assert windows[name] == [0.0, 20.0]  # in order, and no third window
    assert words > 20
    audio, rate = sf.read(str(out / padded[0]), dtype="float64")
    spectrum = np.abs(np.fft.rfft(audio[:, 0])) ** 2 + np.abs(np.fft.rfft(audio[:, 1])) ** 2
    high = spectrum[np.fft.rfftfreq(audio.shape[0], 1 / rate) > 8000].sum() / spectrum.sum()
    assert rate == 24000 and high > 1e-5  # 16 kHz audio would have none
