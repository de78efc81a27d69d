"""Every export of a dataset with memory probes (docs/memory.md), read by the real clients: the
datasets are made by the real pipeline (the embedded voice) from a LoCoMo-layout file written for
this test, once with the probes kept apart (`--probes separate`, the default) and once as training
samples (`--probes in-training`, with conversation audio and spoken answers).

LLaMA-Omni's items go through its loading path (the WAV at 16 kHz, whisper.pad_or_trim, a 128-bin
log-mel), the hf export through `datasets.load_from_disk`, the moshi export through
moshi-finetune's own reading path (sphn, the alignments beside each WAV, the main speaker's words)
and the Lhotse exports through lhotse. A probe never reaches a training export unless the dataset
or the export asks for it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.helpers import run_cli

LOCOMO = [
    {
        "sample_id": "trip-1",
        "conversation": {
            "speaker_a": "Mara",
            "speaker_b": "Owen",
            "session_1_date_time": "10:00 am on 2 May, 2024",
            "session_1": [
                {"speaker": "Mara", "dia_id": "D1:1", "text": "I booked a week in Lisbon for the end of June."},
                {"speaker": "Owen", "dia_id": "D1:2", "text": "Nice! Are you taking the night train again?"},
                {"speaker": "Mara", "dia_id": "D1:3", "text": "No, this time I am flying with my cousin Ilse."},
            ],
            "session_2_date_time": "7:30 pm on 9 May, 2024",
            "session_2": [
                {"speaker": "Owen", "dia_id": "D2:1", "text": "I found an old map of Lisbon in my attic."},
                {"speaker": "Mara", "dia_id": "D2:2", "text": "You should lend it to me before the trip."},
                {"speaker": "Owen", "dia_id": "D2:3", "text": "Sure, I will bring it on Saturday."},
            ],
        },
        "qa": [
            {"question": "Who is Mara travelling with?", "answer": "her cousin Ilse", "evidence": ["D1:3"],
             "category": 4},
            {"question": "Which city is Mara visiting?", "answer": "Lisbon", "evidence": ["D1:1", "D2:2"],
             "category": 1},
            {"question": "What colour is Owen's car?", "adversarial_answer": "blue", "evidence": ["D2:1"],
             "category": 5},
        ],
    },
    {
        "sample_id": "garden-2",
        "conversation": {
            "speaker_a": "Lena",
            "speaker_b": "Sami",
            "session_1_date_time": "8:00 am on 3 April, 2024",
            "session_1": [
                {"speaker": "Lena", "dia_id": "D1:1", "text": "My tomatoes finally sprouted this morning."},
                {"speaker": "Sami", "dia_id": "D1:2", "text": "Did you plant the yellow ones from the market?"},
                {"speaker": "Lena", "dia_id": "D1:3", "text": "Yes, twelve of them along the south fence."},
            ],
            "session_2_date_time": "6:00 pm on 20 April, 2024",
            "session_2": [
                {"speaker": "Sami", "dia_id": "D2:1", "text": "A hedgehog has been sleeping under my shed."},
                {"speaker": "Lena", "dia_id": "D2:2", "text": "Leave some water out for it at night."},
                {"speaker": "Sami", "dia_id": "D2:3", "text": "Good idea, I named him Bramble."},
            ],
        },
        "qa": [
            {"question": "How many tomato plants did Lena plant?", "answer": "twelve", "evidence": ["D1:3"],
             "category": 4},
            {"question": "What did Sami name the hedgehog?", "answer": "Bramble", "evidence": ["D2:3"],
             "category": 4},
        ],
    },
]  # fmt: skip


def _generate(out: Path, *flags: str) -> Path:
    res = run_cli(
        "generate", "--dialogs", str(out.parent / "locomo.json"), "--out", str(out), "--quiet", *flags
    )
    assert res.returncode == 0, res.stderr
    return out


@pytest.fixture(scope="module")
def datasets_made(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("memory_export")
    (tmp / "locomo.json").write_text(json.dumps(LOCOMO))
    return {
        "separate": _generate(tmp / "separate"),
        "training": _generate(
            tmp / "training", "--probes", "in-training", "--conversation-audio", "--probe-answer-audio"
        ),
    }


@pytest.fixture(scope="module")
def separate(datasets_made) -> Path:
    return datasets_made["separate"]


@pytest.fixture(scope="module")
def training(datasets_made) -> Path:
    return datasets_made["training"]


def _conversations(dataset: Path) -> list[tuple[str, dict]]:
    """(conversation id, metadata) in manifest order."""
    out = []
    for line in (dataset / "manifest.jsonl").read_text().splitlines():
        cid = json.loads(line)["conversation_id"]
        out.append((cid, json.loads((dataset / "conversations" / cid / "metadata.json").read_text())))
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_the_datasets_have_probes_as_the_export_tests_need(separate, training):
    for dataset, in_samples in ((separate, False), (training, True)):
        convs = _conversations(dataset)
        assert [cid for cid, _ in convs] == ["trip-1", "garden-2"]
        for cid, meta in convs:
            folder = dataset / "conversations" / cid
            assert len(meta["probes"]) == {"trip-1": 3, "garden-2": 2}[cid]
            samples = _lines(folder / "samples.jsonl")
            assert len(samples) == len(meta["turns"]) + (len(meta["probes"]) if in_samples else 0)
            assert [s["probe_id"] for s in _lines(folder / "probes.jsonl")] == [
                p["probe_id"] for p in meta["probes"]
            ]
            assert all(("answer_audio_file" in p) == in_samples for p in meta["probes"])
    trip = dict(_conversations(training))["trip-1"]
    assert [p["adversarial"] for p in trip["probes"]] == [False, False, True]
    lisbon = trip["probes"][1]
    assert lisbon["distance_sec"]["earliest"] > lisbon["distance_sec"]["latest"] > 0  # two evidence turns


# -- the exports that never carry probes: they still read a dataset whose samples hold them ------
@pytest.mark.slow
def test_lhotse_and_shar_leave_probes_out_of_an_in_training_dataset(training, tmp_path):
    import lhotse

    from tests.export.test_shar import _check_read_back

    res = run_cli("export", str(training), str(tmp_path / "lhotse"), "--to", "lhotse")
    assert res.returncode == 0, res.stderr
    cuts = lhotse.CutSet.from_file(tmp_path / "lhotse" / "cuts.jsonl").to_eager()
    lhotse.validate(cuts, read_data=True)
    turns = sum(len(meta["turns"]) for _, meta in _conversations(training))
    assert len(cuts) == turns and not any("probe" in c.recording.sources[0].source for c in cuts)

    res = run_cli("export", str(training), str(tmp_path / "conv"), "--to", "lhotse", "--conversations")
    assert res.returncode == 0, res.stderr
    multi = lhotse.CutSet.from_file(tmp_path / "conv" / "cuts.jsonl").to_eager()
    lhotse.validate(multi, read_data=True)
    assert sorted(len(c.supervisions) for c in multi) == [6, 6]

    res = run_cli("export", str(training), str(tmp_path / "shar"), "--to", "lhotse-shar")
    assert res.returncode == 0, res.stderr
    _check_read_back(training, tmp_path / "shar", 1000)  # every turn, in order, and nothing else


# -- llama-omni ----------------------------------------------------------------------------------
def _llama_omni(dataset: Path, out: Path, *flags: str) -> tuple[list[dict], str]:
    res = run_cli("export", str(dataset), str(out), "--to", "llama-omni", *flags)
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text()), res.stdout


def _check_probe_item(item: dict, meta: dict, dataset: Path) -> None:
    """A probe item as its metadata says: the question's WAV in, its answer out, after the turns."""
    k = int(item["id"].rsplit("_", 1)[1])
    probe = meta["probes"][k]
    assert item["id"] == f"{meta['conversation_id']}_probe_{k}" and item["target"] == "answer"
    assert Path(item["speech"]) == dataset / "conversations" / meta["conversation_id"] / probe["audio_file"]
    assert item["conversations"] == [
        {"from": "human", "value": "<speech>"},
        {"from": "gpt", "value": probe["answer"]},
    ]
    for key in ("probe_id", "question", "answer", "category", "adversarial", "scoring", "time"):
        assert item[key] == probe[key], key
    assert item["evidence"] == probe["evidence"] and item["distance_sec"] == probe["distance_sec"]
    assert item["distance_tokens"] == probe["distance_tokens"]
    assert item["turn_number"] == probe["turn_number"] == len(meta["turns"]) + k


