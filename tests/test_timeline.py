import random
import re

import pytest

from synth.errors import ConfigError
from synth.timeline import GapDistribution


@pytest.mark.parametrize("spec", ["fixed:0.5", "uniform:0.1,0.9", "normal:0.4,0.2", "lognormal:0.3,0.5"])
def test_parse_and_sample_within_bounds(spec):
    dist = GapDistribution.parse(spec, min_sec=0.05, max_sec=1.0)
    assert dist.spec() == spec
    values = [dist.sample(random.Random(i)) for i in range(200)]
    assert all(0.05 <= v <= 1.0 for v in values)
    assert values == [dist.sample(random.Random(i)) for i in range(200)]


def test_fixed_is_fixed():
    assert GapDistribution.parse("fixed:0.3").sample(random.Random(0)) == 0.3


@pytest.mark.parametrize("bad", ["gauss:1,2", "normal:1", "fixed:a", "uniform:2,1", "normal:-1,1"])
def test_bad_specs(bad):
    with pytest.raises(ConfigError, match=re.escape(f"gap {bad!r}: ")) as info:
        GapDistribution.parse(bad)
    assert info.value.option == "gap"  # the CLI shows it as --gap (test_cli)
