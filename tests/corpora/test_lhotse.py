"""Long real recordings converted with their own speakers and times: Lhotse manifests written by
Lhotse's own code (recordings + supervisions, a CutSet, Shar) over audio the tests make from the
embedded voice, a two-channel call with overlapping turns among them, and a GigaSpeech-layout
folder (GigaSpeech.json and Opus files the tests encode). Converted, validated, and compared with
the source: every segment once (a turn or a note), times and speakers as given, clean text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synth.corpora.segments import (
    Supervision,
    clean_transcript,
    detect_rule,
    pieces_of,
    truecase_text,
)
from synth.workflows.validate import validate_dataset
from tests.corpora.test_readers import SENTENCES, manifest, speak
from tests.helpers import run_cli

RATE = 16000


def metas(out: Path) -> dict[str, dict]:
    return {
        e["conversation_id"]: json.loads((out / e["path"] / "metadata.json").read_text())
        for e in manifest(out)
    }


def place(
    length_sec: float, channels: int, parts: list[tuple[int, float, np.ndarray]], rate: int
) -> np.ndarray:
    audio = np.zeros((round(length_sec * rate), channels), dtype=np.float32)
    for ch, start, clip in parts:
        i = round(start * rate)
        audio[i : i + clip.shape[0], ch] += clip
    return audio


@pytest.fixture(scope="module")
def speech(quiet_engine) -> list[np.ndarray]:
    return [speak(quiet_engine, s, i % 6, RATE) for i, s in enumerate(SENTENCES)]


# Switchboard-convention transcripts (MS98) of SENTENCES[0..3], with their tags and partial words
CALL_TEXTS = [
    "[laughter] the lighthouse keeper counted the ships every evening",
    "she planted tom[atoes]- tomatoes along the southern fence [noise]",
    "our neighbour repaired the old bicycle in one afternoon",
    "[laughter-the] library opens early on saturday mornings",
]


@pytest.fixture(scope="module")
def lhotse_corpus(speech, tmp_path_factory) -> dict[str, Path]:
    """call1: two channels (spkA on 0, spkB on 1), B's first turn overlapping A's first, a
    noise-only segment; pod1: mono at 24 kHz, GigaSpeech-style text, no speaker labels, a garbage
    segment; silent1: a recording without supervisions."""
    from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet

    root = tmp_path_factory.mktemp("lhotse")
    d = [len(s) / RATE for s in speech]
    a0, b0 = 0.5, 0.5 + d[0] * 0.6  # B starts while A is still talking
    a1 = max(a0 + d[0], b0 + d[1]) + 0.4
    b1 = a1 + d[2] + 0.3
    call = place(
        b1 + d[3] + 1.0,
        2,
        [(0, a0, speech[0]), (1, b0, speech[1]), (0, a1, speech[2]), (1, b1, speech[3])],
        RATE,
    )
    sf.write(str(root / "call1.wav"), call, RATE)
    pod_rate = 24000
    from synth.audio import resample

    pod_clips = [resample(s, RATE, pod_rate) for s in speech[4:7]]
    p0, p1, p2 = 0.3, 0.3 + d[4] + 0.2, 0.3 + d[4] + 0.2 + d[5] + 1.5
    pod = place(
        p2 + d[6] + 0.5, 1, [(0, p0, pod_clips[0]), (0, p1, pod_clips[1]), (0, p2, pod_clips[2])], pod_rate
    )
    sf.write(str(root / "pod1.flac"), pod, pod_rate)
    sf.write(str(root / "silent1.wav"), np.zeros((RATE, 1), dtype=np.float32), RATE)
    recs = RecordingSet.from_recordings(
        Recording.from_file(root / n) for n in ("call1.wav", "pod1.flac", "silent1.wav")
    )

    def sup(sid, rid, start, dur, ch, text, spk):
        return SupervisionSegment(
            id=sid, recording_id=rid, start=round(start, 4), duration=round(dur, 4), channel=ch,
            text=text, speaker=spk, language="English",
        )  # fmt: skip

    sups = [
        sup("call1-A-0", "call1", a0, d[0], 0, CALL_TEXTS[0], "spkA"),
        sup("call1-B-0", "call1", b0, d[1], 1, CALL_TEXTS[1], "spkB"),
        sup("call1-B-noise", "call1", b0 + d[1] + 0.05, 0.2, 1, "[noise] [vocalized-noise]", "spkB"),
        sup("call1-A-1", "call1", a1, d[2], 0, CALL_TEXTS[2], "spkA"),
        sup("call1-B-1", "call1", b1, d[3], 1, CALL_TEXTS[3], "spkB"),
        sup("pod1-0", "pod1", p0, d[4], 0, "HE FORGOT HIS UMBRELLA AT THE STATION AGAIN <PERIOD>", None),
        sup(
            "pod1-1",
            "pod1",
            p1,
            d[5],
            0,
            "A SMALL BOAT DRIFTED SLOWLY <COMMA> ACROSS THE LAKE <PERIOD>",
            None,
        ),
        sup("pod1-sil", "pod1", p1 + d[5] + 0.1, 1.2, 0, "<MUSIC>", None),
        sup(
            "pod1-2",
            "pod1",
            p2,
            d[6],
            0,
            "DID THEY PAINT THE KITCHEN A PALE SHADE OF GREEN <QUESTIONMARK>",
            None,
        ),
    ]
    SupervisionSet.from_segments(sups).to_file(root / "supervisions.jsonl")
    recs.to_file(root / "recordings.jsonl.gz")
    cuts = CutSet.from_manifests(recordings=recs, supervisions=SupervisionSet.from_segments(sups))
    cuts.to_file(root / "cuts.jsonl.gz")
    (root / "shar").mkdir()
    cuts.to_shar(root / "shar", fields={"recording": "flac"})
    return {
        "root": root,
        "recordings": root / "recordings.jsonl.gz",
        "supervisions": root / "supervisions.jsonl",
    }


def source_sups(path: Path) -> dict[str, dict]:
    return {s["id"]: s for s in map(json.loads, path.read_text().splitlines())}


def test_recordings_and_supervisions(lhotse_corpus, tmp_path):
    out = tmp_path / "ds"
    res = run_cli(
        "convert", "lhotse", str(lhotse_corpus["recordings"]), str(lhotse_corpus["supervisions"]),
        "--name", "calls", "--out", str(out), "--quiet", "--conversation-audio",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    report = validate_dataset(out)
    assert report.ok, report.format()
    assert (
        "left out 1 record(s)" in res.stdout and "silent1" in res.stdout and "no supervisions" in res.stdout
    )
    assert "left out 2 turn(s)" in res.stdout
    got = metas(out)
    assert sorted(got) == ["calls_call1_000", "calls_pod1_000"]
    sups = source_sups(lhotse_corpus["supervisions"])
    seen = []
    for meta in got.values():
        for turn in meta["turns"]:
            s = sups[turn["segment_id"]]
            seen.append(s["id"])
            assert turn["start_time"] == pytest.approx(s["start"], abs=1e-6)  # the corpus's own times
            assert turn["end_time"] == pytest.approx(s["start"] + s["duration"], abs=1e-3)
            assert turn["source_start"] == s["start"]
        notes = meta.get("source_notes", [])
        seen += [sid for sid in sups if any(f"segment {sid}: left out" in n for n in notes)]
    assert sorted(seen) == sorted(sups)  # every supervision once: a turn, or a note naming it

    call = got["calls_call1_000"]
    assert [t["speaker"] for t in call["turns"]] == ["spkA", "spkB", "spkA", "spkB"]
    assert call["turns"][1]["start_time"] < call["turns"][0]["end_time"]  # the real overlap is kept
    assert [t["text"] for t in call["turns"]] == [
        "the lighthouse keeper counted the ships every evening",
        "she planted tom- tomatoes along the southern fence",
        "our neighbour repaired the old bicycle in one afternoon",
        "the library opens early on saturday mornings",
    ]
    assert call["transcript_style"] == "switchboard" and "lower case" in call["transcript_case"]
    assert call["gap_distribution"] == "corpus" and call["recording"]["channels"] == 2
    assert call["recording"]["speakers_by_channel"] == {"0": ["spkA"], "1": ["spkB"]}
    assert any("call1-B-noise: left out, only noise or event tags" in n for n in call["source_notes"])
    assert call["language"] == "English" and call["engine"]["corpus"] == "calls"
    # the two channels of the call are conversation.wav's channels: each side's audio, where it speaks
    assert call["channels"] == [["spkA"], ["spkB"]] and call["conversation_audio_rate"] == 16000
    conv, rate = sf.read(str(out / "conversations" / "calls_call1_000" / "conversation.wav"), dtype="int16")
    src, _ = sf.read(str(lhotse_corpus["root"] / "call1.wav"), dtype="int16")
    for turn in call["turns"]:
        ch = turn["channel"][0]
        i, n = round(turn["start_time"] * rate), turn["num_samples"]
        assert np.array_equal(conv[i : i + n, ch], src[i : i + n, ch])
        wav, wrate = sf.read(
            str(out / "conversations" / "calls_call1_000" / turn["audio_file"]), dtype="int16"
        )
        assert wrate == 16000 and wav.ndim == 1 and np.array_equal(wav, src[i : i + n, ch])

    pod = got["calls_pod1_000"]
    assert [t["speaker"] for t in pod["turns"]] == ["unknown"] * 3
    assert (
        pod["speaker_labels"]["unlabelled_segments"] == 3
        and "not one person" in pod["speaker_labels"]["unlabelled_as"]
    )
    assert pod["transcript_style"] == "gigaspeech" and pod["transcript_case"].startswith("upper case")
    assert [t["text"] for t in pod["turns"]] == [
        "HE FORGOT HIS UMBRELLA AT THE STATION AGAIN.",
        "A SMALL BOAT DRIFTED SLOWLY, ACROSS THE LAKE.",
        "DID THEY PAINT THE KITCHEN A PALE SHADE OF GREEN?",
    ]
    assert any("pod1-sil: left out, a garbage utterance (<MUSIC>)" in n for n in pod["source_notes"])
    for e in manifest(out):
        assert e["total_tokens"] > 0

    from synth.training import ConversationDataset

    item = ConversationDataset(out)[0]
    assert item["speech"].numel() > 0 and item["input_ids"].numel() > 0
    res = run_cli("export", str(out), str(tmp_path / "train.json"), "--to", "llama-omni")
    assert res.returncode == 0, res.stderr
    assert len(json.loads((tmp_path / "train.json").read_text())) == 7  # every turn a sample


def test_cuts_and_shar_give_the_same_turns(lhotse_corpus, tmp_path):
    base = tmp_path / "base"
    res = run_cli("convert", "lhotse", str(lhotse_corpus["supervisions"]), str(lhotse_corpus["recordings"]),
                  "--out", str(base), "--quiet", "--truecase")  # fmt: skip
    assert res.returncode == 0, res.stderr  # (given the other way round: recognized)
    want = {m["recording"]["id"]: m["turns"] for m in metas(base).values()}
    pod = next(m for m in metas(base).values() if m["recording"]["id"] == "pod1")
    assert pod["turns"][1]["text"] == "A small boat drifted slowly, across the lake."
    assert pod["turns"][2]["text"] == "Did they paint the kitchen a pale shade of green?"
    assert pod["transcript_case"].startswith("truecased")
    call = next(m for m in metas(base).values() if m["recording"]["id"] == "call1")
    assert (
        call["turns"][0]["text"] == "the lighthouse keeper counted the ships every evening"
    )  # not upper case

    keys = ("speaker", "text", "start_time", "end_time", "segment_id", "num_samples")
    for source in (lhotse_corpus["root"] / "cuts.jsonl.gz", lhotse_corpus["root"] / "shar"):
        out = tmp_path / source.name
        res = run_cli("convert", "lhotse", str(source), "--out", str(out), "--quiet", "--truecase")
        assert res.returncode == 0, res.stderr
        report = validate_dataset(out)
        assert report.ok, report.format()
        got = metas(out)
        assert len(got) == 2 and "silent1" in res.stdout  # a cut without supervisions: reported
        for meta in got.values():
            rid = meta["lhotse"]["recording_id"]
            assert meta["lhotse"]["cut_id"] and meta["conversation_id"].startswith(
                f"lhotse_{meta['lhotse']['cut_id']}"
            )
            for a, b in zip(meta["turns"], want[rid], strict=True):
                assert {k: a[k] for k in keys} == pytest.approx({k: b[k] for k in keys}), source
            if source.name == "shar":
                assert meta["turns"][0]["source_file"].endswith(".flac")


def test_session_minutes_cut_only_between_segments():
    def s(i, start, end):
        return Supervision(f"s{i}", start, end - start, "x")

    sups = [
        s(0, 0, 20),
        s(1, 25, 50),
        s(2, 45, 70),
        s(3, 71, 90),
        s(4, 95, 100),
        s(5, 130, 190),
        s(6, 191, 195),
    ]
    pieces = pieces_of(sups, 0.75)  # 45 s, reached after s1: no cut before s2, which overlaps s1
    assert [[x.id for x in p] for p in pieces] == [["s0", "s1", "s2"], ["s3", "s4", "s5", "s6"]]  # s6 joins
    assert pieces_of(sups, None) == [sups]
    assert [len(p) for p in pieces_of(sups, 0.25)] == [1, 2, 1, 3]  # 15 s: s6 (4 s) joins the last


def test_session_minutes_on_a_recording(lhotse_corpus, tmp_path):
    out = tmp_path / "ds"
    res = run_cli(
        "convert", "lhotse", str(lhotse_corpus["recordings"]), str(lhotse_corpus["supervisions"]),
        "--out", str(out), "--quiet", "--session-minutes", "0.08", "--conversation-audio",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    got = metas(out)
    calls = sorted(k for k in got if k.startswith("lhotse_call1_"))
    assert len(calls) == 2  # cut after A-1 ... never between call1-A-0 and call1-B-0, which overlap
    first, second = (got[k] for k in calls)
    assert [t["segment_id"] for t in first["turns"]] == ["call1-A-0", "call1-B-0", "call1-A-1"]
    assert [t["segment_id"] for t in second["turns"]] == ["call1-B-1"]
    assert first["recording"]["offset_sec"] == 0 and second["turns"][0]["start_time"] == 0
    assert second["recording"]["offset_sec"] == second["turns"][0]["source_start"]
    assert second["recording"]["piece"] == 1 and second["recording"]["pieces"] == 2


def test_resume_and_errors_name_the_recording_and_segment(lhotse_corpus, tmp_path):
    out = tmp_path / "ds"
    args = [
        "convert",
        "lhotse",
        str(lhotse_corpus["recordings"]),
        str(lhotse_corpus["supervisions"]),
        "--out",
        str(out),
        "--quiet",
    ]
    assert run_cli(*args, "--limit", "1").returncode == 0
    assert len(manifest(out)) == 1
    res = run_cli(*args)
    assert res.returncode == 0 and "skipped 1 already in the manifest" in res.stdout, res.stdout + res.stderr
    assert len(manifest(out)) == 2 and validate_dataset(out).ok

    broken = tmp_path / "broken"
    broken.mkdir()
    import gzip

    lines = gzip.open(lhotse_corpus["recordings"], "rt").read().splitlines()
    rec = json.loads(lines[0])
    rec["sources"][0]["source"] = str(broken / "gone.wav")
    (broken / "recordings.jsonl").write_text(json.dumps(rec) + "\n")
    sup_lines = lhotse_corpus["supervisions"].read_text().splitlines()
    late = json.loads(sup_lines[0])
    late.update(id="call1-late", start=1000.0)
    other = json.loads(sup_lines[0])
    other.update(id="orphan", recording_id="nowhere")
    (broken / "supervisions.jsonl").write_text(
        "\n".join([*sup_lines[:5], json.dumps(late), json.dumps(other)]) + "\n"
    )
    res = run_cli("convert", "lhotse", str(broken / "recordings.jsonl"), str(broken / "supervisions.jsonl"),
                  "--out", str(tmp_path / "o"), "--quiet")  # fmt: skip
    assert res.returncode == 3
    assert "recording nowhere (of supervision orphan) is not in recordings.jsonl" in res.stderr
    assert "gone.wav" in res.stderr
    fails = [json.loads(x) for x in (tmp_path / "o" / "failures.jsonl").read_text().splitlines()]
    assert any(
        f["where"].endswith("recordings.jsonl line 1")
        and f["error"].startswith("recording call1: no audio file")
        for f in fails
    )

    res = run_cli("convert", "lhotse", str(lhotse_corpus["recordings"]), "--out", str(tmp_path / "o2"))
    assert res.returncode == 1 and "give RECORDINGS SUPERVISIONS" in res.stderr


def test_transcript_rules():
    assert clean_transcript("HELLO <COMMA> HOW ARE YOU <QUESTIONMARK>", "gigaspeech") == (
        "HELLO, HOW ARE YOU?",
        "",
    )
    assert clean_transcript("<SIL>", "gigaspeech") == (None, "a garbage utterance (<SIL>)")
    assert clean_transcript("<NOISE> WELL <PERIOD>", "gigaspeech") == ("WELL.", "")
    assert clean_transcript("WHAT <UNK>", "gigaspeech")[0] is None
    assert clean_transcript("i was absolute[ly]- -[th]at's it", "switchboard") == (
        "i was absolute- -at's it",
        "",
    )
    assert clean_transcript("[laughter-yeah] [wea[sonable]-/reasonable] uh-huh_1", "switchboard") == (
        "yeah reasonable uh-huh",
        "",
    )
    assert clean_transcript("<b_aside> ((so)) we went [[skip]] ~there <e_aside>", "switchboard") == (
        "so we went there",
        "",
    )
    assert clean_transcript("i said (( )) then", "switchboard") == (
        None,
        "unintelligible speech marked (( ))",
    )
    assert clean_transcript("[noise] [laughter]", "switchboard") == (None, "only noise or event tags")
    assert clean_transcript("  Hello , world  ", "plain") == ("Hello, world", "")
    assert detect_rule(["HELLO <COMMA> YOU"]) == "gigaspeech"
    assert (
        detect_rule(["oh [laughter] yeah"]) == "switchboard"
        and detect_rule(["th[e]- the end"]) == "switchboard"
    )
    assert detect_rule(["Hello [Applause] world"]) == "plain"
    assert truecase_text("HELLO, I'M HERE. ARE YOU? YES!") == "Hello, I'm here. Are you? Yes!"


def opus(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, RATE, format="OGG", subtype="OPUS")


@pytest.fixture(scope="module")
def gigaspeech(speech, tmp_path_factory) -> Path:
    """GigaSpeech's layout: a podcast (XS and up, with a garbage segment and a segment only in
    XL), a YouTube video (S and up only), an audiobook (XS)."""
    root = tmp_path_factory.mktemp("gs") / "GigaSpeech"
    d = [len(s) / RATE for s in speech]
    t = [0.4, 0.4 + d[0] + 0.3, 0.4 + d[0] + 0.3 + d[1] + 1.2]
    opus(
        root / "audio/podcast/P0000/POD0000000001.opus",
        place(t[2] + d[2] + 0.5, 1, [(0, t[i], speech[i]) for i in range(3)], RATE)[:, 0],
    )
    opus(
        root / "audio/youtube/P0000/YOU0000000001.opus", place(d[3] + 1, 1, [(0, 0.5, speech[3])], RATE)[:, 0]
    )
    opus(
        root / "audio/audiobook/P0001/AUD0000000001.opus",
        place(d[4] + 1, 1, [(0, 0.2, speech[4])], RATE)[:, 0],
    )
    xs = ["{XL}", "{L}", "{M}", "{S}", "{XS}"]

    def seg(sid, begin, end, text, subsets=xs):
        return {"sid": sid, "speaker": "N/A", "begin_time": round(begin, 3), "end_time": round(end, 3),
                "text_tn": text, "subsets": subsets}  # fmt: skip

    audios = [
        {"aid": "POD0000000001", "title": "Harbour talk", "source": "podcast", "subsets": xs,
         "path": "audio/podcast/P0000/POD0000000001.opus", "format": "opus", "sample_rate": 16000,
         "channels": 1, "duration": round(t[2] + d[2] + 0.5, 3), "segments": [
            seg("POD0000000001_S0000000", t[0], t[0] + d[0], "THE LIGHTHOUSE KEEPER COUNTED THE SHIPS EVERY EVENING <PERIOD>"),
            seg("POD0000000001_S0000001", t[1], t[1] + d[1], "SHE PLANTED TOMATOES <COMMA> ALONG THE SOUTHERN FENCE <PERIOD>", ["{XL}"]),
            seg("POD0000000001_S0000002", t[1] + d[1] + 0.1, t[2] - 0.1, "<MUSIC>"),
            seg("POD0000000001_S0000003", t[2], t[2] + d[2], "DID OUR NEIGHBOUR REPAIR THE OLD BICYCLE <QUESTIONMARK>"),
         ]},
        {"aid": "YOU0000000001", "source": "youtube", "subsets": ["{XL}", "{L}", "{M}", "{S}"],
         "path": "audio/youtube/P0000/YOU0000000001.opus", "duration": round(d[3] + 1, 3),
         "segments": [seg("YOU0000000001_S0000000", 0.5, 0.5 + d[3], "THE LIBRARY OPENS EARLY", ["{XL}", "{S}"])]},
        {"aid": "AUD0000000001", "source": "audiobook", "subsets": "{XL}{L}{M}{S}{XS}",
         "path": "audio/audiobook/P0001/AUD0000000001.opus", "duration": round(d[4] + 1, 3),
         "segments": [seg("AUD0000000001_S0000000", 0.2, 0.2 + d[4], "HE FORGOT HIS UMBRELLA AT THE STATION AGAIN <EXCLAMATIONPOINT>")]},
    ]  # fmt: skip
    doc = {
        "dataset": "GigaSpeech",
        "language": "EN",
        "audios": audios,
        "version": "v1.0.0",
        "description": "x" * 3000,
    }
    (root / "GigaSpeech.json").write_text(json.dumps(doc, indent=2))
    return root


def test_gigaspeech_layout(gigaspeech, tmp_path):
    out = tmp_path / "ds"
    res = run_cli("convert", "gigaspeech", str(gigaspeech), "--subset", "XS", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    report = validate_dataset(out)
    assert report.ok, report.format()
    got = metas(out)
    assert sorted(got) == [
        "gigaspeech_AUD0000000001_000",
        "gigaspeech_POD0000000001_000",
    ]  # YouTube: not in XS
    pod = got["gigaspeech_POD0000000001_000"]
    assert [t["segment_id"] for t in pod["turns"]] == ["POD0000000001_S0000000", "POD0000000001_S0000003"]
    assert [t["text"] for t in pod["turns"]] == [
        "THE LIGHTHOUSE KEEPER COUNTED THE SHIPS EVERY EVENING.",
        "DID OUR NEIGHBOUR REPAIR THE OLD BICYCLE?",
    ]
    doc = json.loads((gigaspeech / "GigaSpeech.json").read_text())
    segs = {s["sid"]: s for a in doc["audios"] for s in a["segments"]}
    for turn in pod["turns"]:
        assert turn["start_time"] == segs[turn["segment_id"]]["begin_time"]
        assert turn["end_time"] == pytest.approx(segs[turn["segment_id"]]["end_time"], abs=1e-3)
        assert turn["speaker"] == "unknown"
    assert "GigaSpeech labels no speakers" in pod["speaker_labels"] and pod["speakers"] == ["unknown"]
    assert pod["gigaspeech"] == {
        "aid": "POD0000000001", "subset": "XS", "source": "podcast", "title": "Harbour talk", "segments_outside_subset": 1,
    }  # fmt: skip
    assert pod["speech_style"] == "spontaneous" and pod["source"]["original_id"] == "POD0000000001"
    assert any("S0000002: left out, a garbage utterance (<MUSIC>)" in n for n in pod["source_notes"])
    assert pod["transcript_style"] == "gigaspeech" and "upper case" in pod["transcript_case"]
    book = got["gigaspeech_AUD0000000001_000"]
    assert book["speech_style"] == "read" and book["turns"][0]["text"].endswith("AGAIN!")

    out2 = tmp_path / "s"
    res = run_cli("convert", "gigaspeech", str(gigaspeech / "GigaSpeech.json"), "--subset", "S", "--sources",
                  "podcast,youtube", "--truecase", "--out", str(out2), "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "AUD0000000001" in res.stdout and "--sources podcast,youtube" in res.stdout
    got = metas(out2)
    assert sorted(got) == ["gigaspeech_POD0000000001_000", "gigaspeech_YOU0000000001_000"]
    assert got["gigaspeech_YOU0000000001_000"]["turns"][0]["text"] == "The library opens early"
    assert (
        got["gigaspeech_POD0000000001_000"]["turns"][0]["text"]
        == "The lighthouse keeper counted the ships every evening."
    )
    assert validate_dataset(out2).ok

    res = run_cli("convert", "gigaspeech", str(gigaspeech), "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "--subset" in res.stderr


def test_speaker_labels_are_kept_never_made_up():
    from synth.corpora.segments import Recording, recording_groups
    from synth.domain import Source

    rec = Recording("sw02001", lambda: None, Path("sw02001.sph"), "swbd sw02001", 60.0, channels=2)  # type: ignore[arg-type,return-value]

    def sup(i, start, end, ch, speaker):
        return Supervision(f"sw02001-{i}", start, end - start, "uh-huh yeah", speaker, (ch,))

    # Lhotse's Switchboard recipe labels both sides of a call `<call>A`: kept, per channel
    sups = [sup(0, 0, 2, 0, "sw02001A"), sup(1, 1.5, 3, 1, "sw02001A"), sup(2, 3.1, 4, 0, "sw02001A")]
    (group,) = recording_groups(rec, sups, corpus="swbd", prefix="swbd", source=Source("swbd"), rule="auto")
    assert [u.speaker for u in group.utterances] == ["sw02001A_ch0", "sw02001A_ch1", "sw02001A_ch0"]
    assert group.extra["speaker_labels"]["kept_per_channel"] == ["sw02001A"]
    assert group.extra["transcript_style"] == "plain"
    # no labels: the channel is all that is known
    sups = [sup(0, 0, 2, 0, None), sup(1, 1.5, 3, 1, None)]
    (group,) = recording_groups(rec, sups, corpus="x", prefix="x", source=Source("x"), rule="plain")
    assert [u.speaker for u in group.utterances] == ["unknown_ch0", "unknown_ch1"]
    assert group.extra["speaker_labels"]["unlabelled_segments"] == 2
    # a speaker cannot overlap themself: the later segment is left out, named
    sups = [sup(0, 0, 2, 0, "A"), sup(1, 1.0, 3, 0, "A"), sup(2, 1.5, 2.5, 1, "B"), sup(3, 70, 71, 0, "A")]
    (group,) = recording_groups(rec, sups, corpus="x", prefix="x", source=Source("x"), rule="plain")
    assert [u.extra["segment_id"] for u in group.utterances] == ["sw02001-0", "sw02001-2"]
    assert group.notes == (
        "swbd sw02001 segment sw02001-1: left out, it starts before A's segment sw02001-0 ends (2.000 s)",
        "swbd sw02001 segment sw02001-3: left out, 70.000-71.000 s is not inside its recording (0.000-60.000 s)",
    )
    # longer than the speech profile allows (llama-omni: Whisper's 30 s window); an id twice
    sups = [sup(0, 0, 2, 0, "A"), sup(1, 5, 36, 1, "B"), sup(0, 3, 4, 0, "A")]
    (group,) = recording_groups(
        rec, sups, corpus="x", prefix="x", source=Source("x"), rule="plain", max_turn_sec=30
    )
    assert [u.speaker for u in group.utterances] == ["A"]
    assert "sw02001-0: left out, another segment of this recording has its id" in group.notes[0]
    assert "sw02001-1: left out, it lasts 31.00 s, longer than the speech profile's 30 s" in group.notes[1]


def test_command_sources_and_lhotse_loading(lhotse_corpus, tmp_path):
    """A `command` source (as Lhotse's recipes write `sph2pipe ...`) and a recording with
    transforms (read through Lhotse itself) give the turns a file source gives."""
    import gzip

    from synth.corpora.lhotse import LhotsePieces
    from synth.produce.recorded import AudioFile, FilePieces

    (line,) = [x for x in gzip.open(lhotse_corpus["recordings"], "rt").read().splitlines() if '"call1"' in x]
    rec = json.loads(line)
    wav = rec["sources"][0]["source"]
    direct, through = FilePieces([AudioFile(Path(wav))], "call1"), LhotsePieces(rec, "call1")
    for start, dur, ch in ((0.5, 1.25, (0,)), (3.0, 2.0, (1,)), (1.0, 0.5, None)):
        assert np.allclose(direct.read(start, dur, ch), through.read(start, dur, ch), atol=1e-4)
    direct.close()
    rec["sources"][0] = {"type": "command", "channels": [0, 1], "source": f"cat '{wav}'"}
    (tmp_path / "recordings.jsonl").write_text(json.dumps(rec) + "\n")
    calls = [x for x in lhotse_corpus["supervisions"].read_text().splitlines() if '"call1"' in x]
    (tmp_path / "supervisions.jsonl").write_text("\n".join(calls) + "\n")
    out = tmp_path / "ds"
    res = run_cli("convert", "lhotse", str(tmp_path / "recordings.jsonl"), str(tmp_path / "supervisions.jsonl"),
                  "--out", str(out), "--quiet")  # fmt: skip
    assert res.returncode == 0, res.stderr
    (meta,) = metas(out).values()
    base = tmp_path / "base"
    assert run_cli("convert", "lhotse", str(lhotse_corpus["recordings"]), str(lhotse_corpus["supervisions"]),
                   "--out", str(base), "--quiet").returncode == 0  # fmt: skip
    want = metas(base)["lhotse_call1_000"]
    assert [t["num_samples"] for t in meta["turns"]] == [t["num_samples"] for t in want["turns"]]
    for a, b in zip(meta["turns"], want["turns"], strict=True):
        x = sf.read(str(out / "conversations/lhotse_call1_000" / a["audio_file"]))[0]
        y = sf.read(str(base / "conversations/lhotse_call1_000" / b["audio_file"]))[0]
        assert np.array_equal(x, y)
