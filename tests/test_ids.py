from pathlib import Path

import pytest

from synth.errors import InvalidConversationId
from synth.ids import check_conversation_id, conversation_dir, derived_id


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "../../etc",
        "/etc/passwd",
        "a/b",
        "a\\b",
        ".hidden",
        "..",
        "x..y",
        "a b",
        "nul\x00",
        "é",
        "x" * 129,
        42,
        None,
    ],
)
def test_rejects_unsafe_ids(bad):
    with pytest.raises(InvalidConversationId):
        check_conversation_id(bad)


@pytest.mark.parametrize("good", ["dailydialog_train_000042", "a", "A-1.b_2", "x" * 128])
def test_accepts_safe_ids(good):
    assert check_conversation_id(good) == good


def test_derived_id_is_stable_and_safe():
    assert derived_id("DailyDialog", 42, "train") == "dailydialog_train_000042"
    assert derived_id("my dialogs.v2", 7) == "my_dialogs_v2_000007"
    check_conversation_id(derived_id("../../weird name", 1))


def test_conversation_dir_stays_under_root(tmp_path: Path):
    assert conversation_dir(tmp_path, "abc") == (tmp_path / "conversations" / "abc").resolve()
    with pytest.raises(InvalidConversationId):
        conversation_dir(tmp_path, "../escape")
