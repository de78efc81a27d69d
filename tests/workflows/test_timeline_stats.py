"""The statistics of a generated dataset follow what it was configured to draw: the share of
overlapping speaker changes of the conversational gaps, and backchannels per opportunity."""

import json
import random
from statistics import NormalDist

import pytest

from synth.workflows.timeline_stats import timeline_stats
from tests.helpers import run_cli, write_jsonl

SUBJECTS = ["the garden", "the old train station", "a long meeting", "the bakery", "my brother", "the lake"]


@pytest.mark.slow
def test_generated_dataset_matches_its_configuration(tmp_path):
    rng = random.Random(5)
    dialogs = [
        {
            "conversation_id": f"s{i:02d}",
            "turns": [f"I keep thinking about {rng.choice(SUBJECTS)} and next week." for _ in range(6)],
        }
        for i in range(24)
    ]
    out = tmp_path / "ds"
    res = run_cli(
        "generate", "--dialogs", str(write_jsonl(tmp_path / "d.jsonl", dialogs)), "--out", str(out),
        "--quiet", "--gap", "conversational", "--backchannels", "0.3", "--noise-scale", "0", "--noise-w", "0",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    stats = timeline_stats(out)
    n = stats["speaker_changes"]
    assert n == 24 * 5
    expected = NormalDist(0.2, 0.45).cdf(0.0)  # 0.33: the bounds only shorten overlaps
    sd = (expected * (1 - expected) / n) ** 0.5
    assert abs(stats["overlap_share"] - expected) < 4 * sd
    # each opportunity is taken with probability 0.3; a backchannel that would run into the
    # listener's own (possibly overlapping) next turn is left out, so the share is at most that
    m = stats["backchannel_opportunities"]
    assert m >= 120
    assert 0.3 - 0.15 < stats["backchannels_per_opportunity"] <= 0.3 + 4 * (0.3 * 0.7 / m) ** 0.5
    res = run_cli("validate", str(out), "--stats", "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["timeline"] == stats
