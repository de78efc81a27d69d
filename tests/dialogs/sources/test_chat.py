"""Chat-format sources on local files the tests write: the common `messages` format (JSONL and
parquet), ShareGPT, and a field-mapped layout; system/tool messages dropped, markup cleaned, a
message with nothing speakable named."""

from __future__ import annotations

import json

import pytest

from synth.dialogs.sources import ChatFields, open_dialogs
from synth.workflows.validate import validate_dataset
from tests.helpers import run_cli, write_jsonl

MESSAGES = [
    {
        "id": "chat_one",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "How do I **count** lines in a file?"},
            {
                "role": "assistant",
                "content": "Use `wc -l`, like this:\n```bash\nwc -l notes.txt\n```\nSee https://example.org/wc for more.",
            },
            {"role": "user", "content": [{"type": "text", "text": "Thanks, that worked!"}]},
        ],
    },
    {
        "messages": [
            {"role": "user", "content": "Show me a table."},
            {"role": "assistant", "content": "| a | b |\n|---|---|\n| 1 | 2 |"},
        ]
    },
]
SHAREGPT = [
    {
        "id": "sg_one",
        "conversations": [
            {"from": "human", "value": "What should I cook tonight?"},
            {"from": "gpt", "value": "## Ideas\n- A vegetable soup\n- Pasta with tomatoes"},
        ],
    }
]
MAPPED = [
    {
        "session": 7,
        "dialogue": [
            {"name": "Ann", "utterance": "Did you finish the book?"},
            {"name": "Ben", "utterance": "Almost, two chapters left."},
            {"name": "Ann", "utterance": "No spoilers then."},
        ],
    }
]


def test_messages_and_sharegpt_become_dialogs(tmp_path):
    items = list(open_dialogs(str(write_jsonl(tmp_path / "chat.jsonl", MESSAGES))))
    first, bad = items
    assert [(t.speaker, t.text) for t in first.turns] == [
        ("user", "How do I count lines in a file?"),
        ("assistant", "Use wc -l, like this: See for more."),
        ("user", "Thanks, that worked!"),
    ]
    assert first.conversation_id == "chat_one"
    assert "messages[1].content: nothing speakable left" in str(bad) and "chat.jsonl line 2" in str(bad)
    (sg,) = open_dialogs(str(write_jsonl(tmp_path / "sg.jsonl", SHAREGPT)))
    assert [(t.speaker, t.text) for t in sg.turns] == [
        ("user", "What should I cook tonight?"),
        ("assistant", "Ideas. A vegetable soup. Pasta with tomatoes."),
    ]
    roles = ChatFields(roles=ChatFields.parse_roles("user=A,assistant=B"))
    (mapped,) = open_dialogs(str(write_jsonl(tmp_path / "sg2.jsonl", SHAREGPT)), chat=roles)
    assert [t.speaker for t in mapped.turns] == ["A", "B"]


def test_a_field_mapped_layout_and_parquet_rows(tmp_path):
    fields = ChatFields(dialog_field="dialogue", speaker_field="name", text_field="utterance")
    (d,) = open_dialogs(str(write_jsonl(tmp_path / "m.jsonl", MAPPED)), chat=fields)
    assert [t.speaker for t in d.turns] == ["Ann", "Ben", "Ann"] and d.conversation_id == "m_000001"
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(
        [{"messages": MESSAGES[0]["messages"][:3]}, {"messages": SHAREGPT_AS_MESSAGES}]
    )
    pq.write_table(table, tmp_path / "train.parquet")
    dialogs = list(open_dialogs(str(tmp_path / "train.parquet")))
    assert [len(x.turns) for x in dialogs] == [2, 2]
    assert dialogs[0].turns[1].text == "Use wc -l, like this: See for more."


SHAREGPT_AS_MESSAGES = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi, *friend*."},
]


@pytest.mark.slow
def test_generate_from_chat_files(tmp_path):
    chat = write_jsonl(tmp_path / "chat.jsonl", MESSAGES)
    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(chat), "--out", str(out), "--quiet")
    assert res.returncode == 3  # the table-only message is reported, the rest is made
    assert "messages[1].content: nothing speakable left" in res.stderr
    assert validate_dataset(out).ok
    meta = json.loads((out / "conversations" / "chat_one" / "metadata.json").read_text())
    assert meta["speakers"] == ["user", "assistant"] and meta["total_turns"] == 3
    mapped = write_jsonl(tmp_path / "mapped.jsonl", MAPPED)
    res = run_cli(
        "generate",
        "--dialogs",
        str(mapped),
        "--out",
        str(tmp_path / "m"),
        "--quiet",
        "--dialog-field",
        "dialogue",
        "--speaker-field",
        "name",
        "--text-field",
        "utterance",
    )
    assert res.returncode == 0, res.stderr
    assert validate_dataset(tmp_path / "m").ok
    res = run_cli("generate", "--dialogs", str(chat), "--out", str(tmp_path / "x"), "--roles", "user")
    assert res.returncode == 2 and "--roles" in res.stderr and "expected ROLE=SPEAKER" in res.stderr


@pytest.mark.parametrize(
    "record, message",
    [
        ({"messages": "hello"}, "messages: missing or not a list"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role: missing"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content: missing or not text"),
        ({"messages": [{"role": "system", "content": "Be nice."}]}, "no spoken messages"),
    ],
)
def test_bad_chat_records_name_the_message(tmp_path, record, message):
    (err,) = open_dialogs(str(write_jsonl(tmp_path / "bad.jsonl", [record])), fmt="chat")
    assert message in str(err)
