"""`synth score` measures the voices' references with the models the dataset was made with, as
dataset.json records them, unless --model says otherwise."""

from __future__ import annotations

import json

from synth.cli.score import recorded_models


def test_the_models_a_dataset_records_are_the_ones_scored_with(tmp_path):
    (tmp_path / "dataset.json").write_text(
        json.dumps({"options": {"engine[1].model": "en_US-amy-low", "engine[0].model": "kokoro-v1.0"}})
    )
    assert recorded_models(tmp_path) == ["kokoro-v1.0", "en_US-amy-low"]
    (tmp_path / "dataset.json").write_text(json.dumps({"options": {"engine[0].model": None}}))
    assert recorded_models(tmp_path) == []  # the embedded voice: no --model
    (tmp_path / "dataset.json").unlink()
    assert recorded_models(tmp_path) == []  # a dataset made elsewhere: the flags' default