def _loads_as_llama_omni(item: dict) -> None:
    """LLaMA-Omni's loading of `speech` (omni_speech/infer/infer.py, input_type 'mel'):
    whisper.load_audio's 16 kHz mono, pad_or_trim to 30 s, a 128-bin log-mel; nothing trimmed."""
    import torch
    import whisper

    speech, rate = sf.read(item["speech"], dtype="float32")
    assert rate == whisper.audio.SAMPLE_RATE and speech.ndim == 1
    assert 0 < len(speech) <= whisper.audio.N_SAMPLES
    padded = whisper.pad_or_trim(torch.from_numpy(speech))
    assert torch.equal(padded[: len(speech)], torch.from_numpy(speech))
    assert whisper.log_mel_spectrogram(padded, n_mels=128).shape == (128, 3000)


def test_llama_omni_leaves_evaluation_probes_out_unless_asked(separate, tmp_path):
    items, stdout = _llama_omni(separate, tmp_path / "train.json")
    assert {i["target"] for i in items} == {"reply", "transcript"}  # no probe leaks into training
    assert "left out 5 memory probe(s)" in stdout and "--omni-probes include" in stdout
    assert not any("probe" in i["speech"] for i in items)

    items, _ = _llama_omni(separate, tmp_path / "eval.json", "--omni-probes", "include")
    metas = dict(_conversations(separate))
    probes = [i for i in items if i["target"] == "answer"]
    assert [i["probe_id"] for i in probes] == [p["probe_id"] for m in metas.values() for p in m["probes"]]
    for item in probes:
        _check_probe_item(item, metas[item["conversation_id"]], separate)
        _loads_as_llama_omni(item)


