import json
from pathlib import Path

import pytest

from synth.dialogs.sources import open_dialogs, read_dailydialog_text, read_huggingface, read_jsonl
from synth.domain import Dialog
from synth.errors import DialogError, SynthError
from tests.helpers import write_jsonl


def _split(items):
    dialogs = [i for i in items if isinstance(i, Dialog)]
    errors = [i for i in items if isinstance(i, DialogError)]
    return dialogs, errors


def test_jsonl_reads_ids_turns_and_derives_missing_ids(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "talks.jsonl",
        [
            {
                "conversation_id": "c1",
                "turns": [{"speaker": "A", "text": "Hi there ."}, {"speaker": "B", "text": "it ' s you !"}],
            },
            "",
            {"turns": ["One.", "Two.", "Three."], "voices": {"A": "joe-vt0.80"}},
        ],
    )
    dialogs, errors = _split(list(read_jsonl(path)))
    assert not errors
    assert [d.conversation_id for d in dialogs] == ["c1", "talks_000003"]
    assert dialogs[0].turns[1].text == "it's you!"
    assert [t.speaker for t in dialogs[1].turns] == ["A", "B", "A"]
    assert dialogs[1].voices == {"A": "joe-vt0.80"}
    assert dialogs[1].source.line == 3


def test_jsonl_bad_lines_name_the_line_and_field(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    lines = [
        b'{"conversation_id": "ok", "turns": ["Fine."]}',
        b'{"turns": [',  # 2 invalid JSON
        b'{"turns": ["caf\xe9"]}',  # 3 invalid UTF-8
        b'{"turns": []}',  # 4 empty dialog
        b'{"turns": ["Hello.", "   "]}',  # 5 whitespace turn
        b'{"turns": ["Hello.", "?!"]}',  # 6 nothing speakable
        b'{"conversation_id": "../../etc", "turns": ["Hi."]}',  # 7 unsafe id
        b'{"turns": ["Hi."], "turnz": 1}',  # 8 unknown field
        b'{"turns": [{"speaker": "", "text": "Hi."}]}',  # 9 empty speaker
        b"[1, 2]",  # 10 not an object
        b'{"turns": [{"speaker": "A", "text": 5}]}',  # 11 text not a string
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    items = list(read_jsonl(path))
    dialogs, errors = _split(items)
    assert [d.conversation_id for d in dialogs] == ["ok"]
    msgs = [str(e) for e in errors]
    expect = [
        ("line 2", "invalid JSON"),
        ("line 3", "invalid UTF-8"),
        ("line 4", "no turns"),
        ("line 5", "turns[1].text: text is empty or whitespace only"),
        ("line 6", "turns[1].text"),
        ("line 7", "conversation_id"),
        ("line 8", "turnz"),
        ("line 9", "turns[0].speaker"),
        ("line 10", "JSON object"),
        ("line 11", "turns[0].text"),
    ]
    assert len(msgs) == len(expect)
    for msg, (line, what) in zip(msgs, expect):
        assert f"bad.jsonl {line}:" in msg and what in msg, msg


def test_jsonl_rejects_huge_lines_without_losing_the_next(tmp_path: Path, monkeypatch):
    import synth.dialogs.sources.jsonl as jsonl

    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 1000)
    path = write_jsonl(tmp_path / "big.jsonl", [{"turns": ["x" * 5000]}, {"turns": ["After."]}])
    first, second = list(read_jsonl(path))
    assert isinstance(first, DialogError) and "line 1: line is longer than 1000 bytes" in str(first)
    assert isinstance(second, Dialog) and second.source.line == 2


def test_byte_order_mark_and_crlf(tmp_path: Path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"turns": ["Hi there."]}\r\n{"turns": ["Bye."]}\r\n')
    assert [d.turns[0].text for d in read_jsonl(path)] == ["Hi there.", "Bye."]
    txt = tmp_path / "dialogues_text.txt"
    txt.write_bytes(b"\xef\xbb\xbfHello . __eou__ Hi ! __eou__\r\n")
    (d,) = read_dailydialog_text(txt)
    assert [t.text for t in d.turns] == ["Hello.", "Hi!"]


def test_jsonl_is_lazy(tmp_path: Path):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as fh:
        fh.write(json.dumps({"turns": ["First."]}) + "\n")
        fh.write("{broken\n" * 1000)
    it = read_jsonl(path)
    first = next(it)
    assert isinstance(first, Dialog)  # produced before the rest of the file was parsed
    assert isinstance(next(it), DialogError)


def test_dialog_limits(tmp_path: Path):
    from synth.dialogs.build import DialogLimits

    path = write_jsonl(tmp_path / "l.jsonl", [{"turns": ["a b c"] * 5}, {"turns": ["x" * 50]}])
    items = list(read_jsonl(path, DialogLimits(max_turns=4, max_turn_chars=40)))
    assert "more than 4 turns" in str(items[0])
    assert "50 characters" in str(items[1]) and "turns[0].text" in str(items[1])


def test_dailydialog_text(tmp_path: Path):
    path = tmp_path / "dialogues_validation.txt"
    path.write_text(
        "Are you coming to the party tonight ? __eou__ I can ' t , I have work . __eou__\n"
        "What time is it ? __eou__ Half past six . __eou__ Thanks ! __eou__\n"
        " __eou__ \n",
        encoding="utf-8",
    )
    dialogs, errors = _split(list(read_dailydialog_text(path)))
    assert [d.conversation_id for d in dialogs] == [
        "dailydialog_validation_000000",
        "dailydialog_validation_000001",
    ]
    assert [t.text for t in dialogs[0].turns] == [
        "Are you coming to the party tonight?",
        "I can't, I have work.",
    ]
    assert [t.speaker for t in dialogs[1].turns] == ["A", "B", "A"]
    assert len(errors) == 1 and "line 3" in str(errors[0])
    assert len(list(read_dailydialog_text(path, limit=1))) == 1


def _write_parquet(path: Path, dialogs: list[list[str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "dialog": dialogs,
            "act": [[1] * len(d) for d in dialogs],
            "emotion": [[0] * len(d) for d in dialogs],
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_huggingface_local_parquet_with_split_and_limit(tmp_path: Path):
    rows = [
        ["Where is the station ?", "Two blocks north ."],
        ["Nice hat !", "Thank you ."],
        ["Is it raining ?", "Not yet ."],
    ]
    # the hub's parquet-conversion layout: default/<split>/0000.parquet
    _write_parquet(tmp_path / "hub" / "default" / "test" / "0000.parquet", rows)
    got = list(read_huggingface(str(tmp_path / "hub"), split="test", limit=2))
    assert [d.conversation_id for d in got] == ["hub_test_000000", "hub_test_000001"]
    assert got[0].turns[0].text == "Where is the station?"
    single = tmp_path / "one.parquet"
    _write_parquet(single, rows)
    via_open = list(open_dialogs(str(single), split="train"))
    assert len(via_open) == 3 and via_open[2].turns[1].text == "Not yet."
    with pytest.raises(SynthError, match="no parquet files for split 'validation'"):
        list(read_huggingface(str(tmp_path / "hub"), split="validation"))


def test_open_dialogs_detects_formats_and_rejects_missing_path(tmp_path: Path):
    with pytest.raises(SynthError, match="no such file"):
        open_dialogs(str(tmp_path / "missing.jsonl"))
    txt = tmp_path / "dialogues_text.txt"
    txt.write_text("Hi . __eou__ Hello . __eou__\n")
    assert next(iter(open_dialogs(str(txt)))).conversation_id == "dailydialog_000000"
    jl = write_jsonl(tmp_path / "a.jsonl", [{"turns": ["x."]}] * 3)
    assert len(list(open_dialogs(str(jl), limit=2))) == 2
