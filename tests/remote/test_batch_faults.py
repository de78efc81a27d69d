"""The batch client against servers that are gone."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.helpers import free_port, run_cli, write_jsonl
from tests.server.serving import served


@pytest.mark.faults
def test_batch_against_servers_that_are_all_gone_fails_fast(tmp_path):
    """Issue item 13: 28 dialogs against two servers that are gone took 261 s with --timeout 20
    (connection refused retried as "pushed back by busy servers"). Now the batch stops once no
    server has been reachable for --unreachable-timeout (10 s), says so, and lists every dialog
    as UNREACHABLE."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"gone{i:02d}", "turns": [f"Dialog {i} begins.", "It ends."]}
            for i in range(28)
        ],
    )
    gone = [free_port(), free_port()]
    began = time.monotonic()
    res = run_cli("batch", *sum((["--server", f"127.0.0.1:{p}"] for p in gone), []), "--dialogs", str(dialogs),
                  "--timeout", "20", "--quiet", "--failures", str(tmp_path / "f.jsonl"), timeout=120)  # fmt: skip
    took = time.monotonic() - began
    print(f"28 dialogs, both servers gone: {took:.1f} s, exit {res.returncode}")
    assert res.returncode == 3, res.stdout + res.stderr
    assert took < 20, took
    assert "no server reachable" in res.stdout and "pushed back" not in res.stdout, res.stdout
    assert all(str(p) in res.stdout for p in gone)
    failures = [json.loads(x) for x in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert sorted(f["conversation_id"] for f in failures) == [f"gone{i:02d}" for i in range(28)]
    assert Counter(f["code"] for f in failures) == {"UNREACHABLE": 28}
    assert len(res.stderr.splitlines()) < 10  # a few of them shown, not 28 times the same reason


@pytest.mark.faults
def test_batch_leaves_a_gone_server_out_and_finishes_on_the_other(tmp_path):
    """One of two servers is gone: its breaker opens, the other makes every dialog, nothing
    fails, and no call is counted as pushed back."""
    dialogs = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"conversation_id": f"half{i:02d}", "turns": [f"Dialog {i} begins.", "It ends."]}
            for i in range(12)
        ],
    )
    with served(tmp_path / "ds") as srv:
        began = time.monotonic()
        res = run_cli("batch", "--server", f"127.0.0.1:{free_port()}", "--server", srv.target, "--dialogs",
                      str(dialogs), "--quiet", "--concurrency", "4", "--failures", str(tmp_path / "f.jsonl"))  # fmt: skip
        took = time.monotonic() - began
    print(f"12 dialogs, one server of two gone: {took:.1f} s")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "generated 12" in res.stdout and "pushed back" not in res.stdout, res.stdout
    listed = (tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()
    assert len(listed) == 12