def test_llama_omni_carries_in_training_probes_after_each_conversations_turns(training, tmp_path):
    """What a trainer that carries state across turns does (grouped by conversation_id, ordered
    by turn_number) reaches each probe with the whole conversation behind it; each probe item is
    the probe's sample of samples.jsonl."""
    items, _ = _llama_omni(training, tmp_path / "train.json")
    metas = dict(_conversations(training))
    assert [i["conversation_id"] for i in items] == ["trip-1"] * 9 + ["garden-2"] * 8  # in order
    for cid, meta in metas.items():
        mine = [i for i in items if i["conversation_id"] == cid]
        n = len(meta["turns"])
        assert [i["turn_number"] for i in mine] == list(range(n + len(meta["probes"])))
        assert [i["target"] for i in mine[n:]] == ["answer"] * len(meta["probes"])
        samples = _lines(training / "conversations" / cid / "samples.jsonl")
        for item, sample in zip(mine, samples):
            assert item["turn_number"] == sample["turn_number"] and item["target"] == sample["target"]
            assert item["speaker_id"] == sample["speaker_id"]
            assert Path(item["speech"]).name == sample["audio_file"]
        for item in mine[n:]:
            _check_probe_item(item, meta, training)
            _loads_as_llama_omni(item)
            seen = {i["turn_number"] for i in mine if i["turn_number"] < item["turn_number"]}
            assert seen >= set(range(n))  # every turn before it, evidence included
            assert {e["turn_id"] for e in item["evidence"]} <= seen

    items, stdout = _llama_omni(training, tmp_path / "turns.json", "--omni-probes", "exclude")
    assert len(items) == 12 and {i["target"] for i in items} == {"reply", "transcript"}
    assert "memory probe" not in stdout


