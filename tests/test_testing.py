"""synth.testing: the public fake engine and record builders behave as documented, so that tests
built on them test what they claim."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.api import GenerateOptions
from synth.engines.base import SynthesisRequest
from synth.errors import DialogError, SynthError
from synth.testing import ToneEngine, dialog, make_dataset
from synth.workflows.validate import validate_dataset


def test_tone_engine_is_deterministic_timed_and_records_its_calls():
    engine = ToneEngine(voices=3)
    low, high = engine.voices()[0], engine.voices()[2]
    a, b = engine.synthesize([SynthesisRequest("Hello there.", low), SynthesisRequest("Hello there.", high)])
    again = engine.synthesize([SynthesisRequest("Hello there.", low)])[0]
    assert np.array_equal(a.samples, again.samples) and not np.array_equal(a.samples, b.samples)
    assert a.samples.size == round(len("Hello there.") / engine.chars_per_sec * engine.sample_rate)
    assert [w.word for w in a.words] == ["Hello", "there."]
    assert a.words[-1].end <= a.samples.size / a.sample_rate
    spectrum = np.abs(np.fft.rfft(b.samples))
    assert abs(np.argmax(spectrum) * b.sample_rate / b.samples.size - 170.0) < 2  # voice 2: 110 + 2 * 30 Hz
    assert engine.calls == [["Hello there.", "Hello there."], ["Hello there."]]
    assert engine.voice_distance(low, high) == 1.0 and engine.voice_distance(low, low) == 0.0


def test_tone_engine_fails_as_asked():
    engine = ToneEngine(fail_text="garble", max_batch=2)
    voice = engine.voices()[0]
    with pytest.raises(SynthError, match="garble"):
        engine.synthesize([SynthesisRequest("say garble now", voice)])
    with pytest.raises(MemoryError):
        engine.synthesize([SynthesisRequest(f"{i}", voice) for i in range(3)])


def test_dialog_is_checked_like_any_source():
    d = dialog([("A", "  Hi\u200b there. "), ("B", "Hello.")], "c1")
    assert [t.text for t in d.turns] == ["Hi there.", "Hello."] and d.conversation_id == "c1"
    with pytest.raises(DialogError, match="conversation_id"):
        dialog([("A", "Hi.")], "../escape")


def test_make_dataset_writes_a_valid_dataset_and_lists_what_failed(tmp_path):
    engine = ToneEngine(fail_text="garble")
    dialogs = [
        dialog([("A", "Good morning."), ("B", "Morning! Coffee?"), ("A", "Yes, please.")], "ok"),
        dialog([("A", "Please garble this."), ("B", "No.")], "bad"),
    ]
    summary = make_dataset(tmp_path / "ds", dialogs, engine, GenerateOptions(samples=None))
    assert summary.generated == 1 and summary.failed == 1
    report = validate_dataset(tmp_path / "ds")
    assert report.ok, report
    lines = [json.loads(x) for x in (tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()]
    assert [x["conversation_id"] for x in lines] == ["ok"]
    failures = [json.loads(x) for x in (tmp_path / "ds" / "failures.jsonl").read_text().splitlines()]
    assert failures[0]["conversation_id"] == "bad" and "garble" in failures[0]["error"]
