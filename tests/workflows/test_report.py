"""`synth report` looked at as a person would: a real dataset (conversational gaps, backchannels,
the ASR check's word error rates, memory probes), the report written by the CLI, then the page
opened in a real headless Chromium (Debian's package): a screenshot taken, every image loaded, no
error on the page's console, the worst turns playable from the report's own folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, REPO, run_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "Chromium is missing: apt-get install chromium (.ci/run installs it)"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_the_report_renders_in_a_browser_with_every_figure(tmp_path):
    ds = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(EXAMPLES), "--out", str(ds), "--quiet", "--gap", "conversational",
        "--backchannels", "0.5", "--asr-check", "--asr-threshold", "0.99",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    res = run_cli("generate", "--dialogs", str(REPO / "examples" / "memory.json"), "--out", str(ds), "--quiet",
                  "--resume-with-changes")  # fmt: skip
    assert res.returncode == 0, res.stderr
    out = tmp_path / "report"
    res = run_cli("report", str(ds), str(out))
    assert res.returncode == 0, res.stderr
    assert "report of 5 conversation(s)" in res.stdout
    data = json.loads((out / "report.json").read_text())
    assert data["conversations"] == 5 and data["turns"] == 18 + 15
    assert len(data["probe_distances_min"]) == 6 and data["backchannel_rate"] is not None
    assert data["worst"]["asr_wer"] and data["provenance"]["engine"] == "piper"
    page = (out / "index.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing fetched
    figures = page.count("<img ")
    assert figures == 7  # durations x2, tokens, offsets, probes, a score, voices (no sessions here)
    dom = _chromium("--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom",
                    (out / "index.html").as_uri(), profile=tmp_path / "p1")  # fmt: skip
    assert f'data-images-loaded="{figures}/{figures}"' in dom.stdout, dom.stdout[-500:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    shot = tmp_path / "shot.png"
    _chromium(
        "--window-size=1200,3000",
        f"--screenshot={shot}",
        (out / "index.html").as_uri(),
        profile=tmp_path / "p2",
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    for src in (line.split('src="')[1].split('"')[0] for line in page.splitlines() if "<audio" in line):
        assert (out / src).stat().st_size > 1000  # the worst turns play from the report's folder