# -- hf ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_hf_rows_of_probes_load_from_disk(training, separate, tmp_path):
    import datasets

    res = run_cli("export", str(training), str(tmp_path / "hf"), "--to", "hf")
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].sampling_rate == 16000
    # datasets decodes Audio with torchcodec where installed; the stored bytes are a real WAV:
    raw = ds.cast_column("audio", datasets.Audio(decode=False))
    rows = raw.remove_columns("audio")
    metas = dict(_conversations(training))
    assert len(rows) == 17 and list(rows["target_kind"]).count("answer") == 5
    assert [r["conversation_id"] for r in rows] == ["trip-1"] * 9 + ["garden-2"] * 8
    for i, row in enumerate(rows):
        meta = metas[row["conversation_id"]]
        n = len(meta["turns"])
        if row["target_kind"] != "answer":
            assert row["probe_id"] is None and row["evidence"] == [] and row["turn_number"] < n
            continue
        k = row["turn_number"] - n
        probe = meta["probes"][k]
        folder = f"conversations/{row['conversation_id']}"
        assert (row["probe_id"], row["text"], row["target"]) == (
            probe["probe_id"],
            probe["question"],
            probe["answer"],
        )
        assert row["category"] == probe["category"] and row["adversarial"] == probe["adversarial"]
        assert row["scoring"] == probe["scoring"] and row["time"] == probe["time"]
        assert row["evidence"] == probe["evidence"]
        assert (
            row["distance_sec"] == probe["distance_sec"]
            and row["distance_tokens"] == probe["distance_tokens"]
        )
        assert row["audio_path"] == f"{folder}/{probe['audio_file']}"
        assert row["answer_audio_path"] == f"{folder}/{probe['answer_audio_file']}"
        assert row["conversation_audio_path"] == f"{folder}/conversation.wav" and row["channel"] is None
        assert row["speaker"] == probe["asked_by"] and row["words"] == []
        audio, rate = sf.read(io.BytesIO(raw[i]["audio"]["bytes"]), dtype="float32")
        on_disk, _ = sf.read(str(training / row["audio_path"]), dtype="float32")
        assert rate == 16000 and np.array_equal(audio, on_disk)
        assert abs(len(audio) / rate - row["duration_sec"]) < 1e-3

    # evaluation probes: left out by default, in with --hf-probes include (read undecoded)
    res = run_cli("export", str(separate), str(tmp_path / "hf2"), "--to", "hf", "--undecoded")
    assert res.returncode == 0, res.stderr
    assert "answer" not in list(datasets.load_from_disk(str(tmp_path / "hf2"))["target_kind"])
    res = run_cli(
        "export", str(separate), str(tmp_path / "hf3"), "--to", "hf", "--undecoded", "--hf-probes", "include"
    )
    assert res.returncode == 0, res.stderr
    ds = datasets.load_from_disk(str(tmp_path / "hf3"))
    probe_rows = [r for r in ds if r["target_kind"] == "answer"]
    assert [r["probe_id"] for r in probe_rows] == [
        p["probe_id"] for _, m in _conversations(separate) for p in m["probes"]
    ]
    first = probe_rows[0]
    audio, rate = sf.read(io.BytesIO(first["audio"]["bytes"]), dtype="float32")
    assert rate == 16000 and np.abs(audio).max() > 0.05 and first["answer_audio_path"] is None


