"""The committed stubs are what the proto generates."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO


def test_stubs_are_generated_from_the_proto():
    res = subprocess.run(
        [sys.executable, "proto/generate.py", "--check"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
