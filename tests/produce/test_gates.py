"""Quality gates and best-of-N takes at generate time (synth.produce.gates), with the real
embedded Piper voice and the embedded Whisper tiny.en: a gate rejects the dialog whose turn the
voice garbles and keeps the good ones; best-of-N keeps the best take; the same seed makes the
same dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.errors import ConfigError
from synth.produce.gates import Gate, GateConfig, take_voice
from tests.helpers import run_cli, write_jsonl

GOOD = {"conversation_id": "good", "turns": [
    {"speaker": "A", "text": "Good morning, how are you today?"},
    {"speaker": "B", "text": "I am fine, thank you very much."},
]}  # fmt: skip
GARBLED = {"conversation_id": "garbled", "turns": [
    {"speaker": "A", "text": "Hello there, nice to meet you."},
    {"speaker": "B", "text": "Zxq vbrtk plmwz gqxd hjkty wzxcv bnmqr tzpkl."},  # no voice says this
]}  # fmt: skip
HARD = {"conversation_id": "hard", "turns": [
    {"speaker": "A", "text": "Przemyslaw and Wojciech met Siobhan near Loughborough."},
    {"speaker": "B", "text": "Did Aoife bring the quinoa bruschetta to Gdansk?"},
    {"speaker": "A", "text": "No, Krzysztof ate the gnocchi in Worcestershire."},
]}  # fmt: skip


def _turns(out: Path, cid: str) -> list[dict]:
    return json.loads((out / "conversations" / cid / "metadata.json").read_text())["turns"]


def test_gates_parse_and_refuse_what_cannot_work():
    assert Gate.parse("wer<=0.2") == Gate("wer", "<=", 0.2)
    assert str(Gate.parse(" dnsmos_ovrl >= 2.5 ")) == "dnsmos_ovrl>=2.5"
    config = GateConfig(score=("signal",), gate=("wer<=0.2", "dnsmos_ovrl>=2.5"), takes=3)
    assert config.scorers == ("intelligibility", "dnsmos", "signal")  # the gates' scorers run too
    with pytest.raises(ConfigError, match="gate.*unknown score 'mos'"):
        Gate.parse("mos>=3")
    with pytest.raises(ConfigError, match="gate.*expected SCORE<=X"):
        Gate.parse("wer=0.2")
    with pytest.raises(ConfigError, match="asr_text"):  # a text is no threshold
        Gate.parse("asr_text<=1")
    with pytest.raises(ConfigError, match="takes.*need a --gate"):
        GateConfig(score=("signal",), takes=3)
    with pytest.raises(ConfigError, match="score_sample"):
        GateConfig(gate=("wer<=0.2",), score_sample=0)
    assert not GateConfig().enabled


def test_a_take_is_drawn_from_the_seed_the_conversation_the_turn_and_its_number(engine):
    voice = engine.voices()[0]
    assert take_voice(voice, 0, "c", "turns[0].text:0", 0) == voice  # the first take: the voice itself
    again = take_voice(voice, 0, "c", "turns[0].text:0", 1)
    assert again == take_voice(voice, 0, "c", "turns[0].text:0", 1)
    assert again.params["length_scale"] != voice.params["length_scale"]
    assert again.id == voice.id
    others = {take_voice(voice, s, c, "turns[0].text:0", k).params["length_scale"]
              for s in (0, 1) for c in ("c", "d") for k in (1, 2)}  # fmt: skip
    assert len(others) == 8


@pytest.mark.slow
def test_a_gate_rejects_the_dialog_the_voice_garbles_and_keeps_the_good_one(tmp_path):
    dialogs = write_jsonl(tmp_path / "d.jsonl", [GOOD, GARBLED])
    out = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(dialogs), "--out", str(out), "--quiet", "--noise-scale", "0", "--noise-w", "0",
        "--gate", "wer<=0.5", "--takes", "2",
    )  # fmt: skip
    assert res.returncode == 3, res.stderr
    assert [json.loads(line)["conversation_id"] for line in open(out / "manifest.jsonl")] == ["good"]
    (failure,) = [json.loads(line) for line in open(out / "failures.jsonl")]
    assert failure["conversation_id"] == "garbled" and failure["field"] == "turns[1].text"
    assert failure["gates_failed"] == ["wer<=0.5"]
    assert failure["scores"]["wer"] > 0.5 and failure["scores"]["takes"] == 2
    assert "failed the quality gate(s) wer<=0.5 in all 2 take(s)" in failure["error"]
    for turn in _turns(out, "good"):
        q = turn["quality"]
        assert q["wer"] <= 0.5 and q["takes"] == 1 and "gate_failed" not in q
        assert set(q["scorers"]) == {"intelligibility"}
    line = json.loads((out / "manifest.jsonl").read_text())
    assert line["quality"]["turns_scored"] == 2 and line["quality"]["wer"]["max"] <= 0.5
    assert "turns_flagged" not in line["quality"]

    flagged = tmp_path / "flagged"
    res = run_cli(
        "generate", "--dialogs", str(dialogs), "--out", str(flagged), "--quiet", "--noise-scale", "0",
        "--noise-w", "0", "--gate", "wer<=0.5", "--takes", "2", "--gate-fail", "flag",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    bad = _turns(flagged, "garbled")[1]["quality"]
    assert bad["gate_failed"] == ["wer<=0.5"] and bad["takes"] == 2 and bad["wer"] > 0.5
    meta = json.loads((flagged / "conversations" / "garbled" / "metadata.json").read_text())
    assert meta["quality_gates"]["flagged_turns"] == [1] and meta["quality_gates"]["gates"] == ["wer<=0.5"]
    lines = {
        x["conversation_id"]: x
        for x in map(json.loads, (flagged / "manifest.jsonl").read_text().splitlines())
    }
    assert lines["garbled"]["quality"]["turns_flagged"] == 1  # a filter finds it in the manifest
    assert "turns_flagged" not in lines["good"]["quality"]
    assert run_cli("validate", str(flagged)).returncode == 0


@pytest.mark.slow
def test_best_of_n_keeps_the_best_take_and_improves_the_worst_turn(engine):
    """Piper's embedded voice with its VITS noise: every take sounds different. Each take's
    verdict is recorded as the pipeline judges it: the first takes are what one take would keep."""
    from synth.dialogs.sources.jsonl import dialog_from_dict
    from synth.domain import Source
    from synth.produce.gates import Judge
    from synth.produce.pipeline import Pipeline
    from synth.quality import QualityConfig, build_scorers

    config = GateConfig(gate=("wer<=0",), takes=5, gate_fail="flag")
    judge = Judge(config, build_scorers(QualityConfig(scorers=("intelligibility",))))
    seen: dict[str, list[float]] = {}

    class Recording(Judge):
        def __call__(self, turn):
            verdict = judge(turn)
            seen.setdefault(turn.text, []).append(verdict.record["wer"])
            return verdict

    recording = Recording(config, judge.scorers)
    with Pipeline(engine, judge=recording) as pipeline:
        conv = pipeline.run(dialog_from_dict(HARD, Source("jsonl", path="hard.jsonl", line=1), "hard"))
    kept = {t.text: t.extra["quality"] for t in conv.turns}
    assert set(kept) == set(seen)
    for text, wers in seen.items():
        block = kept[text]
        assert block["takes"] == len(wers)
        assert block["wer"] == min(wers) == wers[block["take"]]  # the best take is the one kept
        assert block["take"] == wers.index(min(wers))  # the earliest of equals
    first = {t: w[0] for t, w in seen.items()}  # what one take keeps
    assert max(b["wer"] for b in kept.values()) <= max(first.values())
    assert sum(b["wer"] for b in kept.values()) < sum(first.values())
    assert any(len(set(w)) > 1 for w in seen.values())  # the takes do differ


@pytest.mark.slow
def test_the_same_seed_makes_the_same_dataset(tmp_path):
    from synth import GenerateOptions, PipelineConfig, generate
    from synth.engines import PiperConfig

    dialogs = write_jsonl(tmp_path / "d.jsonl", [GOOD, HARD])
    options = GenerateOptions(
        engine=PiperConfig(noise_scale=0.0, noise_w_scale=0.0),
        pipeline=PipelineConfig(seed=5),
        quality=GateConfig(score=("signal",), gate=("wer<=0.1",), takes=3, gate_fail="flag"),
    )
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert generate(dialogs, out, options).failed == 0
    for cid in ("good", "hard"):
        a, b = (json.loads((o / "conversations" / cid / "metadata.json").read_text()) for o in outs)
        for meta in (a, b):
            meta.pop("created_at", None)
            meta.pop("timing", None)
        assert [t["quality"] for t in a["turns"]] == [t["quality"] for t in b["turns"]]
        assert any(t["quality"]["takes"] > 1 for t in a["turns"]) or cid == "good"
        for turn in a["turns"]:
            name = turn["audio_file"]
            assert (outs[0] / "conversations" / cid / name).read_bytes() == (
                outs[1] / "conversations" / cid / name
            ).read_bytes()
    options_file = json.loads((outs[0] / "dataset.json").read_text())["options"]
    assert options_file["quality.gate"] == ["wer<=0.1"] and options_file["quality.takes"] == 3
    assert "quality.takes" not in GenerateOptions().fingerprint()  # older datasets still resume
