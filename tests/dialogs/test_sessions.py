"""Sessions of the size asked: consecutive dialogs joined into long conversations that land
within their tolerance of a token, duration or window target (or inside a curriculum stage's
band), cut at turn boundaries so that every source turn appears exactly once, one cast per
session, reply targets that never cross a part, resumable, and a bad dialog left out and
reported while the session goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf

from synth.dialogs.build import build_dialog
from synth.dialogs.sessions import Part, PartQueue, SessionConfig, consumed_turns, join, session_id
from synth.domain import Source
from synth.errors import ConfigError, DialogError
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli, varied_dialogs, write_jsonl

QUIET = ("--quiet", "--noise-scale", "0", "--noise-w", "0")


def sessions_of(out: Path) -> list[dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    return [json.loads((out / json.loads(x)["path"] / "metadata.json").read_text()) for x in lines]


def check_every_turn_once(out: Path, dialogs: list[dict], skipped: frozenset[str] = frozenset()) -> None:
    """Every turn of every good source dialog is in exactly one session, in order, in one part;
    no reply target crosses a part or stays with one speaker."""
    seen: dict[str, list[str]] = {d["conversation_id"]: [] for d in dialogs}
    for meta in sessions_of(out):
        turns = meta["turns"]
        samples = [
            json.loads(x) for x in (out / "conversations" / meta["conversation_id"] / "samples.jsonl").open()
        ]
        starts = {seg["first_turn"] for seg in meta["segments"][1:]}
        for seg in meta["segments"]:
            part = turns[seg["first_turn"] : seg["last_turn"] + 1]
            by_source: dict[int, list[str]] = {}
            for t in part:
                by_source.setdefault(t["source_turn"], []).append(t["text"])
            seen[seg["dialog"]] += [" ".join(v) for _, v in sorted(by_source.items())]
            first, last = seg["source_turns"]
            assert last - first + 1 == len(by_source)
        for i, (turn, sample) in enumerate(zip(turns, samples)):
            assert sample["target"] == turn["target"]
            if sample["target"] == "reply":
                assert i + 1 < len(turns) and i + 1 not in starts
                assert turns[i + 1]["speaker"] != turn["speaker"]
    for d in dialogs:
        want = [t["text"] for t in d["turns"]] if d["conversation_id"] not in skipped else []
        assert seen[d["conversation_id"]] == want, d["conversation_id"]


def test_session_config_checks():
    with pytest.raises(ConfigError):
        SessionConfig()
    with pytest.raises(ConfigError):
        SessionConfig(tokens=100, minutes=2.0)
    with pytest.raises(ConfigError):
        SessionConfig(windows=0)
    with pytest.raises(ConfigError):
        SessionConfig(windows=2, window_sec=5)
    with pytest.raises(ConfigError):
        SessionConfig.parse_mix("16k:0.5,8k:0.5")
    assert SessionConfig.parse_mix("8k:0.4,16k:0.6") == ((8192, 0.4), (16384, 0.6))
    t = next(SessionConfig(minutes=5).targets(0))
    assert (t.kind, t.aim, t.low, t.high) == ("seconds", 300, 285, 315)
    w = next(SessionConfig(windows=3, window_sec=300).targets(0))
    assert (w.aim, w.low, w.high, w.cap) == (900, 870, 900, 900)  # speech into the last tenth
    stages = [next(SessionConfig(mix=((1000, 1.0), (4000, 1.0))).targets(s)) for s in range(20)]
    assert {(x.low, x.high) for x in stages} == {(0, 1000), (1000, 4000)}


def test_part_queue_puts_back_the_rest_of_a_cut_dialog_and_skips_what_is_consumed():
    src = Source("t", path="x.jsonl")
    a = build_dialog([("u", "One."), ("v", "Two."), ("u", "Three.")], "a", src)
    b = build_dialog([("v", "Four."), ("u", "Five.")], "b", src)
    err = DialogError("bad", "x.jsonl line 3", "turns")
    queue = PartQueue([a, err, b], consumed=lambda: {"a": 1})
    first = queue.take()
    assert isinstance(first, Part) and first.first_turn == 1 and session_id(first) == "session_a_t1"
    assert first.roles == {"v": "A", "u": "B"}  # by first appearance in the part
    queue.put_back(Part(a, 2))
    assert queue.take() == Part(a, 2)
    assert queue.take() is err
    assert queue.take() == Part(b, 0) and queue.take() is None
    session = join("s", [(Part(a, 1), 2), (Part(b, 0), 1)], 1.5)
    assert [(t.speaker, t.text) for t in session.turns] == [("A", "Two."), ("B", "Three."), ("A", "Four.")]
    assert [(s.dialog_id, s.source_first, s.first_turn, s.last_turn) for s in session.segments] == [
        ("a", 1, 0, 1),
        ("b", 0, 2, 2),
    ]
    segments = [{"dialog": "a", "source_turns": [0, 1]}, {"dialog": "b", "source_turns": [0, 0]}]
    assert consumed_turns([segments, [{"dialog": "a", "source_turns": [2, 2]}]]) == {"a": 3, "b": 1}


@pytest.mark.slow
def test_minute_sessions_land_in_band_and_hold_every_turn_once(tmp_path):
    dialogs = varied_dialogs(14, seed=1)
    source = write_jsonl(tmp_path / "d.jsonl", dialogs)
    out = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(source), "--out", str(out), *QUIET,
        "--session-minutes", "0.75", "--session-tolerance", "0.1", "--session-pause", "2.0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    metas = sessions_of(out)
    assert len(metas) >= 3
    for meta in metas[:-1]:  # the last one holds what is left of the source
        assert 40.5 <= meta["total_duration_sec"] <= 49.5
        assert meta["session"]["within"] and not meta["session"]["last_of_source"]
        assert meta["voices"]["A"]["id"] != meta["voices"]["B"]["id"]
        assert set(meta["speakers"]) == {"A", "B"} and meta["session_pause_sec"] == 2.0
        for prev, seg in zip(meta["segments"], meta["segments"][1:]):
            gap = (
                meta["turns"][seg["first_turn"]]["start_time"] - meta["turns"][prev["last_turn"]]["end_time"]
            )
            assert gap == pytest.approx(2.0, abs=2e-3)
    assert metas[-1]["session"]["last_of_source"]
    assert any(m["segments"][0]["source_turns"][0] > 0 for m in metas)  # some dialog was cut
    check_every_turn_once(out, dialogs)
    again = run_cli("generate", "--dialogs", str(source), "--out", str(out), *QUIET, "--session-minutes", "0.75",
                    "--session-tolerance", "0.1", "--session-pause", "2.0")  # fmt: skip
    assert again.returncode == 0 and "generated 0" in again.stdout, again.stdout


@pytest.mark.slow
def test_window_sessions_end_at_whole_windows_full_band(tmp_path):
    dialogs = varied_dialogs(10, seed=2)
    source = write_jsonl(tmp_path / "d.jsonl", dialogs)
    out = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(source), "--out", str(out), *QUIET, "--session-windows", "2",
        "--window-sec", "20", "--conversation-audio", "--gap", "conversational",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    metas = sessions_of(out)
    full = [m for m in metas if m["session"].get("audio_sec")]
    assert len(full) >= 3
    for meta in full:
        info = sf.info(str(out / "conversations" / meta["conversation_id"] / "conversation.wav"))
        assert info.samplerate == meta["conversation_audio_rate"] == 24000
        assert info.frames == 40 * 24000  # exactly two windows: no tail window
        assert meta["total_duration_sec"] <= 40.0
    # speech reaches into the last tenth (2 s) unless the next turn and its gap were longer
    within = [m for m in full if m["session"]["within"]]
    assert len(within) >= len(full) // 2, [m["total_duration_sec"] for m in full]
    check_every_turn_once(out, dialogs)


@pytest.mark.slow
def test_token_sessions_and_a_mix_land_in_their_bands_and_skip_a_bad_dialog(tmp_path):
    dialogs = varied_dialogs(12, seed=3)
    dialogs[4]["turns"][2]["text"] = "%%%"  # nothing speakable: the dialog is rejected by the source
    source = write_jsonl(tmp_path / "d.jsonl", dialogs)
    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(source), "--out", str(out), *QUIET, "--session-tokens", "6000")
    assert res.returncode == 3 and "line 5" in res.stderr, res.stderr  # reported, the rest made
    for meta in sessions_of(out)[:-1]:
        assert 5700 <= meta["total_tokens"] <= 6300, meta["total_tokens"]
        assert meta["tokens"]["speech_profile"] == "llama-omni"
    check_every_turn_once(out, dialogs, skipped=frozenset({dialogs[4]["conversation_id"]}))
    mixed = tmp_path / "mix"
    res = run_cli(
        "generate", "--dialogs", str(source), "--out", str(mixed), *QUIET, "--session-mix", "3k:0.5,9k:0.5",
        "--seed", "4",
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    for meta in sessions_of(mixed)[:-1]:
        low, high = meta["session"]["target"]["band"]
        assert low <= meta["total_tokens"] <= high
    assert {m["session"]["target"]["stage"] for m in sessions_of(mixed)} == {3072, 9216}


@pytest.mark.slow
def test_a_resumed_run_goes_on_after_the_turns_finished_sessions_hold(tmp_path):
    dialogs = varied_dialogs(10, seed=5)
    out = tmp_path / "ds"
    args = ("--out", str(out), *QUIET, "--session-minutes", "0.5", "--session-tolerance", "0.15")
    first = write_jsonl(tmp_path / "first.jsonl", dialogs[:5])
    assert run_cli("generate", "--dialogs", str(first), *args).returncode == 0
    whole = write_jsonl(tmp_path / "whole.jsonl", dialogs)
    res = run_cli("generate", "--dialogs", str(whole), *args)
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    check_every_turn_once(out, dialogs)
