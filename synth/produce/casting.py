"""Casting: which voice speaks for each speaker of a conversation.

Rules: every speaker gets a distinct voice, the same on every turn; explicit overrides win; the
rest is drawn from a generator seeded by (seed, conversation id), so a dataset is reproducible
and its first voices spread uniformly over the catalog; later speakers of a conversation are
drawn among the voices farthest from those already cast, so that the speakers sound apart."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ..domain import Dialog, Voice
from ..engines.base import speaker_distance
from ..errors import VoiceError
from ..seeding import conversation_rng

# The distance (Engine.voice_distance) at which two voices count as apart: about three steps of
# the embedded voice's derived set (vocal-tract factors 0.08 apart); different people always are.
MIN_DISTANCE = 0.22
# The same for distances measured by the speaker encoder (1 - cosine of embeddings): one voice
# in two takes is about 0.05 apart, neighbouring derived voices 0.13, three steps 0.4.
MIN_MEASURED_DISTANCE = 0.3


def is_attribute_request(value: str) -> bool:
    """`gender:female` or `gender:female,accent:English` asks for attributes, not a voice id."""
    return ":" in value


def parse_attributes(value: str) -> dict[str, str]:
    """KEY:VALUE[,KEY:VALUE] (e.g. gender:female) as the attributes to cast by, lower case; a
    VoiceError otherwise."""
    out = {}
    for part in value.split(","):
        key, sep, want = part.partition(":")
        if not sep or not key.strip() or not want.strip():
            raise VoiceError(f"expected KEY:VALUE[,KEY:VALUE], got {value!r}")
        out[key.strip().lower()] = want.strip().lower()
    return out


def matches(voice: Voice, attributes: Mapping[str, str]) -> bool:
    """Whether a voice's metadata has every asked attribute (case-insensitive; `f`/`m` for
    gender too)."""
    short = {"f": "female", "m": "male"}
    for key, want in attributes.items():
        have = str(voice.meta.get(key, "")).strip().lower()
        if short.get(have, have) != short.get(want, want):
            return False
    return True


def cast(
    dialog: Dialog,
    catalog: Sequence[Voice],
    seed: int = 0,
    override: Mapping[str, str] | None = None,
    distance: Callable[[Voice, Voice], float] = speaker_distance,
    min_distance: float = MIN_DISTANCE,
    per_person: bool = False,
) -> dict[str, Voice]:
    """Map each speaker of `dialog` to a Voice. `override` (speaker -> voice id, or attributes such
    as `gender:female`, e.g. from the command line) applies to every dialog; the dialog's own
    `voices` field wins over it. `distance` is the engine's `voice_distance` or a measured one;
    later speakers are kept at least `min_distance` from those already cast when the catalog
    allows. `per_person`: a speaker label names a person (a coherent corpus where the same person
    talks in several conversations): each first takes the voice drawn for its name alone, from
    (seed, name), so it keeps that voice in every conversation where it is free; a person whose
    voice another speaker of the conversation already has is cast by the usual rules."""
    by_id = {v.id: v for v in catalog}
    speakers = dialog.speakers
    if len(speakers) > len(by_id):
        raise VoiceError(f"{len(speakers)} speakers but only {len(by_id)} distinct voices in the catalog")
    wanted = {**(override or {}), **dialog.voices}
    asked = {s: parse_attributes(v) for s, v in wanted.items() if s in speakers and is_attribute_request(v)}
    cast_to: dict[str, Voice] = {}
    for speaker, voice_id in wanted.items():
        if speaker not in speakers or speaker in asked:
            continue  # an override for a speaker this dialog doesn't have
        if voice_id not in by_id:
            raise VoiceError(f"unknown voice {voice_id!r} for speaker {speaker!r} (see `synth voices`)")
        cast_to[speaker] = by_id[voice_id]
    shared = sorted({v.id for v in cast_to.values() if list(cast_to.values()).count(v) > 1})
    if shared:
        raise VoiceError(
            f"voice {shared[0]!r} is given to more than one speaker; every speaker needs a distinct voice"
        )
    rng = conversation_rng(seed, dialog.conversation_id, "casting")
    # speakers who ask for attributes choose first, so that the others do not take their voices
    for speaker in sorted(speakers, key=lambda s: s not in asked):
        if speaker in cast_to:
            continue
        used = {v.id for v in cast_to.values()}
        free = [v for v in catalog if v.id not in used]
        if speaker in asked:
            free = [v for v in free if matches(v, asked[speaker])]
            if not free:
                raise VoiceError(
                    f"no free voice in the catalog has {wanted[speaker]!r} for speaker {speaker!r} "
                    "(see `synth voices`: attributes are in each voice's meta)"
                )
        if per_person and speaker not in asked:
            own = conversation_rng(seed, f"person:{speaker.casefold()}", "casting").choice(list(catalog))
            if own.id not in used:
                cast_to[speaker] = own
                continue
        if cast_to:
            score = {v.id: min(distance(v, c) for c in cast_to.values()) for v in free}
            bar = min(max(score.values()), min_distance)
            free = [v for v in free if score[v.id] >= bar - 1e-9]
        cast_to[speaker] = rng.choice(free)
    return {s: cast_to[s] for s in speakers}
