import random
import re

import pytest

from synth.errors import ConfigError
from synth.produce.timeline import GapDistribution, Timeline


@pytest.mark.parametrize("spec", ["fixed:0.5", "uniform:0.1,0.9", "normal:0.4,0.2", "lognormal:0.3,0.5"])
def test_parse_and_sample_within_bounds(spec):
    dist = GapDistribution.parse(spec, min_sec=0.05, max_sec=1.0)
    assert dist.spec() == spec
    values = [dist.sample(random.Random(i)) for i in range(200)]
    assert all(0.05 <= v <= 1.0 for v in values)
    assert values == [dist.sample(random.Random(i)) for i in range(200)]


def test_fixed_is_fixed():
    assert GapDistribution.parse("fixed:0.3").sample(random.Random(0)) == 0.3


@pytest.mark.parametrize("bad", ["gauss:1,2", "normal:1", "fixed:a", "uniform:2,1", "normal:1,-1"])
def test_bad_specs(bad):
    with pytest.raises(ConfigError, match=re.escape(f"gap {bad!r}: ")) as info:
        GapDistribution.parse(bad)
    assert info.value.option == "gap"  # the CLI shows it as --gap (test_cli)


def _conversational_turns(n=4000, seed=1):
    """A long synthetic conversation on the conversational preset: two speakers alternating,
    with a third now and then, and the same speaker twice in a row sometimes."""
    import random

    rng = random.Random(seed)
    tl = Timeline(GapDistribution.parse("conversational"), seed, "stats")
    turns = []
    speaker = "A"
    for _ in range(n):
        duration = rng.uniform(0.8, 6.0)
        start = tl.place(duration, speaker=speaker)
        turns.append((speaker, start, start + duration))
        r = rng.random()
        speaker = speaker if r < 0.1 else ("C" if r < 0.2 else ("B" if speaker != "B" else "A"))
    return turns


def test_conversational_gaps_follow_the_documented_distribution():
    from statistics import NormalDist

    gap = GapDistribution.parse("conversational")
    assert gap.spec() == "conversational" and gap.overlaps
    turns = _conversational_turns()
    end, offsets = 0.0, []
    for i, (speaker, start, stop) in enumerate(turns):
        if i and speaker != turns[i - 1][0]:
            offsets.append(start - end)
        end = max(end, stop)
    expected = NormalDist(0.2, 0.45).cdf(0.0)  # the share of overlaps before any bound applies
    share = sum(o < 0 for o in offsets) / len(offsets)
    assert expected - 0.04 < share < expected + 0.02  # bounds only ever shorten an overlap away
    assert min(offsets) >= -0.8 - 1e-3 and max(offsets) <= 2.0 + 1e-3  # starts are rounded to ms
    positive = sorted(o for o in offsets if o >= 0)
    assert 0.2 < positive[len(positive) // 2] < 0.6  # the median gap: a few hundred milliseconds


def test_overlaps_keep_start_order_and_nobody_overlaps_themself():
    turns = _conversational_turns()
    last_end: dict[str, float] = {}
    for i, (speaker, start, stop) in enumerate(turns):
        if i:
            prev_speaker, prev_start, prev_stop = turns[i - 1]
            assert start >= prev_start + 0.5 * (prev_stop - prev_start) - 1e-3
        assert start >= last_end.get(speaker, 0.0)
        last_end[speaker] = stop


def test_the_classic_layout_never_overlaps():
    tl = Timeline(GapDistribution(), 3, "classic")
    end = 0.0
    for k in range(500):
        start = tl.place(1.0, speaker="AB"[k % 2])
        assert start >= end + 0.05 - 1e-9 or k == 0
        end = start + 1.0
