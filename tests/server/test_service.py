"""The servicer on a real loopback port, called with the real client: streamed turns, what is
written, cancellation, the ASR check, full duplex, the sample settings a dataset was made with."""

from __future__ import annotations

import io
import threading
import time

import grpc
import pytest
import soundfile as sf

from synth.workflows.validate import validate_dataset
from synth_client import SummaryEvent, SynthClient, TurnEvent
from synth_server import ServerOptions, ServiceConfig, SynthServer, generation
from tests.helpers import free_port, run_cli, write_jsonl
from tests.server.serving import DIALOG, LONG, manifest_ids, start, target


def test_one_dialog_streams_turns_then_summary(server):
    with SynthClient(target(server)) as c:
        events = list(c.synthesize(DIALOG, voices={"A": "joe-vt0.80"}, conversation_id="srv_one"))
    turns = [e for e in events if isinstance(e, TurnEvent)]
    assert [e.turn_id for e in turns] == [0, 1, 2] and isinstance(events[-1], SummaryEvent)
    assert len(events) == 4
    assert turns[0].voice == "joe-vt0.80" and turns[0].voice == turns[2].voice != turns[1].voice
    audio, rate = sf.read(io.BytesIO(turns[1].wav))
    assert rate == 16000 and abs(len(audio) / rate - turns[1].duration_sec) < 1e-3
    assert turns[1].start_time > turns[0].end_time
    summary = events[-1]
    assert summary.written and summary.path == "conversations/srv_one"
    assert summary.metadata["total_turns"] == 3 and summary.manifest_line["total_tokens"] > 0
    assert len(summary.samples) == 3
    root = server.service.config.out
    assert validate_dataset(root).ok
    assert (root / summary.path / "turn_2.txt").read_text().strip() == DIALOG[2][1]


def test_stream_only_writes_nothing(server):
    root = server.service.config.out
    before = manifest_ids(root)
    with SynthClient(target(server)) as c:
        events = list(c.synthesize(DIALOG, conversation_id="srv_stream_only", stream_only=True))
    assert not events[-1].written and events[-1].path == ""
    assert manifest_ids(root) == before and not (root / "conversations" / "srv_stream_only").exists()


@pytest.mark.slow
def test_twenty_concurrent_streams(server):
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with SynthClient(target(server)) as c:
                results[i] = list(
                    c.synthesize(
                        [("A", f"Hello number {i}."), ("B", "Hello back.")], conversation_id=f"conc_{i:02d}"
                    )
                )
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    for i, events in results.items():
        assert [e.turn_id for e in events[:-1]] == [0, 1]
        assert events[-1].conversation_id == f"conc_{i:02d}"
    root = server.service.config.out
    assert sum(1 for cid in manifest_ids(root) if cid.startswith("conc_")) == 20
    assert validate_dataset(root).ok


def test_cancel_and_deadline_leave_nothing(engine, tmp_path):
    root = tmp_path / "ds"
    srv = start(engine, root)
    try:
        with SynthClient(target(srv)) as c:
            stream = c.synthesize(LONG, conversation_id="cancelled")
            assert next(stream).turn_id == 0
            stream.close()  # cancels the call
            with pytest.raises(grpc.RpcError) as err:
                list(c.synthesize(LONG, conversation_id="too_slow", timeout=1.0))
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = time.monotonic() + 30
        while srv.service.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)
        assert srv.service.in_flight == 0  # the server stopped working on both
        assert manifest_ids(root) == []
        assert list((root / "conversations").iterdir()) == [] and list((root / ".tmp").iterdir()) == []
    finally:
        srv.stop(grace=0)


