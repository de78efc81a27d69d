import pytest

from synth.errors import ConfigError
from synth.workflows.sharding import Shard


def test_shards_partition_ids_stably():
    ids = [f"conv_{i}" for i in range(2000)]
    shards = [Shard(i, 4) for i in range(4)]
    owners = [[s.index for s in shards if s.owns(cid)] for cid in ids]
    assert all(len(o) == 1 for o in owners)  # every id in exactly one shard
    sizes = [sum(o == [i] for o in owners) for i in range(4)]
    assert min(sizes) > 400  # spread evenly
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4) and Shard(2, 4).spec() == "2/4"
    assert [Shard(0, 4).owns(c) for c in ids] == [Shard.parse("0/4").owns(c) for c in ids]


@pytest.mark.parametrize("spec", ["4/4", "1", "a/b", "-1/3", "0/0"])
def test_bad_shard_specs(spec):
    with pytest.raises(ConfigError, match="shard"):
        Shard.parse(spec)
