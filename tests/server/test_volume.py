"""A volume that fills up: UNAVAILABLE with nothing kept, NOT_SERVING until a write succeeds again."""

from __future__ import annotations

import json
import time

import grpc
import pytest

from synth.workflows.validate import validate_dataset
from synth_client import SynthClient, check_health
from tests.helpers import fill_leaving, small_volume
from tests.server.serving import NO_RETRY, SENTENCE, served


@pytest.mark.faults
@pytest.mark.slow
def test_disk_full_while_mixing_conversation_audio(tmp_path):
    """Issue item 3 (serve): free space swept so that the disk fills while the turns, the mix
    (conversation.wav) or the records are written. Every call is OK or UNAVAILABLE "nothing was
    kept" (never INTERNAL), health says NOT_SERVING until a write succeeds again, nothing partial
    is left, and the dataset validates with exactly the conversations that were answered OK."""
    dialog = [("A", SENTENCE), ("B", "Oh no, did you get soaked?")]
    with small_volume(tmp_path / "vol", 16384) as vol:
        out = vol / "ds"
        with served(out, "--conversation-audio") as srv, SynthClient(srv.target, backoff=NO_RETRY) as c:
            list(c.synthesize(dialog, conversation_id="first"))
            folder = out / "conversations" / "first"
            mix = (folder / "conversation.wav").stat().st_size
            turns = sum(p.stat().st_size for p in folder.glob("turn_*"))
            pages = lambda n: n // 4096 + 1
            low, high = pages(turns), pages(turns) + 3 * pages(mix) + 16  # up to room for all of it
            answers: dict[str, str] = {}
            for i, free in enumerate(range(low, high, max(1, (high - low) // 12))):
                cid = f"sweep{i:02d}"
                filler = fill_leaving(vol, free)
                try:
                    list(c.synthesize(dialog, conversation_id=cid, timeout=60))
                    answers[cid] = "OK"
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, (free, exc.code(), exc.details())
                    assert "nothing was kept" in exc.details(), exc.details()
                    answers[cid] = exc.details()
                    assert check_health(srv.target) == "NOT_SERVING"
                    with pytest.raises(grpc.RpcError) as info:  # refused at once while it cannot write
                        list(c.synthesize([("A", "Anyone there?")], conversation_id="refused"))
                    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
                finally:
                    filler.unlink()
                deadline = time.time() + 20
                while check_health(srv.target) != "SERVING" and time.time() < deadline:
                    time.sleep(0.1)
                assert check_health(srv.target) == "SERVING"
        print({k: v[:100] for k, v in answers.items()})
        failed = {k: v for k, v in answers.items() if v != "OK"}
        assert any("conversation.wav" in v for v in failed.values()), answers  # the mix itself failed
        assert any(v == "OK" for v in answers.values())
        assert "INTERNAL" not in srv.log()
        listed = [json.loads(x)["conversation_id"] for x in (out / "manifest.jsonl").read_text().splitlines()]
        assert sorted(listed) == sorted(["first", *(k for k, v in answers.items() if v == "OK")])
        assert sorted(p.name for p in (out / "conversations").iterdir()) == sorted(listed)
        assert [p for p in (out / ".tmp").iterdir() if p.is_dir()] == []
        report = validate_dataset(out)
        assert report.ok, report.format()