def test_asr_check_on_the_server(engine, tmp_path):
    from synth.api import AsrCheckConfig

    config = ServiceConfig(
        out=tmp_path / "ds", generation=generation(asr_check=AsrCheckConfig(threshold=0.5))
    )
    srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
    try:
        with SynthClient(target(srv)) as c:
            summary = list(c.synthesize(DIALOG, conversation_id="asr_checked"))[-1]
    finally:
        srv.stop(grace=0)
    assert summary.metadata["asr_check"]["model"] == "embedded:tiny.en"
    assert all("wer" in t["asr_check"] for t in summary.metadata["turns"])


@pytest.mark.slow
def test_full_duplex_server_sends_events_and_conversation_audio(engine, tmp_path):
    """`serve --conversation-audio --backchannels`: the server writes conversation.wav and the
    backchannels' audio, streams them after the turns (Synthesize and GetConversation alike), and
    `synth batch --out` keeps a local copy that validates."""
    from synth.dataset.mixdown import ConversationAudioConfig
    from synth.produce.pipeline import PipelineConfig
    from synth.produce.timeline import GapDistribution
    from tests.helpers import start_server

    config = ServiceConfig(
        out=tmp_path / "srv",
        generation=generation(
            pipeline=PipelineConfig(gap=GapDistribution.parse("conversational"), backchannels=1.0),
            conversation_audio=ConversationAudioConfig(),
        ),
    )
    srv = SynthServer(engine, config, ServerOptions(host="127.0.0.1", port=0)).start()
    long = "We walked along the river for an hour, and then it started to rain quite heavily on us."
    try:
        with SynthClient(target(srv)) as c:
            events = list(
                c.synthesize([("A", long), ("B", "Oh no, did you get soaked?")], conversation_id="fd")
            )
            again = list(c.get_conversation("fd"))
    finally:
        srv.stop(grace=0)
    summary, stored = events[-1], again[-1]
    folder = tmp_path / "srv" / "conversations" / "fd"
    assert summary.metadata["events"] and "conversation.wav" in summary.files
    for name in ["conversation.wav", *(e["audio_file"] for e in summary.metadata["events"])]:
        assert summary.files[name] == stored.files[name] == (folder / name).read_bytes()
    assert validate_dataset(tmp_path / "srv").ok

    port = free_port()
    proc = start_server(tmp_path / "srv2", port, "--conversation-audio", "--backchannels", "1.0")
    try:
        dialogs = write_jsonl(
            tmp_path / "d.jsonl", [{"conversation_id": "fd2", "turns": [long, "Yes, completely."]}]
        )
        res = run_cli("batch", "--server", f"127.0.0.1:{port}", "--dialogs", str(dialogs), "--out",
                      str(tmp_path / "local"), "--quiet")  # fmt: skip
        assert res.returncode == 0, res.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    report = validate_dataset(tmp_path / "local")
    assert report.ok, report.format()
    local = tmp_path / "local" / "conversations" / "fd2"
    assert (local / "conversation.wav").read_bytes() == (
        tmp_path / "srv2/conversations/fd2/conversation.wav"
    ).read_bytes()


def test_serve_refuses_at_start_a_dataset_made_with_other_sample_settings(engine, tmp_path):
    from synth.errors import ConflictError
    from synth.samples.builder import SampleConfig
    from synth_server.service import SynthService
    from tests.helpers import EXAMPLES

    out = tmp_path / "ds"
    res = run_cli("generate", "--dialogs", str(EXAMPLES), "--out", str(out), "--quiet", "--limit", "1",
                  "--speech-profile", "rate:10")  # fmt: skip
    assert res.returncode == 0, res.stderr
    with pytest.raises(ConflictError, match="speech_profile llama-omni, not rate:10"):
        SynthService(engine, ServiceConfig(out=out))  # the default profile: refused before it starts
    rate = generation(samples=SampleConfig(speech_profile="rate:10"))
    service = SynthService(engine, ServiceConfig(out=out, generation=rate))
    service.engine.close()
    res = run_cli("serve", "--out", str(out), "--port", "0")
    assert res.returncode != 0 and "other sample settings" in res.stderr and "speech_profile" in res.stderr
