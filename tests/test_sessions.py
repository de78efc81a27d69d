"""Sessions: consecutive dialogs joined into long conversations that fill token or duration
targets or a curriculum mix, one cast per session, parts listed, a bad dialog skipped and
reported, deterministic for a seed (so resume and shards make the same sessions)."""

from __future__ import annotations

import json

import pytest

from synth.dialogs.build import build_dialog
from synth.dialogs.sessions import SessionConfig, make_sessions
from synth.domain import Source
from synth.errors import ConfigError, DialogError
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli

TOPICS = ["the garden", "a train ticket", "the weekend", "a new recipe", "the weather", "a lost key"]


def dialog_lines(n: int) -> list[str]:
    """DailyDialog's text format, with our own sentences (tokenized punctuation, __eou__)."""
    lines = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        turns = [
            f"Did you hear about {topic} , number {i} ?",
            f"Yes , I heard about {topic} this morning .",
            "Let ' s talk about it later then .",
        ]
        lines.append(" __eou__ ".join(turns) + " __eou__")
    return lines


def test_sessions_fill_targets_map_roles_and_pass_errors_on():
    dialogs = [
        build_dialog(
            [("guide", f"Hello {i}."), ("guest", "Hi."), ("kid", "Hey.")][: 2 + i % 2],
            f"d{i}",
            Source("t", index=i),
            voices={"guest": "v1"} if i == 0 else None,
        )
        for i in range(7)
    ]
    items = [*dialogs[:3], DialogError("bad", "t #3"), *dialogs[3:]]
    out = list(make_sessions(items, SessionConfig(tokens=5), lambda d: len(d.turns)))
    sessions = [x for x in out if not isinstance(x, DialogError)]
    assert [type(x).__name__ for x in out].count("DialogError") == 1
    parts = [[seg.source.index for seg in s.segments] for s in sessions]
    assert parts == [[0, 1], [2, 3], [4, 5], [6]]  # each dialog exactly once, in order
    first = sessions[0]
    assert (
        first.conversation_id == "session_d0"
        and first.speakers == ["A", "B", "C"]
        and first.voices == {"B": "v1"}
    )
    assert [t.speaker for t in sessions[1].turns] == ["A", "B", "A", "B", "C"]  # roles by first appearance
    assert first.segments[1].first_turn == 2 and first.join_pause_sec == 1.5


def test_session_config_checks():
    assert SessionConfig.parse_mix("8k:0.4,16k:0.6") == ((8192, 0.4), (16384, 0.6))
    for bad in ("8k", "16k:1,8k:1", "8k:0", "x:1"):
        with pytest.raises(ConfigError, match="session_mix"):
            SessionConfig.parse_mix(bad)
    with pytest.raises(ConfigError, match="exactly one"):
        SessionConfig(tokens=100, minutes=2)
    mix = SessionConfig(mix=((1000, 1.0), (3000, 1.0)))
    draws = [t for _, t in zip(range(50), mix.targets(seed=3))]
    assert draws == [t for _, t in zip(range(50), mix.targets(seed=3))]  # deterministic
    assert {t for _, t in draws} == {750.0, 2500.0}  # inside each stage's band


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("src")
    lines = dialog_lines(18)
    lines[7] = "   __eou__   __eou__"  # a bad dialog in the middle: nothing speakable
    path = folder / "dialogues_train.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_generate_sessions_from_a_dailydialog_file(source, tmp_path):
    out = tmp_path / "ds"
    args = [
        "generate",
        "--dialogs",
        str(source),
        "--out",
        str(out),
        "--quiet",
        "--session-tokens",
        "900",
        "--session-pause",
        "2.0",
        "--noise-scale",
        "0",
        "--noise-w",
        "0",
    ]
    res = run_cli(*args)
    assert res.returncode == 3 and "line 8" in res.stderr  # the bad dialog is reported
    assert validate_dataset(out).ok
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) >= 3
    seen = []
    for entry in manifest:
        meta = json.loads((out / entry["path"] / "metadata.json").read_text())
        segs = meta["segments"]
        seen += [s["source"]["index"] for s in segs]
        turns = meta["turns"]
        assert segs[0]["first_turn"] == 0 and segs[-1]["last_turn"] == len(turns) - 1
        for prev, seg in zip(segs, segs[1:]):
            assert seg["first_turn"] == prev["last_turn"] + 1
            gap = turns[seg["first_turn"]]["start_time"] - turns[prev["last_turn"]]["end_time"]
            assert gap == pytest.approx(2.0, abs=2e-3)
        assert set(meta["speakers"]) == {"A", "B"} and meta["session_pause_sec"] == 2.0
        assert meta["voices"]["A"]["id"] != meta["voices"]["B"]["id"]
        assert meta["total_tokens"] >= 700 or entry is manifest[-1]  # estimated before synthesis
    assert sorted(seen) == [i for i in range(18) if i != 7]  # every good dialog exactly once
    again = run_cli(*args)
    assert "skipped" in again.stdout and "generated 0" in again.stdout  # the same sessions: resumed


def test_a_session_mix_fills_every_stage_band(source, tmp_path):
    out = tmp_path / "ds"
    res = run_cli(
        "generate",
        "--dialogs",
        str(source),
        "--out",
        str(out),
        "--quiet",
        "--session-mix",
        "512:0.5,1536:0.5",
        "--seed",
        "4",
    )
    assert res.returncode == 3, res.stderr
    res = run_cli("splits", str(out), "--stages", "512,1536,8k", "--bands")
    assert res.returncode == 0, res.stderr
    bands = {
        n: [json.loads(x) for x in (out / "splits" / f"band_{n}.jsonl").read_text().splitlines()]
        for n in (512, 1536)
    }
    assert bands[512] and bands[1536]  # both stages hold sessions of their own size
    assert all(e["total_tokens"] > 512 for e in bands[1536])


def test_a_session_mix_from_a_chat_source_keeps_every_dialog_once(tmp_path):
    from tests.helpers import write_jsonl

    records = [
        {
            "id": f"c{i:03d}",
            "messages": [
                {"role": "system", "content": "Be kind."},
                {
                    "role": "user",
                    "content": f"Can you tell me something about {TOPICS[i % len(TOPICS)]}, item {i}?",
                },
                {
                    "role": "assistant",
                    "content": "Sure. It is a **lovely** thing to talk about, and there is more to say.",
                },
            ],
        }
        for i in range(20)
    ]
    source = write_jsonl(tmp_path / "chats.jsonl", records)
    out = tmp_path / "ds"
    res = run_cli(
        "generate",
        "--dialogs",
        str(source),
        "--out",
        str(out),
        "--quiet",
        "--session-mix",
        "400:0.5,1200:0.5",
        "--speech-profile",
        "llama-omni",
    )
    assert res.returncode == 0, res.stderr
    assert validate_dataset(out).ok
    seen = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        meta = json.loads((out / json.loads(line)["path"] / "metadata.json").read_text())
        seen += [s["source"]["original_id"] for s in meta["segments"]]
        assert meta["tokens"]["speech_profile"] == "llama-omni"
    assert sorted(seen) == [f"c{i:03d}" for i in range(20)]
