"""Stored conversations read back: never a file outside its folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest

from synth.workflows.validate import validate_dataset
from synth_client import SummaryEvent, SynthClient, TurnEvent
from tests.helpers import run_cli, write_jsonl
from tests.server.serving import (
    NO_RETRY,
    served,
    server,  # noqa: F401 (the fixture)
)


def _reseal(folder: Path) -> None:
    """Rewrite a conversation's integrity record to match its files, as someone who changes a
    dataset on purpose would: what is left to catch them is the path rule."""
    try:
        from synth.dataset.integrity import INTEGRITY_FILE, read_record, record_bytes
    except ImportError:  # a synth that records no integrity
        return
    rec = read_record(folder)
    if rec is not None:
        (folder / INTEGRITY_FILE).write_bytes(record_bytes(folder, rec["files"]))


def _received(events: list) -> bytes:
    out = b""
    for e in events:
        if isinstance(e, TurnEvent):
            out += e.wav
        elif isinstance(e, SummaryEvent):
            out += b"".join(e.files.values()) + e.samples_jsonl.encode()
    return out


@pytest.mark.faults
def test_get_conversation_never_streams_a_file_outside_its_folder(tmp_path):
    """Issue item 2 (server): a turn's audio_file naming a file outside the folder, a turn WAV
    that is a symbolic link to an identical WAV outside, and a conversation folder that is a link
    to a copy outside: GetConversation answers DATA_LOSS naming the field or the link, and sends
    none of the outside bytes; `synth batch --out` lists it as NOT_COPIED. A link
    conversations/<id> for an id not yet made (pointing outside, or at another conversation) is
    replaced by the new conversation; what it pointed at is untouched (was: INTERNAL)."""
    root, outside = tmp_path / "ds", tmp_path / "outside"
    outside.mkdir()
    secret = b"TOP-SECRET-" * 400
    (outside / "secret.txt").write_bytes(secret)
    with served(root) as srv, SynthClient(srv.target, backoff=NO_RETRY) as c:
        for cid in ("p_meta", "p_link", "p_folder", "p_good"):
            list(c.synthesize([("A", f"This is {cid}."), ("B", "Understood.")], conversation_id=cid))
        conv = root / "conversations"
        meta = json.loads((conv / "p_meta/metadata.json").read_text())
        meta["turns"][0]["audio_file"] = "../../../outside/secret.txt"
        (conv / "p_meta/metadata.json").write_text(json.dumps(meta))
        _reseal(conv / "p_meta")
        shutil.copy(conv / "p_link/turn_0.wav", outside / "turn_0.wav")  # the same bytes, outside
        (conv / "p_link/turn_0.wav").unlink()
        (conv / "p_link/turn_0.wav").symlink_to(outside / "turn_0.wav")
        shutil.move(conv / "p_folder", outside / "p_folder")
        (conv / "p_folder").symlink_to(outside / "p_folder")
        (outside / "p_folder/turn_1.wav").write_bytes(secret)  # what the link would hand out
        expect = {
            "p_meta": "audio_file",
            "p_link": "turn_0.wav: a symbolic link",
            "p_folder": "conversations/p_folder is a symbolic link",
        }
        for cid, named in expect.items():
            received: list = []
            with pytest.raises(grpc.RpcError) as info:
                for event in c.get_conversation(cid, timeout=30):
                    received.append(event)
            assert info.value.code() == grpc.StatusCode.DATA_LOSS, (cid, info.value.details())
            assert named in info.value.details(), info.value.details()
            assert str(tmp_path) not in info.value.details()  # the server's folders stay its own
            assert b"TOP-SECRET" not in _received(received) and received == []
        good = list(c.get_conversation("p_good"))
        assert [e.turn_id for e in good[:-1]] == [0, 1]

        victim = outside / "victim"
        victim.mkdir()
        (victim / "keep.txt").write_text("mine")
        (conv / "p_new").symlink_to(victim)
        (conv / "p_alias").symlink_to(conv / "p_good")
        before = {p.name: p.read_bytes() for p in (conv / "p_good").iterdir()}
        for cid in ("p_new", "p_alias"):
            summary = list(c.synthesize([("A", f"Now {cid} is made."), ("B", "Good.")], conversation_id=cid))[
                -1
            ]
            assert summary.written
            assert (conv / cid).is_dir() and not (conv / cid).is_symlink()
        assert [p.name for p in victim.iterdir()] == ["keep.txt"] and (
            victim / "keep.txt"
        ).read_text() == "mine"
        assert {p.name: p.read_bytes() for p in (conv / "p_good").iterdir()} == before
        assert [e.wav for e in list(c.get_conversation("p_good"))[:-1]] == [e.wav for e in good[:-1]]

        dialogs = write_jsonl(
            tmp_path / "d.jsonl",
            [
                {"conversation_id": cid, "turns": [f"This is {cid}.", "Understood."]}
                for cid in ("p_meta", "p_good")
            ],
        )
        res = run_cli("batch", "--server", srv.target, "--dialogs", str(dialogs), "--out", str(tmp_path / "copy"),
                      "--quiet", "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
    assert res.returncode == 3, res.stdout + res.stderr
    failures = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [(f["conversation_id"], f["code"]) for f in failures] == [("p_meta", "NOT_COPIED")]
    assert "DATA_LOSS" in failures[0]["error"]
    copied = [
        json.loads(x)["conversation_id"] for x in (tmp_path / "copy/manifest.jsonl").read_text().splitlines()
    ]
    assert copied == ["p_good"] and validate_dataset(tmp_path / "copy").ok
    assert "INTERNAL" not in srv.log()
