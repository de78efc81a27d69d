"""Training samples: template, labels, padding, and ids equal to transformers'."""

import pytest

from synth.dataset.records import TurnRecord
from synth.samples.builder import (
    IGNORE_INDEX,
    SPEECH_TOKEN_INDEX,
    SampleBuilder,
    SampleConfig,
    part_starts,
    speech_positions,
    target_kinds,
)
from synth.samples.tokenizer import EmbeddedLlama3, HuggingFaceTokenizer
from synth.samples.tokenizer import export_llama3_hf as build_llama3_tokenizer_dir


def turn(turn_id: int, speaker_id: int, text: str, duration: float) -> TurnRecord:
    return TurnRecord(
        turn_id=turn_id,
        speaker="AB"[speaker_id],
        speaker_id=speaker_id,
        text=text,
        audio_file=f"turn_{turn_id}.wav",
        transcript_file=f"turn_{turn_id}.txt",
        duration_sec=duration,
        start_time=0.0,
        end_time=duration,
    )


TURNS = [
    turn(0, 0, "Did you water the plants?", 1.52),
    turn(1, 1, "Yes, twice. They look much happier now.", 2.31),
    turn(2, 0, "Great, thank you!", 0.97),
]


def template(system: str, target: str) -> str:
    return (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n" + system + "<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n<speech><|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n" + target + "<|eot_id|>"
    )


def hf_reference(tok, text: str) -> list[int]:
    """LLaMA-Omni's tokenizer_speech_token: split at <speech>, tokenize the parts, join with -200."""
    before, after = text.split("<speech>")
    enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]
    return enc(before) + [SPEECH_TOKEN_INDEX] + enc(after)


@pytest.fixture(scope="module")
def hf_tok(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(build_llama3_tokenizer_dir(tmp_path_factory.mktemp("t"))))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["chat", "transcribe"])
def test_samples_follow_the_template(fmt, hf_tok):
    builder = SampleBuilder(EmbeddedLlama3(), SampleConfig(format=fmt, speech_profile="rate:10"))
    samples, tokens = builder.build("conv", TURNS)
    assert [s["turn_number"] for s in samples] == [0, 1, 2]
    assert [s["speaker_id"] for s in samples] == [0, 1, 0]
    for i, s in enumerate(samples):
        target = TURNS[i + 1].text if fmt == "chat" and i < 2 else TURNS[i].text
        n = s["original_length"]
        ids, labels, mask = s["input_ids"], s["labels"], s["attention_mask"]
        assert len(ids) == len(labels) == len(mask) and len(ids) % 64 == 0 and len(ids) >= n
        assert ids[:n] == hf_reference(hf_tok, template(builder.config.system_prompt, target))
        assert ids.count(SPEECH_TOKEN_INDEX) == 1
        assert ids[n:] == [128004] * (len(ids) - n) and mask == [1] * n + [0] * (len(ids) - n)
        supervised = [(j, t) for j, t in enumerate(labels) if t != IGNORE_INDEX]
        first = supervised[0][0]
        assert [j for j, _ in supervised] == list(range(first, n))
        assert [t for _, t in supervised] == ids[first:n]
        assert hf_tok.decode([t for _, t in supervised]) == target + "<|eot_id|>"
        assert s["target"] == ("reply" if fmt == "chat" and i < 2 else "transcript")
    assert tokens["speech_tokens"] == sum(speech_positions(t.duration_sec, 10) for t in TURNS)
    assert tokens["text_tokens"] == sum(s["original_length"] - 1 for s in samples)
    assert tokens["total_tokens"] == tokens["text_tokens"] + tokens["speech_tokens"]


@pytest.mark.slow
def test_embedded_and_hf_tokenizer_give_identical_samples(tmp_path):
    folder = build_llama3_tokenizer_dir(tmp_path / "tok")
    a, ta = SampleBuilder(EmbeddedLlama3()).build("c", TURNS)
    b, tb = SampleBuilder(HuggingFaceTokenizer(str(folder))).build("c", TURNS)
    assert [s["input_ids"] for s in a] == [s["input_ids"] for s in b]
    assert ta["total_tokens"] == tb["total_tokens"]


def test_pad_multiple_and_speech_rate_are_configurable():
    builder = SampleBuilder(EmbeddedLlama3(), SampleConfig(pad_multiple=16, speech_profile="rate:25"))
    samples, tokens = builder.build("c", TURNS[:1])
    assert len(samples[0]["input_ids"]) % 16 == 0 and len(samples[0]["input_ids"]) < 64 + 16
    assert tokens["speech_tokens"] == 38  # ceil(1.52 * 25)


def test_the_default_counts_as_llama_omni_does():
    """300 positions a turn, whatever its length (Whisper's 30 s window)."""
    _, tokens = SampleBuilder(EmbeddedLlama3()).build("c", TURNS)
    assert tokens["speech_profile"] == "llama-omni" and tokens["speech_tokens"] == 300 * len(TURNS)


def _turn(i: int, speaker: str, text: str, source: int | None = None) -> TurnRecord:
    return TurnRecord(
        i,
        speaker,
        f"turn_{i}.wav",
        f"turn_{i}.txt",
        1.0,
        float(i),
        i + 1.0,
        0,
        None,
        text,
        source_turn=source,
    )


def test_reply_targets_never_cross_a_part_nor_stay_with_one_speaker():
    turns = [
        _turn(0, "A", "Where were you?", 0),
        _turn(1, "B", "At the station, waiting.", 1),  # a reply split in two pieces
        _turn(2, "B", "The train never came.", 1),
        _turn(3, "A", "Oh no.", 2),
        _turn(4, "A", "Did you call them?", 3),  # A goes on
        _turn(5, "B", "I did.", 4),  # the part's last turn
        _turn(6, "A", "A new dialog begins.", 0),
        _turn(7, "B", "And it ends.", 1),
    ]
    kinds = target_kinds(turns, part_starts=frozenset({6}))
    assert kinds == [
        ("reply", 1, 2),  # the whole split reply
        ("transcript", 1, 1),  # a piece followed by the same speaker's next piece
        ("reply", 3, 3),
        ("transcript", 3, 3),  # the same speaker goes on
        ("reply", 5, 5),
        ("transcript", 5, 5),  # never the next part's opener
        ("reply", 7, 7),
        ("transcript", 7, 7),
    ]
    samples, _ = SampleBuilder(EmbeddedLlama3()).build("c", turns, frozenset({6}))
    tok = EmbeddedLlama3()
    first = [t for t, lab in zip(samples[0]["input_ids"], samples[0]["labels"]) if lab != IGNORE_INDEX]
    assert tok.decode(first[:-1]) == "At the station, waiting. The train never came."
    assert [s["target"] for s in samples] == [k for k, _, _ in kinds]
    assert part_starts([{"first_turn": 0}, {"first_turn": 6}]) == frozenset({6})
    assert [k for k, _, _ in target_kinds(turns, fmt="transcribe")] == ["transcript"] * 8
