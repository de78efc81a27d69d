"""One log line per call, naming its method, that nothing a client sends can forge."""

from __future__ import annotations

import json
import re

import grpc
import pytest

from synth_client import SynthClient
from tests.server.serving import NO_RETRY, served


def test_a_log_line_cannot_be_forged_by_a_value():
    from synth_server.logs import format_record, kv_value

    assert kv_value("conv_01") == "conv_01"
    forged = kv_value("x\n2026-01-01 synth_server method=Synthesize code=OK")
    assert "\n" not in forged and forged.startswith('"') and "\\n" in forged
    assert kv_value("") == '""' and kv_value("a b") == '"a b"'
    line = format_record({"method": "GetConversation", "conversation_id": "a\r\nb=c"}, as_json=False)
    assert line.splitlines() == [line] and line.startswith("method=GetConversation ")
    assert json.loads(format_record({"id": "a\nb"}, as_json=True)) == {"id": "a\nb"}


FORGED = "x\n2026-01-01 00:00:00,000 synth_server method=Synthesize conversation_id=forged code=OK turns=1"


@pytest.mark.faults
@pytest.mark.parametrize("as_json", [False, True], ids=["key-value", "json"])
def test_log_lines_name_their_method_and_cannot_be_forged(tmp_path, as_json):
    """Issue item 9: an id with a newline in GetConversation forged a log line, and every
    GetConversation was logged as method=Synthesize. Now one line per call, each naming its own
    method, and nothing a client sends can start a line."""
    with served(tmp_path / "ds", *(["--log-json"] if as_json else [])) as srv:
        with SynthClient(srv.target, backoff=NO_RETRY) as c:
            list(c.synthesize([("A", "Logged once.")], conversation_id="logged"))
            list(c.get_conversation("logged"))
            for bad in (FORGED, "missing_one", "évil\r\nmethod=ListVoices"):
                with pytest.raises(grpc.RpcError):
                    list(c.get_conversation(bad))
    text = srv.log()
    if as_json:
        records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        calls = [r for r in records if "method" in r]
        assert [(r["method"], r["code"]) for r in calls] == [
            ("Synthesize", "OK"),
            ("GetConversation", "OK"),
            ("GetConversation", "INVALID_ARGUMENT"),
            ("GetConversation", "NOT_FOUND"),
            ("GetConversation", "INVALID_ARGUMENT"),
        ], text
        assert all(r["conversation_id"] in ("logged", "missing_one", "") for r in calls)
    else:
        calls = [
            line.split(" synth_server ", 1)[1]
            for line in text.splitlines()
            if " synth_server method=" in line
        ]
        methods = [
            (re.search(r"method=(\S+)", x).group(1), re.search(r"code=(\S+)", x).group(1)) for x in calls
        ]
        assert methods == [
            ("Synthesize", "OK"),
            ("GetConversation", "OK"),
            ("GetConversation", "INVALID_ARGUMENT"),
            ("GetConversation", "NOT_FOUND"),
            ("GetConversation", "INVALID_ARGUMENT"),
        ], text
        assert not any("conversation_id=forged" in line for line in text.splitlines()), text
        assert not any(line.startswith("method=") for line in text.splitlines()), text
