from collections import Counter

import pytest

from synth.dialogs.build import build_dialog
from synth.domain import Source
from synth.errors import VoiceError
from synth.produce.casting import MIN_DISTANCE, cast


def dialog(cid: str, speakers: list[str], voices=None):
    return build_dialog([(s, "Hello there.") for s in speakers], cid, Source("test"), voices)


@pytest.fixture(scope="module")
def catalog(engine):
    return engine.voices()


def test_distinct_and_stable_per_speaker(catalog):
    d = dialog("c1", ["A", "B", "A", "C", "B"])
    casting = cast(d, catalog, seed=3)
    assert list(casting) == ["A", "B", "C"]
    assert len({v.id for v in casting.values()}) == 3


def test_without_a_distance_every_voice_is_another_person(catalog):
    # the default distance treats derived voices of one speaker as one person: no preference
    d = dialog("c1", ["A", "B"])
    assert len({v.id for v in cast(d, catalog, seed=2).values()}) == 2


def test_deterministic_for_seed_and_id(catalog):
    d = dialog("c1", ["A", "B"])
    assert cast(d, catalog, seed=1) == cast(d, catalog, seed=1)
    draws = {tuple(v.id for v in cast(d, catalog, seed=s).values()) for s in range(20)}
    assert len(draws) > 5  # the seed matters


def test_speakers_of_a_conversation_are_far_apart(catalog, engine):
    for i in range(100):
        a, b = cast(dialog(f"c{i}", ["A", "B"]), catalog, seed=0, distance=engine.voice_distance).values()
        assert engine.voice_distance(a, b) >= MIN_DISTANCE - 1e-9


def test_spread_across_catalog(catalog, engine):
    used = Counter(
        v.id
        for i in range(600)
        for v in cast(dialog(f"d{i}", ["A", "B"]), catalog, distance=engine.voice_distance).values()
    )
    assert set(used) == {v.id for v in catalog}
    assert max(used.values()) < 4 * min(used.values())


def test_overrides(catalog):
    d = dialog("c1", ["A", "B"], voices={"B": "joe-vt0.80"})
    casting = cast(d, catalog, override={"A": "joe-vt1.20", "B": "joe-vt1.04", "Z": "joe-vt0.88"})
    assert casting["A"].id == "joe-vt1.20" and casting["B"].id == "joe-vt0.80"  # dialog wins
    with pytest.raises(VoiceError, match="unknown voice 'nope' for speaker 'A'"):
        cast(d, catalog, override={"A": "nope"})
    with pytest.raises(VoiceError, match="more than one speaker"):
        cast(d, catalog, override={"A": "joe-vt0.80"})


def test_too_many_speakers(catalog):
    small = catalog[:2]
    with pytest.raises(VoiceError, match="3 speakers but only 2 distinct voices"):
        cast(dialog("c1", ["A", "B", "C"]), small)