# -- moshi ---------------------------------------------------------------------------------------
def _voiced(x: np.ndarray, rate: int, level: float = 0.01) -> list[tuple[float, float]]:
    """(start, end) seconds of the runs of 20 ms frames louder than `level` (gaps under 0.25 s
    joined): where something speaks on a channel."""
    n = rate // 50
    frames = x[: len(x) // n * n].reshape(-1, n)
    loud = np.sqrt(np.mean(frames**2, axis=1)) > level
    runs: list[list[float]] = []
    for i in np.flatnonzero(loud):
        t = i * n / rate
        if runs and t - runs[-1][1] < 0.25:
            runs[-1][1] = t + n / rate
        else:
            runs.append([t, t + n / rate])
    return [(a, b) for a, b in runs]


def _offset(got: np.ndarray, expected: np.ndarray, lo: int, hi: int) -> int:
    """Where in [lo, hi] `expected` lies in `got` (the best cross-correlation)."""
    from scipy.signal import correlate

    scores = correlate(got[lo : hi + len(expected)], expected, mode="valid", method="fft")
    return lo + int(np.argmax(scores))


def test_moshi_puts_each_probe_after_the_conversation_question_then_answer(training, tmp_path):
    """Read by moshi-finetune's own path: the conversation as it was (conversation.wav copied at
    24 kHz), then each probe's question alone on the user's channel (1) and right after it its
    answer, in the main speaker's voice, alone on the model's channel (0); the answer's words in
    the main speaker's text stream, inside the answer's audio; the question's words not."""
    import soxr

    from tests.export.test_exports import _moshi_chunks

    out = tmp_path / "moshi"
    res = run_cli("export", str(training), str(out), "--to", "moshi", "--moshi-probes")
    assert res.returncode == 0, res.stderr
    assert "5 memory probe(s) after their conversations" in res.stdout
    durations = {x["path"]: x["duration"] for x in _lines(out / "data.jsonl")}
    window = 10.0
    pieces: dict[str, list] = {}
    for path, start, wav, chunk, main_only in _moshi_chunks(out / "data.jsonl", window):
        pieces.setdefault(Path(path).stem, []).append((start, wav, chunk, main_only))
    for cid, meta in _conversations(training):
        folder = training / "conversations" / cid
        chunks = sorted(pieces[cid], key=lambda c: c[0])
        assert [c[0] for c in chunks] == [window * i for i in range(len(chunks))]
        audio = np.concatenate([c[1] for c in chunks], axis=1)  # what the loader read, whole
        assert audio.shape[1] == round(durations[f"data_stereo/{cid}.wav"] * 24000)
        conv, rate = sf.read(str(folder / "conversation.wav"), dtype="float32")
        assert rate == 24000
        np.testing.assert_allclose(audio[:, : len(conv)], conv.T, atol=1e-6)  # the conversation, as it was
        end = len(conv) / rate
        user = _voiced(audio[1, len(conv) :], rate)
        model = _voiced(audio[0, len(conv) :], rate)
        assert len(user) == len(model) == len(meta["probes"])
        main_words = [(w, s + c[0], e + c[0]) for c in chunks for w, (s, e), _ in c[3]]
        main_words = [w for w in main_words if w[1] >= end]
        other = [(w, s + c[0], e + c[0], who) for c in chunks for w, (s, e), who in c[2] if s + c[0] >= end]
        expected_words = []
        for k, (probe, (q0, q1), (a0, a1)) in enumerate(zip(meta["probes"], user, model)):
            assert q1 < a0 < q1 + 1.0  # the answer right after the question
            assert k == 0 or a0 > model[k - 1][1]  # one after another
            for name, span, channel in (("audio_file", (q0, q1), 1), ("answer_audio_file", (a0, a1), 0)):
                wav, wav_rate = sf.read(str(folder / probe[name]), dtype="float32")
                expected = soxr.resample(wav, wav_rate, rate)
                got = audio[channel, len(conv) :]
                best = _offset(got, expected, round(span[0] * rate) - rate // 2, round(span[0] * rate))
                seg = got[best : best + len(expected)]
                assert np.corrcoef(seg, expected)[0, 1] > 0.99  # that WAV, on that channel
                assert (
                    np.abs(audio[1 - channel, len(conv) + best : len(conv) + best + len(expected)]).max()
                    < 1e-3
                )
            answer_words = [w for w in main_words if a0 - 0.1 <= w[1] - end and w[2] - end <= a1 + 0.1]
            assert " ".join(w[0] for w in answer_words) == probe["answer"]
            expected_words += probe["answer"].split()
            asked = [w for w in other if q0 - 0.1 <= w[1] - end and w[2] - end <= q1 + 0.1]
            assert " ".join(w[0] for w in asked) == probe["question"]
            assert {w[3] for w in asked} == {f"SPEAKER_{probe['asked_by']}"}
        assert [w[0] for w in main_words] == expected_words  # nothing else of the main speaker after the end
        answer_voice = {p["answer_voice"] for p in meta["probes"]}
        assert answer_voice == {meta["voices"][meta["main_speaker"]]["id"]}


def test_moshi_leaves_probes_out_by_default_and_needs_spoken_answers(training, separate, tmp_path):
    res = run_cli("export", str(training), str(tmp_path / "plain"), "--to", "moshi")
    assert res.returncode == 0, res.stderr
    assert "left out 5 memory probe(s)" in res.stdout
    for cid, _ in _conversations(training):
        conv = sf.info(str(training / "conversations" / cid / "conversation.wav")).frames
        assert sf.info(str(tmp_path / "plain" / "data_stereo" / f"{cid}.wav")).frames == conv
    res = run_cli("export", str(separate), str(tmp_path / "m"), "--to", "moshi", "--moshi-probes")
    assert res.returncode == 1
    assert "trip-1/metadata.json: probe trip-1_q0 has no answer audio" in res.stderr
    assert "--probe-answer-audio" in res.stderr
    assert not (tmp_path / "m").exists()


# -- memory --------------------------------------------------------------------------------------
@pytest.mark.parametrize("relative", [False, True])
def test_memory_export_lines_are_the_probes_with_their_times_and_distances(training, tmp_path, relative):
    out = tmp_path / "eval" / "probes.jsonl"
    res = run_cli(
        "export", str(training), str(out), "--to", "memory", *(["--memory-relative"] if relative else [])
    )
    assert res.returncode == 0, res.stderr
    assert "exported 5 probe(s)" in res.stdout
    lines = _lines(out)
    convs = _conversations(training)
    assert [x["probe_id"] for x in lines] == [p["probe_id"] for _, m in convs for p in m["probes"]]
    at = {p["probe_id"]: (cid, m, p) for cid, m in convs for p in m["probes"]}

    def resolved(path: str) -> Path:
        assert Path(path).is_absolute() != relative
        return (out.parent / path).resolve()

    for line in lines:
        cid, meta, probe = at[line["probe_id"]]
        folder = training / "conversations" / cid
        assert line["conversation_id"] == cid and line["conversation_path"] == f"conversations/{cid}"
        assert (training / line["conversation_path"] / "metadata.json").is_file()
        assert resolved(line["question_audio"]) == (folder / probe["audio_file"]).resolve()
        assert resolved(line["answer_audio"]) == (folder / probe["answer_audio_file"]).resolve()
        assert resolved(line["conversation_audio"]) == (folder / "conversation.wav").resolve()
        for key in ("question", "answer", "adversarial", "category", "scoring", "time", "turn_number"):
            assert line[key] == probe[key], key
        assert line["evidence"] == probe["evidence"]
        assert (
            line["distance_sec"] == probe["distance_sec"]
            and line["distance_tokens"] == probe["distance_tokens"]
        )
        # the times are the timeline's: the evidence turns' own, before the probe
        turns = meta["turns"]
        for e in line["evidence"]:
            turn = turns[e["turn_id"]]
            assert (e["start"], e["end"]) == (turn["start_time"], turn["end_time"]) and e["end"] <= line[
                "time"
            ]
        ends = [e["end"] for e in line["evidence"]]
        assert line["distance_sec"]["latest"] == pytest.approx(line["time"] - max(ends), abs=2e-3)
        assert line["distance_sec"]["earliest"] == pytest.approx(line["time"] - min(ends), abs=2e-3)
        assert line["turns_before"] == sum(1 for t in turns if t["end_time"] <= line["time"]) == len(turns)
        assert line["turns_before"] > max(e["turn_id"] for e in line["evidence"])
        assert sf.info(str(resolved(line["question_audio"]))).samplerate == 16000
    assert "memory" in run_cli("export", "--help").stdout


def test_samples_that_are_not_the_turns_and_probes_are_named(training, separate, tmp_path):
    import shutil

    ds = tmp_path / "ds"
    shutil.copytree(training, ds)
    path = ds / "conversations" / "trip-1" / "samples.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()[:-1]))
    res = run_cli("export", str(ds), str(tmp_path / "x.json"), "--to", "llama-omni")
    assert res.returncode == 1
    assert "trip-1/samples.jsonl: 8 samples for 6 turns and 3 probes" in res.stderr
    assert not (tmp_path / "x.json").exists()

    ds = tmp_path / "ds2"
    shutil.copytree(separate, ds)
    path = ds / "conversations" / "garden-2" / "probes.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(reversed(lines)) + "\n")
    res = run_cli(
        "export", str(ds), str(tmp_path / "x.json"), "--to", "llama-omni", "--omni-probes", "include"
    )
    assert res.returncode == 1
    assert "garden-2/probes.jsonl line 1: not the `answer` sample of probe 'garden-2_q0'" in res.stderr
