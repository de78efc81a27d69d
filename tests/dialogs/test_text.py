import pytest

from synth.dialogs.text import clean_text, is_speakable, split_sentences


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("Hello , how are you ?", "Hello, how are you?"),
        ("it ' s fine , isn ' t it ?", "it's fine, isn't it?"),
        ("I ' m sure we ' ll go , they ' ve said so .", "I'm sure we'll go, they've said so."),
        ("\u201cQuoted\u201d and \u2018single\u2019 don\u2019t", "\"Quoted\" and 'single' don't"),
        ("too    many\t spaces \n here", "too many spaces here"),
        ("It costs $ 3 . 50 , or 1 , 000 yen .", "It costs $3.50, or 1,000 yen."),
        ("Meet at 10 : 30 ( sharp ) !", "Meet at 10:30 (sharp)!"),
        ('He said " wait here " and left .', 'He said "wait here" and left.'),
        ("Already clean, isn't it?", "Already clean, isn't it?"),
        ("zero\u200bwidth\u00a0space", "zerowidth space"),
    ],
)
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_clean_text_is_idempotent():
    for s in ["Hello , there !", "it ' s 3 . 5 ' clock", "a  b"]:
        assert clean_text(clean_text(s)) == clean_text(s)


def test_is_speakable():
    assert is_speakable("ok")
    assert is_speakable("42")
    assert is_speakable("\u00e9t\u00e9")
    assert not is_speakable("?!...")
    assert not is_speakable("  -- ")


def test_split_sentences_keeps_abbreviations_and_bounds_length():
    text = "Mr. Smith arrived. Dr. Jones left at 5 p.m. today! Did you see? Yes."
    assert split_sentences(text) == [
        "Mr. Smith arrived.",
        "Dr. Jones left at 5 p.m. today!",
        "Did you see?",
        "Yes.",
    ]
    long = ", ".join(["this is one clause of many"] * 40) + "."
    chunks = split_sentences(long, max_chars=100)
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks).replace(" ", "") == long.replace(" ", "")
    assert split_sentences("x" * 250, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]


def test_emoji_and_pictographs_are_removed_by_the_documented_rule():
    from synth.dialogs.text import clean_text

    assert clean_text("Great news 🎉!") == "Great news!"
    assert clean_text("I love it ❤️ so much") == "I love it so much"
    assert clean_text("Call 1️⃣ now 👍🏽.") == "Call 1 now."
    assert clean_text("The brand™ was sold.") == "The brand was sold."
    assert clean_text("It is 25°C and costs $5, 2 + 2 = 4.") == "It is 25°C and costs $5, 2 + 2 = 4."


def test_letters_a_voice_cannot_read_are_named():
    from synth.dialogs.text import foreign_script

    assert foreign_script("Café au lait, naïve résumé.", "en") is None
    assert "Han letters ('你好')" in foreign_script("Say 你好 please", "en")
    assert "Cyrillic" in foreign_script("Привет, friend", None)
    assert foreign_script("こんにちは world", "ja") is None
    assert foreign_script("Привет", "ru") is None


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("Pay \u202eenilno\u202c today.", "Pay enilno today."),  # a right-to-left override and its end
        ("Stay\u2060together.", "Staytogether."),  # a word joiner
        ("co\u00adoperate", "cooperate"),  # a soft hyphen
        ("e\u0301te\u0301", "\u00e9t\u00e9"),  # decomposed accents composed (NFC)
        ("Z" + "\u0301" * 12 + "ap", "\u0179\u0301\u0301\u0301ap"),  # a flood of marks cut to 3 on the letter
        ("\u0301alone", "alone"),  # a mark on no letter
        ("tab\there\x85next", "tab here next"),  # C0 and C1 controls are spaces
        ("flag\U000e0067\U000e0062", "flag"),  # tag characters
        ("Vi\u1ec7t Nam", "Vi\u1ec7t Nam"),  # two marks on one letter: a real orthography, kept
    ],
)
def test_transcripts_are_clean_unicode_by_one_rule(raw, clean):
    from synth.dialogs.text import clean_text, unclean

    assert clean_text(raw) == clean
    assert unclean(clean) is None
    assert clean_text(clean) == clean


def test_unclean_names_what_breaks_the_rule():
    from synth.dialogs.text import unclean

    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in unclean("a\u202eb")
    assert "NFC" in unclean("e\u0301")
    assert "combining marks" in unclean("x" + "\u0301\u0302\u0303\u0304")  # x has no precomposed form


def test_spoken_text_is_the_clean_transcript_and_validate_holds_the_rule(tmp_path):
    import json

    from tests.helpers import run_cli, write_jsonl

    source = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "conversation_id": "odd",
                "turns": [
                    "Pay \u202eenilno\u202c to\u2060day, co\u00adoperate.",
                    "Fine" + "\u0301" * 9 + ".",
                ],
            }
        ],
    )
    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(source), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    folder = out / "conversations" / "odd"
    meta = json.loads((folder / "metadata.json").read_text())
    assert [t["text"] for t in meta["turns"]] == [
        "Pay enilno today, cooperate.",
        "Fin\u00e9\u0301\u0301\u0301.",
    ]
    for t in meta["turns"]:  # what was spoken (its words, timed) is the transcript, byte for byte
        assert (folder / t["transcript_file"]).read_text() == t["text"] + "\n"
        assert " ".join(w["word"] for w in t["words"]) == t["text"]
    (folder / "turn_0.txt").write_text("Pay \u202eenilno today, cooperate.\n")
    res = run_cli("validate", str(out))
    assert (
        res.returncode == 1
        and "turn_0.txt: transcript is not clean text: it holds U+202E" in res.stdout + res.stderr
    )
