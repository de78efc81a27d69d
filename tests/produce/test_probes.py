"""Coherent multi-session conversations and their memory probes, made by the real pipeline (the
embedded voice) from a LoCoMo-layout file (examples/memory.json, written for synth), then read back
from disk: sessions in order in one folder, one voice per person, probes after their evidence with
distances that are the timeline's, probes kept out of the training samples unless asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import synth
from synth.dataset.records import ConversationMetadata
from synth.produce.probes import ProbeConfig, place
from tests.helpers import REPO, run_cli

EXAMPLE = REPO / "examples" / "memory.json"


def _generate(out: Path, probes: ProbeConfig = ProbeConfig(), **kw) -> ConversationMetadata:
    options = synth.GenerateOptions(probes=probes, **kw)
    summary = synth.generate(EXAMPLE, out, options)
    assert summary.generated == 1 and summary.complete, summary.format()
    report = synth.validate_dataset(out)
    assert report.ok, report.format()
    (folder,) = (out / "conversations").iterdir()
    return ConversationMetadata.from_dict(json.loads((folder / "metadata.json").read_text()))


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def separate(tmp_path_factory) -> tuple[Path, ConversationMetadata]:
    out = tmp_path_factory.mktemp("memory") / "ds"
    return out, _generate(out)


def test_one_conversation_holds_every_session_in_order_with_one_voice_per_person(separate):
    out, meta = separate
    segments = meta.extra["segments"]
    assert [s["session"] for s in segments] == [1, 2, 3]  # session 4 has a date but no turns
    assert segments[1]["date_time"] == "6:40 pm on 19 April, 2024"
    assert [s["first_turn"] for s in segments] == [0, 6, 11]
    assert meta.extra["session_pause_sec"] == 3.0
    # a session gap of 3 s between sessions, the turn gaps inside them
    assert meta.turns[6].start_time - meta.turns[5].end_time == pytest.approx(3.0, abs=1e-3)
    voices = {(t.speaker, t.voice) for t in meta.turns}
    assert sorted(voices) == sorted((s, meta.voices[s]["id"]) for s in ("Nadia", "Tom"))
    assert meta.voices["Nadia"]["id"] != meta.voices["Tom"]["id"]
    # the image's caption is metadata, never speech; the source's own turn ids kept
    image_turn = meta.turns[4]
    assert image_turn.extra["source"]["image"]["caption"].startswith("a photo of tomato plants")
    assert "photo" not in image_turn.text and image_turn.extra["source"]["source_id"] == "D1:5"
    # the turn that reads only ":)" is left out of the speech and reported, nothing else is lost
    assert len(meta.turns) == 15
    notes = meta.extra["source_notes"]
    assert any("turn D2:6" in n and "no speakable characters" in n for n in notes)
    assert any("qa[6]" in n and "left out of the speech" in n for n in notes)  # its only evidence
    assert any("qa[7]" in n and "no evidence" in n for n in notes)


def test_probes_follow_their_evidence_at_distances_that_are_the_timelines(separate):
    out, meta = separate
    folder = out / "conversations" / meta.conversation_id
    by_id = {p.probe_id: p for p in meta.probes}
    assert len(meta.probes) == 6  # 8 questions: one without evidence, one only about a left-out turn
    assert by_id["neighbours-01_q3"].answer == "40"  # an integer answer
    assert [e["source_id"] for e in by_id["neighbours-01_q3"].evidence] == ["D2:3", "D3:4"]
    assert by_id["neighbours-01_q4"].evidence[0]["source_id"] == "D1:4"  # written "D1:04"
    adversarial = by_id["neighbours-01_q5"]
    assert adversarial.adversarial and adversarial.scoring == "not-mentioned"
    assert adversarial.answer == "Not mentioned in the conversation."
    assert adversarial.extra["source"]["adversarial_answer"] == "the violin"
    samples = _lines(folder / "samples.jsonl")
    tokens = {s["turn_number"]: s["original_length"] - 1 + s["speech_tokens"] for s in samples}
    for k, probe in enumerate(meta.probes):
        assert probe.time == pytest.approx(meta.total_duration_sec, abs=1e-3)  # placement: the end
        ends = [meta.turns[e["turn_id"]].end_time for e in probe.evidence]
        assert all(
            e["end"] == pytest.approx(meta.turns[e["turn_id"]].end_time, abs=1e-3) for e in probe.evidence
        )
        assert probe.distance_sec["latest"] == pytest.approx(probe.time - max(ends), abs=2e-3)
        assert probe.distance_sec["earliest"] == pytest.approx(probe.time - min(ends), abs=2e-3)
        between = sum(tokens[t.turn_id] for t in meta.turns if t.start_time >= max(ends) - 1e-3)
        assert probe.distance_tokens == {
            "latest": between,
            "earliest": sum(tokens[t.turn_id] for t in meta.turns if t.start_time >= min(ends) - 1e-3),
        }
        assert probe.turn_number == len(meta.turns) + k
        assert (folder / probe.transcript_file).read_text() == probe.question + "\n"
        assert probe.asked_by in ("Nadia", "Tom")
        said = meta.turns[max(e["turn_id"] for e in probe.evidence)].speaker
        assert probe.asked_by != said  # the other person asks about what was said
    # never in the training samples by default: their samples are apart, numbered after the turns
    assert [s["turn_number"] for s in samples] == list(range(len(meta.turns)))
    answers = _lines(folder / "probes.jsonl")
    assert [s["turn_number"] for s in answers] == [p.turn_number for p in meta.probes]
    assert {s["target"] for s in answers} == {"answer"}
    assert [s["probe_id"] for s in answers] == [p.probe_id for p in meta.probes]
    assert meta.tokens is not None and "probes_in_samples" not in meta.tokens


@pytest.mark.slow
def test_in_training_probes_come_after_the_turns_and_count_in_total_tokens(separate, tmp_path):
    _, base = separate
    meta = _generate(tmp_path / "ds", ProbeConfig(mode="in-training"))
    folder = tmp_path / "ds" / "conversations" / meta.conversation_id
    samples = _lines(folder / "samples.jsonl")
    n = len(meta.turns)
    assert [s["turn_number"] for s in samples] == list(range(n + len(meta.probes)))
    assert [s["target"] for s in samples[n:]] == ["answer"] * len(meta.probes)
    added = sum(s["original_length"] - 1 + s["speech_tokens"] for s in samples[n:])
    assert meta.total_tokens == base.total_tokens + added
    entry = json.loads((tmp_path / "ds" / "manifest.jsonl").read_text())
    assert entry["total_tokens"] == meta.total_tokens


@pytest.mark.slow
def test_probes_placed_after_their_evidence_at_session_boundaries(tmp_path):
    meta = _generate(tmp_path / "ds", ProbeConfig(placement="after:0.3", asker="examiner", answer_audio=True))
    folder = tmp_path / "ds" / "conversations" / meta.conversation_id
    boundaries = [meta.turns[s["last_turn"]].end_time for s in meta.extra["segments"][:-1]]
    placed = 0
    for probe in meta.probes:
        latest = max(e["end"] for e in probe.evidence)
        if probe.placement == "after:0.3":
            placed += 1
            assert any(probe.time == pytest.approx(b, abs=1e-3) for b in boundaries)
            assert probe.time >= latest + 18 - 1e-3
            assert not any(latest + 18 <= b < probe.time - 1e-3 for b in boundaries)  # the first one
        else:
            assert probe.placement == "end" and probe.time == pytest.approx(meta.total_duration_sec, abs=1e-3)
            assert not any(b >= latest + 18 for b in boundaries)
        assert probe.asked_by == "examiner"
        assert probe.voice not in {v["id"] for v in meta.voices.values()}
        assert probe.answer_audio_file and (folder / probe.answer_audio_file).stat().st_size > 1000
        assert probe.extra["answer_voice"] == meta.voices["Nadia"]["id"]  # the main speaker
    assert placed >= 3


def test_place_never_puts_a_probe_before_its_evidence():
    assert place(10.0, 100.0, [5.0, 40.0, 70.0], None) == (100.0, "end")
    assert place(10.0, 100.0, [5.0, 40.0, 70.0], 30.0) == (40.0, "after:0.5")
    assert place(10.0, 100.0, [5.0, 40.0, 70.0], 31.0) == (70.0, "after:0.516667")
    assert place(80.0, 100.0, [5.0, 40.0, 70.0], 0.0) == (100.0, "end")


@pytest.mark.slow
def test_probes_off_and_the_cli_flags(tmp_path):
    meta = _generate(tmp_path / "off", ProbeConfig(mode="off"))
    assert (
        meta.probes == []
        and not (tmp_path / "off" / "conversations" / meta.conversation_id / "probes.jsonl").exists()
    )
    res = run_cli(
        "generate",
        "--dialogs",
        str(EXAMPLE),
        "--out",
        str(tmp_path / "cli"),
        "--quiet",
        "--probe-placement",
        "soon",
    )
    assert res.returncode == 2 and "--probe-placement" in res.stderr and "after:MINUTES" in res.stderr
    for bad in ("after:.", "after:", "after:-1", "later"):
        with pytest.raises(synth.ConfigError, match="after:MINUTES"):
            ProbeConfig(placement=bad)
    assert ProbeConfig(placement=" after: 2.50 ").placement == "after:2.5"


def test_validate_finds_a_probe_asked_before_its_evidence(separate, tmp_path):
    import shutil

    out, meta = separate
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    path = copy / "conversations" / meta.conversation_id / "metadata.json"
    data = json.loads(path.read_text())
    data["probes"][0]["time"] = 1.0
    data["probes"][1]["distance_sec"]["latest"] += 5
    path.write_text(json.dumps(data))
    errors = "\n".join(synth.validate_dataset(copy).errors)
    assert "probes[0]: asked at 1.0 s, before its evidence ends" in errors
    assert "probes[1]: distance_sec.latest" in errors


@pytest.mark.slow
def test_a_person_keeps_one_voice_across_a_corpus_with_voice_per_person(tmp_path):
    sample = json.loads(EXAMPLE.read_text())[0]
    other = json.loads(json.dumps(sample))
    other["sample_id"] = "neighbours-02"
    for session in (v for k, v in other["conversation"].items() if isinstance(v, list)):
        for turn in session:
            turn["speaker"] = turn["speaker"].replace("Tom", "Iris")
    source = tmp_path / "two.json"
    source.write_text(json.dumps([sample, other]))
    options = synth.GenerateOptions(pipeline=synth.PipelineConfig(voice_per_person=True, seed=5))
    assert synth.generate(source, tmp_path / "ds", options).generated == 2
    voices = {
        meta["conversation_id"]: meta["voices"]
        for meta in (
            json.loads(p.read_text()) for p in (tmp_path / "ds").glob("conversations/*/metadata.json")
        )
    }
    assert voices["neighbours-01"]["Nadia"]["id"] == voices["neighbours-02"]["Nadia"]["id"]
    assert voices["neighbours-02"]["Iris"]["id"] != voices["neighbours-02"]["Nadia"]["id"]


def test_per_person_casting_gives_a_clashing_person_another_voice(engine):
    from synth.domain import Dialog, Source, Turn
    from synth.produce.casting import cast
    from synth.seeding import conversation_rng

    catalog = engine.voices()
    own = {n: conversation_rng(0, f"person:{n}", "casting").choice(catalog).id for n in map(str, range(200))}
    a, b = next((x, y) for x in own for y in own if x < y and own[x] == own[y])  # two people, one voice
    dialog = Dialog("c", (Turn(a, "Hi."), Turn(b, "Hello.")), Source("test"))
    voices = cast(dialog, catalog, 0, per_person=True)
    assert voices[a].id == own[a] and voices[b].id != own[a]


@pytest.mark.slow
def test_sized_sessions_cut_a_coherent_conversation_only_between_its_sessions(tmp_path):
    sample = json.loads(EXAMPLE.read_text())[0]
    other = json.loads(json.dumps(sample))
    other["sample_id"] = "neighbours-02"
    source = tmp_path / "two.json"
    source.write_text(json.dumps([sample, other]))
    options = synth.GenerateOptions(sessions=synth.SessionConfig(minutes=0.5))
    summary = synth.generate(source, tmp_path / "ds", options)
    assert summary.complete and summary.generated == 6, summary.format()
    assert synth.validate_dataset(tmp_path / "ds").ok
    metas = sorted(
        (json.loads(p.read_text()) for p in (tmp_path / "ds").glob("conversations/*/metadata.json")),
        key=lambda m: m["conversation_id"],
    )
    for conv in ("neighbours-01", "neighbours-02"):
        pieces = [m for m in metas if m["source"]["original_id"] == conv]
        assert [m["conversation_id"] for m in pieces] == [f"{conv}_p{k}" for k in range(3)]
        # every source session whole, in order, in exactly one piece; never two conversations in one
        assert [[s["session"] for s in m["segments"]] for m in pieces] == [[1], [2], [3]]
        assert sum(m["total_turns"] for m in pieces) == 15
        assert [m["session"]["last_of_source"] for m in pieces] == [False, False, True]
        # a probe stays with the piece that holds its evidence; one whose evidence spans two is dropped
        kept = [p["probe_id"] for m in pieces for p in m.get("probes", [])]
        assert kept == [f"{conv}_q{k}" for k in (0, 1, 2, 4, 5)]
        for m in pieces:
            for probe in m.get("probes", []):
                assert all(e["turn_id"] < m["total_turns"] for e in probe["evidence"])
        assert any(f"probe {conv}_q3" in n and "more than one piece" in n for n in pieces[2]["source_notes"])


@pytest.mark.slow
def test_the_training_loader_reads_probes_after_the_turns_where_asked(separate, tmp_path):
    from synth.training import ConversationDataset

    out, meta = separate
    n, k = len(meta.turns), len(meta.probes)
    assert len(ConversationDataset(out)) == n  # separate: the training set holds no probe
    with_probes = ConversationDataset(out, probes=True)
    assert len(with_probes) == n + k
    item = with_probes[n]  # the first probe, right after the last turn
    assert item["turn_number"] == n and item["conversation_id"] == meta.conversation_id
    labels = [t for t in item["labels"].tolist() if t != -100]
    assert labels and item["speech"].shape[0] == round(meta.probes[0].duration_sec * 16000)
    in_training = tmp_path / "ds"
    _generate(in_training, ProbeConfig(mode="in-training"))
    assert len(ConversationDataset(in_training)) == n + k  # training samples: read by default
    assert len(ConversationDataset(in_training, probes=False)) == n


@pytest.mark.slow
def test_tokenize_rewrites_the_probes_samples_with_the_new_profile(tmp_path):
    meta = _generate(tmp_path / "ds", ProbeConfig(mode="in-training"))
    folder = tmp_path / "ds" / "conversations" / meta.conversation_id
    res = run_cli("tokenize", str(tmp_path / "ds"), "--speech-profile", "rate:10")
    assert res.returncode == 0, res.stderr
    assert synth.validate_dataset(tmp_path / "ds").ok
    answers = _lines(folder / "probes.jsonl")
    samples = _lines(folder / "samples.jsonl")
    assert [s["speech_tokens"] for s in answers] == [
        max(1, -(-round(p.duration_sec * 10, 6) // 1)) for p in meta.probes
    ]
    assert samples[len(meta.turns) :] == answers  # still after the turns, in the new profile
    after = json.loads((folder / "metadata.json").read_text())
    assert after["tokens"]["speech_profile"] == "rate:10" and after["tokens"]["probes_in_samples"]
    assert after["total_tokens"] == sum(s["original_length"] - 1 + s["speech_tokens"] for s in samples)
