"""The coherent multi-session readers (LoCoMo, REALTALK, Multi-Session Chat, Conversation
Chronicles, LongMemEval) on small files in each real layout, written here from sentences of our
own: every session in order, one label per person, the sessions' info as given, unspeakable turns
and sessions left out with a note naming the item and the turn, questions as probes with their
evidence, format detection, and the hub path through `datasets` on local parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from synth.dialogs.build import DialogLimits
from synth.dialogs.sources import detect_format, open_dialogs
from synth.dialogs.sources.coherent import NOT_MENTIONED
from synth.dialogs.sources.json_items import json_records
from synth.domain import Dialog
from synth.errors import ConfigError, DialogError
from tests.helpers import write_jsonl


def _split(items: Any) -> tuple[list[Dialog], list[DialogError]]:
    items = list(items)
    return [i for i in items if isinstance(i, Dialog)], [i for i in items if isinstance(i, DialogError)]


def _write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _session_texts(dialog: Dialog) -> list[list[str]]:
    return [[t.text for t in dialog.turns[s.first_turn : s.last_turn + 1]] for s in dialog.segments]


def _note(dialog: Dialog, *words: str) -> str:
    found = [n for n in dialog.notes if all(w in n for w in words)]
    assert len(found) == 1, (words, dialog.notes)
    return found[0]


# --- LoCoMo -------------------------------------------------------------------------------------


def _locomo_sample() -> dict[str, Any]:
    def turn(n: str, who: str, text: Any, **extra: Any) -> dict[str, Any]:
        return {"speaker": who, "dia_id": n, "text": text, **extra}

    return {
        "sample_id": "talk-7",
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "9:15 am on 3 March, 2022",
            "session_1": [
                turn("D1:1", "Ana", "I finally planted the tomato seedlings on the balcony."),
                turn("D1:2", "Ben", ";)"),
                turn(
                    "D1:3",
                    "Ana",
                    "Here is the first one that sprouted.",
                    img_url=["https://example.org/sprout.jpg"],
                    blip_caption="a photo of a small green plant in a pot",
                    query="tomato sprout",
                ),
                turn("D1:4", "Ben", ""),
                turn("D1:5", "Ana", 42),
            ],
            "session_2_date_time": "6:40 pm on 19 April, 2022",
            "session_2": [
                turn("D2:1", "Ben", "How are the tomatoes doing since the cold week?"),
                turn("D2:2", "Ana", "Two of them survived, and they already have flowers."),
            ],
            "session_3_date_time": "11:05 am on 2 June, 2022",
            "session_3": [
                turn(f"D3:{i}", "Ben" if i % 2 else "Ana", f"Line number {i} of the third talk.")
                for i in range(1, 6)
            ],
            "session_4_date_time": "8:00 pm on 9 June, 2022",
            "session_4": [turn("D4:1", "Ana", "?!"), turn("D4:2", "Ben", "")],
            "session_5_date_time": "7:30 am on 1 July, 2022",  # a date with no session
        },
        "qa": [
            {
                "question": "In which year did Ana plant tomatoes?",
                "answer": 2022,
                "evidence": ["D1:1"],
                "category": 2,
            },
            {"question": "What did Ben think of it?", "answer": "Nothing", "evidence": [], "category": 4},
            {
                "question": "Where did Ana buy the pots?",
                "answer": "At a market",
                "evidence": ["D9:9"],
                "category": 4,
            },
            {
                "question": "What was the fifth line?",
                "answer": "Line number 5",
                "evidence": ["D3:05"],
                "category": 4,
            },
            {
                "question": "How many seedlings survived?",
                "answer": "Two",
                "evidence": ["D1:3; D2:2"],
                "category": 1,
            },
            {
                "question": "What colour was Ana's car?",
                "adversarial_answer": "Red",
                "evidence": ["D2:1"],
                "category": 5,
            },
            {
                "question": "What did Ben wink about?",
                "answer": "The seedlings",
                "evidence": ["D1:2"],
                "category": 4,
            },
            {
                "question": "What did Ana plant?",
                "answer": "Tomatoes",
                "evidence": ["D1:1", "D8:1"],
                "category": 4,
            },
        ],
    }


def test_locomo_sessions_in_order_with_their_dates_and_one_label_per_person(tmp_path):
    path = _write_json(tmp_path / "locomo.json", [_locomo_sample()])
    (dialog,), errors = _split(open_dialogs(str(path)))
    assert not errors
    assert dialog.conversation_id == "talk-7" and dialog.source.dataset == "locomo"
    assert set(dialog.speakers) == {"Ana", "Ben"}
    # session 4 has nothing speakable; session 5's date has no session: three segments, in order
    assert [dict(s.info) for s in dialog.segments] == [
        {"session": 1, "date_time": "9:15 am on 3 March, 2022"},
        {"session": 2, "date_time": "6:40 pm on 19 April, 2022"},
        {"session": 3, "date_time": "11:05 am on 2 June, 2022"},
    ]
    texts = _session_texts(dialog)
    assert texts[0] == [
        "I finally planted the tomato seedlings on the balcony.",
        "Here is the first one that sprouted.",
    ]
    assert texts[2][-1] == "Line number 5 of the third talk."
    image = dialog.turns[1]
    assert image.meta["source_id"] == "D1:3"
    assert image.meta["image"]["caption"] == "a photo of a small green plant in a pot"
    assert "photo" not in image.text


def test_locomo_turns_and_sessions_that_cannot_be_spoken_are_left_out_and_noted(tmp_path):
    path = _write_json(tmp_path / "locomo.json", [_locomo_sample()])
    (dialog,) = _split(open_dialogs(str(path)))[0]
    assert "';)'" in _note(dialog, "turn D1:2:", "left out")
    assert "''" in _note(dialog, "turn D1:4:")
    assert "int, not a string" in _note(dialog, "turn D1:5:")
    assert "session 4" in _note(dialog, "sessions[3]", "no turn can be spoken")
    assert all(n.startswith(str(path)) for n in dialog.notes)


def test_locomo_questions_and_their_pitfalls(tmp_path):
    path = _write_json(tmp_path / "locomo.json", [_locomo_sample()])
    (dialog,) = _split(open_dialogs(str(path)))[0]
    probes = {p.question: p for p in dialog.probes}
    ids = [t.meta.get("source_id") for t in dialog.turns]

    year = probes["In which year did Ana plant tomatoes?"]
    assert year.answer == "2022" and year.evidence == (ids.index("D1:1"),)
    fifth = probes["What was the fifth line?"]
    assert fifth.evidence_ids == ("D3:5",) and dialog.turns[fifth.evidence[0]].text.startswith(
        "Line number 5"
    )
    both = probes["How many seedlings survived?"]
    assert both.evidence == (ids.index("D1:3"), ids.index("D2:2")) and both.scoring == "f1-parts"
    adversarial = probes["What colour was Ana's car?"]
    assert adversarial.answer == NOT_MENTIONED and adversarial.adversarial
    assert adversarial.scoring == "not-mentioned" and adversarial.meta["adversarial_answer"] == "Red"
    partly = probes["What did Ana plant?"]
    assert partly.evidence == (ids.index("D1:1"),) and partly.meta["unresolved_evidence"] == ["D8:1"]

    assert set(probes) == {
        "In which year did Ana plant tomatoes?",
        "What was the fifth line?",
        "How many seedlings survived?",
        "What colour was Ana's car?",
        "What did Ana plant?",
    }
    _note(dialog, "qa[1]", "names no evidence")
    _note(dialog, "qa[2]", "D9:9", "resolves to no turn")
    _note(dialog, "qa[6]", "D1:2", "only turns left out of the speech")


def test_realtalk_top_level_sessions_with_clean_text_and_turn_dates(tmp_path):
    def turn(n: str, who: str, text: str, when: str) -> dict[str, Any]:
        return {"speaker": who, "dia_id": n, "clean_text": text, "text": text + " [raw]", "date_time": when}

    chat = {
        "name": {"speaker_1": "Mira", "speaker_2": "Theo"},
        "session_1": [
            turn("D1:1", "Mira", "Did you get home before the storm?", "12.01.2024, 21:04:10"),
            turn("D1:2", "Theo", "Just barely, my umbrella broke on the bridge.", "12.01.2024, 21:06:55"),
        ],
        "session_2": [
            {
                **turn("D2:1", "Theo", "I bought a sturdier umbrella today.", "15.01.2024, 10:00:00"),
                "img_file": "u.jpg",
            },
            turn("D2:2", "Mira", "Good, the forecast says more rain.", "15.01.2024, 10:02:13"),
        ],
        "events_session_1": [],
        "qa": [
            {
                "question": "What broke on the bridge?",
                "answer": "Theo's umbrella",
                "evidence": ["D1:2"],
                "category": 4,
            }
        ],
    }
    path = _write_json(tmp_path / "Chat_9_Mira_Theo.json", chat)
    assert detect_format(str(path)) == "locomo"
    (dialog,), errors = _split(open_dialogs(str(path)))
    assert not errors and dialog.source.dataset == "realtalk" and dialog.conversation_id == "Chat_9_Mira_Theo"
    assert [s.info["date_time"] for s in dialog.segments] == ["12.01.2024, 21:04:10", "15.01.2024, 10:00:00"]
    assert dialog.turns[0].text == "Did you get home before the storm?"  # clean_text, not text
    assert dialog.turns[1].meta["date_time"] == "12.01.2024, 21:06:55"
    assert dialog.turns[2].meta["image"] == {"file": "u.jpg"}
    assert set(dialog.speakers) == {"Mira", "Theo"}
    assert dialog.probes[0].evidence == (1,)


# --- Multi-Session Chat ---------------------------------------------------------------------------


def _msc_episode() -> dict[str, Any]:
    return {
        "personas": [["I keep bees."], ["I repair bicycles."]],
        "previous_dialogs": [
            {
                "personas": [[], []],
                "dialog": [
                    {"text": "Hello there, do you have any hobbies?"},
                    {"text": "I fix old bicycles in my garage."},
                    {"text": "That sounds relaxing, I look after two beehives."},
                ],
                "time_num": 4,
                "time_unit": "hours",
                "time_back": "2 days 4 hours ago",
            },
            {
                "dialog": [
                    {"id": "Speaker 1", "text": "How were the bees this morning?"},
                    {"id": "Speaker 2", "text": ";)"},
                    {"id": "Speaker 1", "text": 7},
                    {"id": "Speaker 2", "text": "Calm, and the honey is almost ready."},
                ],
                "time_num": 2,
                "time_unit": "days",
                "time_back": "2 days ago",
            },
        ],
        "dialog": [
            {"id": "Speaker 1", "text": "Did you finish the blue bicycle?", "convai2_id": "x"},
            {"id": "Speaker 2", "text": "Yes, it rides beautifully now."},
        ],
        "metadata": {"initial_data_id": "train:ordered_17", "session_id": 3},
    }


def test_msc_parlai_session_file_one_line_one_conversation(tmp_path):
    unspoken = _msc_episode()
    unspoken["previous_dialogs"][0]["dialog"] = [{"text": ""}, {"text": "!!"}]
    path = tmp_path / "session_3" / "train.txt"
    path.parent.mkdir()
    write_jsonl(path, [_msc_episode(), unspoken, "{not json", {"turns": ["Hello."]}])
    assert detect_format(str(path)) == "msc"
    dialogs, errors = _split(open_dialogs(str(path)))
    first, second = dialogs
    assert (
        first.conversation_id == "session_3_train_000001" and first.source.original_id == "train:ordered_17"
    )
    assert [dict(s.info) for s in first.segments] == [
        {"session": 1, "time_back": "2 days 4 hours ago"},
        {"session": 2, "time_since_previous": "4 hours", "time_back": "2 days ago"},
        {"session": 3, "time_since_previous": "2 days"},
    ]
    assert _session_texts(first) == [
        [
            "Hello there, do you have any hobbies?",
            "I fix old bicycles in my garage.",
            "That sounds relaxing, I look after two beehives.",
        ],
        ["How were the bees this morning?", "Calm, and the honey is almost ready."],
        ["Did you finish the blue bicycle?", "Yes, it rides beautifully now."],
    ]
    # turns without an id alternate, Speaker 1 first: one label per person throughout
    one, two = "Speaker 1", "Speaker 2"
    assert [t.speaker for t in first.turns] == [one, two, one, one, two, one, two]
    assert not first.probes
    assert "';)'" in _note(first, "line 1", "sessions[1].turns[1]")
    assert "int, not a string" in _note(first, "line 1", "sessions[1].turns[2]")
    # line 2: its first session cannot be spoken: left out, the rest kept
    assert len(second.segments) == 2 and second.segments[0].info["session"] == 2
    _note(second, "line 2", "sessions[0]", "no turn can be spoken")
    assert [e.where for e in errors] == [f"{path} line 3", f"{path} line 4"]
    assert "invalid JSON" in str(errors[0]) and "not an MSC episode" in str(errors[1])


def _mirror_rows() -> list[dict[str, Any]]:
    def row(cid: int, session: int, dialogue: list[str], speaker: list[str]) -> dict[str, Any]:
        return {
            "dataset": "MSC",
            "dialoug_id": cid,
            "session_id": session,
            "persona1": ["I grow peppers."],
            "persona2": ["I play the cello."],
            "dialogue": dialogue,
            "speaker": speaker,
        }

    both = ["Speaker 1", "Speaker 2"]
    return [
        row(7, 1, ["Did the peppers turn red yet?", "Only one of them so far."], both),
        row(3, 0, ["Do you practise every day?", "Almost, an hour after dinner."], both),
        row(7, 0, ["What do you grow in the garden?", "Mostly peppers and some basil."], both),
        row(3, 1, ["How did the concert go?", "Very well, thank you.", "I am glad to hear it."], both),
    ]


def test_msc_mirror_rows_are_grouped_by_conversation_and_ordered_by_session(tmp_path):
    folder = tmp_path / "multi_session_chat"
    _write_parquet(folder / "data" / "train-00000-of-00001.parquet", _mirror_rows())
    assert detect_format(str(folder)) == "msc"
    dialogs, errors = _split(open_dialogs(str(folder), split="train"))
    assert not errors
    assert [d.conversation_id for d in dialogs] == ["msc_train_000007", "msc_train_000003"]
    peppers, cello = dialogs
    assert peppers.source.original_id == "7" and peppers.source.split == "train"
    assert [dict(s.info) for s in peppers.segments] == [
        {"session": 1, "session_id": 0},
        {"session": 2, "session_id": 1},
    ]
    assert _session_texts(peppers)[0] == ["What do you grow in the garden?", "Mostly peppers and some basil."]
    # a speaker list shorter than the utterances: the utterance without a speaker is noted
    assert cello.turns[-1].text == "Very well, thank you."
    assert set(cello.speakers) == {"Speaker 1", "Speaker 2"}
    assert "msc train #3" in _note(cello, "sessions[1].turns[2]", "speaker")
    # the same rows through the hub's code path ('hf:<path>' is read by datasets)
    via_hub = _split(open_dialogs(f"hf:{folder}", fmt="msc", split="train"))[0]
    assert [d.conversation_id for d in via_hub] == ["msc_train_000007", "msc_train_000003"]


# --- Conversation Chronicles ----------------------------------------------------------------------


def _episode(data_id: str) -> dict[str, Any]:
    names = ("first", "second", "third", "fourth", "fifth")
    record: dict[str, Any] = {
        "dataID": data_id,
        "relationship": "Neighbors",
        "time_interval": [
            "Start",
            "A few hours after",
            "A few days after",
            "A few weeks after",
            "A couple of years after",
        ],
        "summary": ["They talk."] * 5,
    }
    for n, name in enumerate(names, start=1):
        record[f"{name}_session_dialogue"] = [
            f"Good morning, the fence is finished, part {n}.",
            f"Thank you, it looks much better now, part {n}.",
        ]
        record[f"{name}_session_speakers"] = ["Neighbors A", "Neighbors B"]
    return record


def _chronicles_records() -> list[dict[str, Any]]:
    odd = _episode("episode-202")
    odd["fourth_session_speakers"] = ["Neighbors A"]  # one speaker short
    odd["third_session_dialogue"] = "not a list"
    odd["fifth_session_dialogue"] = None  # a session the record does not have
    odd["fifth_session_speakers"] = None
    return [_episode("episode-101"), odd]


def test_chronicles_json_lines_five_sessions_with_intervals_and_relationship(tmp_path):
    path = write_jsonl(tmp_path / "train.json", _chronicles_records())  # the release: JSON Lines in .json
    assert detect_format(str(path)) == "chronicles"
    dialogs, errors = _split(open_dialogs(str(path)))
    assert not errors
    full, odd = dialogs
    assert full.conversation_id == "episode-101" and full.source.line == 1
    assert [s.info["time_interval"] for s in full.segments] == [
        "Start",
        "A few hours after",
        "A few days after",
        "A few weeks after",
        "A couple of years after",
    ]
    assert all(s.info["relationship"] == "Neighbors" for s in full.segments)
    assert [s.info["session"] for s in full.segments] == [1, 2, 3, 4, 5]
    assert [t.speaker for t in full.turns] == ["Neighbors A", "Neighbors B"] * 5
    assert _session_texts(full)[4][0] == "Good morning, the fence is finished, part 5."
    assert not full.probes and not full.notes
    # the odd one: no fifth session (passed over), third not a list (noted), one turn without a speaker
    assert [s.info["session"] for s in odd.segments] == [1, 2, 4]
    _note(odd, "line 2", "sessions[2]", "no turn can be spoken")
    _note(odd, "line 2", "sessions[3].turns[1]", "speaker")
    assert len(odd.notes) == 2
    jl = write_jsonl(tmp_path / "valid.jsonl", _chronicles_records())
    assert detect_format(str(jl)) == "chronicles"


def test_chronicles_parquet_file_and_hub_style_folder(tmp_path):
    records = _chronicles_records()
    records[1]["fifth_session_dialogue"] = []  # parquet keeps one type a column
    records[1]["fifth_session_speakers"] = []
    records[1]["third_session_dialogue"] = ["Only one line here."]
    single = _write_parquet(tmp_path / "cc.parquet", records)
    assert detect_format(str(single)) == "chronicles"
    dialogs, errors = _split(open_dialogs(str(single), split="validation"))
    assert not errors and [d.conversation_id for d in dialogs] == ["episode-101", "episode-202"]
    assert dialogs[0].source.split == "validation" and dialogs[0].source.index == 0
    assert len(dialogs[0].segments) == 5
    # a session with no turns at all is left out and noted, naming the row
    _note(dialogs[1], "chronicles validation #1", "sessions[4]", "no turn can be spoken")
    hub = tmp_path / "hub"
    _write_parquet(hub / "default" / "train" / "0000.parquet", records)
    got = _split(open_dialogs(f"hf:{hub}", fmt="chronicles", split="train", limit=1))[0]
    assert [d.conversation_id for d in got] == ["episode-101"]


# --- LongMemEval ----------------------------------------------------------------------------------

LIMITS = DialogLimits(max_turn_chars=300)


def _longmemeval_items() -> list[dict[str, Any]]:
    long_reply = "Here is a very detailed plan for your week of meals. " * 10  # over 300 characters
    sessions = [
        [
            {"role": "user", "content": "Can you suggest a name for my new goldfish?"},
            {"role": "assistant", "content": "How about Bubbles or Captain Fin?"},
        ],
        [
            {
                "role": "user",
                "content": "I adopted a second cat last week, her name is Pepper.",
                "has_answer": True,
            },
            {"role": "assistant", "content": long_reply, "has_answer": False},
            {"role": "user", "content": "Thanks, that helps.", "has_answer": False},
        ],
        [
            {"role": "user", "content": "What should I pack for a rainy hike?"},
            {"role": "assistant", "content": "A light rain jacket and dry socks."},
        ],
    ]
    base = {
        "question_type": "multi-session",
        "question_date": "2023/06/01 (Thu) 10:00",
        "haystack_session_ids": ["sharegpt_a1_0", "answer_cat_1", "ultrachat_99"],
        "haystack_dates": ["2023/05/20 (Sat) 02:21", "2023/05/25 (Thu) 18:03", "2023/05/30 (Tue) 09:45"],
        "haystack_sessions": sessions,
        "answer_session_ids": ["answer_cat_1"],
    }
    unmarked = [[{k: v for k, v in t.items() if k != "has_answer"} for t in s] for s in sessions]
    return [
        {**base, "question_id": "q1", "question": "How many cats do I have now?", "answer": 2},
        {
            **base,
            "question_id": "q2_abs",
            "question_type": "single-session-user",
            "question": "What is the name of my dog?",
            "answer": "You did not mention a dog, only your cats.",
            "haystack_sessions": unmarked,
        },
    ]


def test_longmemeval_item_is_one_conversation_with_one_probe(tmp_path):
    path = _write_json(tmp_path / "longmemeval_s.json", _longmemeval_items())
    assert detect_format(str(path)) == "longmemeval"
    dialogs, errors = _split(open_dialogs(str(path), limits=LIMITS))
    assert not errors
    counted, abstention = dialogs
    assert counted.conversation_id == "q1" and counted.source.dataset == "longmemeval"
    assert [dict(s.info) for s in counted.segments] == [
        {"session": 1, "session_id": "sharegpt_a1_0", "date_time": "2023/05/20 (Sat) 02:21"},
        {"session": 2, "session_id": "answer_cat_1", "date_time": "2023/05/25 (Thu) 18:03"},
        {"session": 3, "session_id": "ultrachat_99", "date_time": "2023/05/30 (Tue) 09:45"},
    ]
    assert set(counted.speakers) == {"user", "assistant"}
    assert counted.turns[2].meta == {"source_id": "answer_cat_1:1", "has_answer": True}
    (probe,) = counted.probes
    assert probe.answer == "2" and probe.category == "multi-session" and not probe.adversarial
    assert probe.evidence == (2,) and probe.evidence_ids == ("answer_cat_1:1",)
    assert probe.meta == {"question_date": "2023/06/01 (Thu) 10:00"}
    # the long assistant message is left out of the speech, the conversation goes on
    assert "300" in _note(counted, "turn answer_cat_1:2:", "left out")
    assert _session_texts(counted)[1] == [
        "I adopted a second cat last week, her name is Pepper.",
        "Thanks, that helps.",
    ]
    # an abstention question with no has_answer mark: the answer session's turns are its evidence
    (probe,) = abstention.probes
    assert probe.adversarial and probe.answer == NOT_MENTIONED and probe.scoring == "not-mentioned"
    assert probe.evidence_ids == ("answer_cat_1:1", "answer_cat_1:3")
    assert probe.meta["abstention_answer"] == "You did not mention a dog, only your cats."


def test_longmemeval_oracle_sessions_are_put_in_date_order(tmp_path):
    item = _longmemeval_items()[0]
    for key in ("haystack_session_ids", "haystack_dates", "haystack_sessions"):
        item[key] = item[key][::-1]  # longmemeval_oracle.json does not sort them
    path = _write_json(tmp_path / "longmemeval_oracle.json", [item])
    (dialog,) = _split(open_dialogs(str(path), limits=LIMITS))[0]
    assert [s.info["session_id"] for s in dialog.segments] == [
        "sharegpt_a1_0",
        "answer_cat_1",
        "ultrachat_99",
    ]
    assert [s.info["session"] for s in dialog.segments] == [1, 2, 3]
    assert dialog.probes[0].evidence == (2,)
    item["haystack_dates"][0] = "sometime"  # a date in another form: the order given
    path = _write_json(tmp_path / "other.json", [item])
    (dialog,) = _split(open_dialogs(str(path), limits=LIMITS))[0]
    assert dialog.segments[0].info["session_id"] == "ultrachat_99"


def test_longmemeval_array_is_streamed_and_a_broken_one_names_the_item(tmp_path, monkeypatch):
    import synth.dialogs.sources.json_items as lme

    path = _write_json(tmp_path / "longmemeval_m.json", _longmemeval_items())
    whole = [d.conversation_id for d in _split(open_dialogs(str(path), limits=LIMITS))[0]]
    monkeypatch.setattr(lme, "_CHUNK", 7)  # items far longer than the buffer's steps
    assert (
        [d.conversation_id for d in _split(open_dialogs(str(path), limits=LIMITS))[0]]
        == whole
        == ["q1", "q2_abs"]
    )
    text = path.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: text.index('"question_id": "q2_abs"') + 40])
    dialogs, errors = _split(open_dialogs(str(cut), fmt="longmemeval", limits=LIMITS))
    assert [d.conversation_id for d in dialogs] == ["q1"]
    assert len(errors) == 1 and errors[0].where == f"{cut} item 1" and "invalid JSON" in errors[0].message


def test_longmemeval_rows_from_parquet(tmp_path):
    items = _longmemeval_items()
    items[0]["answer"] = "2"  # a parquet column has one type
    folder = tmp_path / "lme"
    _write_parquet(folder / "longmemeval_s" / "0000.parquet", items)
    assert detect_format(str(folder)) == "longmemeval"
    dialogs, errors = _split(open_dialogs(str(folder), limits=LIMITS))  # default split: longmemeval_s
    assert not errors and [d.conversation_id for d in dialogs] == ["q1", "q2_abs"]
    assert dialogs[0].probes[0].evidence_ids == ("answer_cat_1:1",)
    assert dialogs[0].source.split == "longmemeval_s"


# --- what every reader shares -----------------------------------------------------------------------


def test_json_records_reads_arrays_lines_and_one_object(tmp_path):
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(json_records(lines)) == [(0, 1, {"a": 1}), (1, 3, {"a": 2})]
    one = _write_json(tmp_path / "one.json", {"a": [1, 2]})
    assert list(json_records(one)) == [(0, None, {"a": [1, 2]})]
    array = tmp_path / "arr.json"
    array.write_text('\ufeff[ {"a": 1} ,\n 2.5, "x" ]')
    assert [r for _, _, r in json_records(array)] == [{"a": 1}, 2.5, "x"]
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]")
    assert list(json_records(empty)) == []


def test_detection_keeps_the_other_formats(tmp_path):
    dd = tmp_path / "dialogues_text.txt"
    dd.write_text("Hi . __eou__ Hello . __eou__\n")
    assert detect_format(str(dd)) == "dailydialog-txt"
    jl = write_jsonl(tmp_path / "plain.jsonl", [{"turns": ["One.", "Two."]}])
    assert detect_format(str(jl)) == "jsonl"
    plain = _write_parquet(tmp_path / "dd.parquet", [{"dialog": ["Hi.", "Hello."]}])
    assert detect_format(str(plain)) == "hf"
    msc_jsonl = write_jsonl(tmp_path / "msc.jsonl", [_msc_episode()])
    assert detect_format(str(msc_jsonl)) == "msc"
    bad = tmp_path / "bad.json"
    bad.write_text('{"a": ')
    with pytest.raises(ConfigError, match="cannot read as JSON"):
        detect_format(str(bad))
    other = _write_json(tmp_path / "other.json", [{"turns": ["Hi."]}])
    with pytest.raises(ConfigError, match="none of them"):
        detect_format(str(other))


def test_notes_of_an_item_in_a_json_array_name_the_item(tmp_path):
    path = _write_json(tmp_path / "locomo.json", [_locomo_sample(), _locomo_sample()])
    second = _split(open_dialogs(str(path)))[0][1]
    assert second.notes and all(n.startswith(f"{path} item 1: ") for n in second.notes)
