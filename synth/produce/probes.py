"""Memory probes: a coherent conversation's questions spoken, placed after their evidence, and
measured (docs/memory.md).

A probe is asked at a `time` on the conversation timeline: the conversation's end (placement
`end`, the default), or the first session boundary at least N minutes after its latest evidence
(`after:N`; the end when there is none). It is never asked before its evidence. Its distances are
measured from the end of its latest and of its earliest evidence turn to that time, in seconds
and in counted tokens (the turns' samples between the two, as total_tokens counts them).

Probes are not turns: they are not on the conversation's timeline audio, not in its turns and,
unless asked (`--probes in-training`), not in samples.jsonl. Their samples (target kind
`answer`) go to probes.jsonl, numbered after the conversation's turns, so an evaluator that
carries state through the conversation's turns reaches each probe with the whole conversation (or
the part before its time) behind it. Probes do not depend on one another: each is answered from
the same state (the one at its time), never from the answers to the probes before it."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ..dataset.metadata import probe_records
from ..domain import Conversation, Dialog, Probe, SpokenProbe, SynthesizedTurn, Turn, Voice
from ..errors import ConfigError, DialogError
from ..options import option
from ..samples.builder import BuildsSamples, with_probes
from ..seeding import noise_seed
from .render import TurnRenderer

PROBE_MODES = ("separate", "in-training", "off")
ASKERS = ("speaker", "examiner")
EXAMINER = "examiner"


def _parse_placement(text: str) -> str:
    m = re.fullmatch(r"\s*(end|after:\s*(\d+(?:\.\d*)?|\.\d+))\s*", text)
    if not m:
        raise ConfigError("probe_placement", "expected end or after:MINUTES (e.g. after:10)", text)
    return "end" if m.group(1) == "end" else f"after:{float(m.group(2)):g}"


@dataclass(frozen=True)
class ProbeConfig:
    """Where a coherent conversation's questions go and who asks them."""

    mode: str = option(
        "separate",
        flag="--probes",
        choices=PROBE_MODES,
        help="memory probes of sources with questions (LoCoMo, REALTALK, LongMemEval): separate: spoken "
        "and written with their samples in probes.jsonl, never in the training samples; in-training: "
        "their samples also in samples.jsonl after the turns; off: none",
    )
    placement: str = option(
        "end",
        flag="--probe-placement",
        metavar="end|after:MINUTES",
        parse=_parse_placement,
        help="where each probe is asked: at the conversation's end, or at the first session boundary at "
        "least MINUTES after its latest evidence (the end when there is none)",
    )
    asker: str = option(
        "speaker",
        flag="--probe-voice",
        choices=ASKERS,
        help="who asks: speaker (the person who did not say the latest evidence) or examiner (one more "
        "voice, apart from every speaker's)",
    )
    answer_audio: bool = option(
        False,
        flag="--probe-answer-audio",
        help="also speak each probe's answer in the main speaker's voice (probe_N_answer.wav): the moshi "
        "export puts it on the model's channel",
    )

    def __post_init__(self) -> None:
        if self.mode not in PROBE_MODES:
            raise ConfigError("probes", f"choose one of {', '.join(PROBE_MODES)}", self.mode)
        if self.asker not in ASKERS:
            raise ConfigError("probe_voice", f"choose {' or '.join(ASKERS)}", self.asker)
        object.__setattr__(self, "placement", _parse_placement(self.placement))

    @property
    def after_sec(self) -> float | None:
        """The least distance of `after:N` in seconds; None for `end`."""
        return None if self.placement == "end" else float(self.placement.split(":", 1)[1]) * 60


def asker_of(probe: Probe, dialog: Dialog, casting: Mapping[str, Voice], asker: str) -> str:
    """Who asks: the examiner, or the first speaker (in order of appearance) who did not say the
    probe's latest evidence (the only speaker, in a monologue)."""
    if asker == EXAMINER:
        return EXAMINER
    said = dialog.turns[max(probe.evidence)].speaker
    return next((s for s in casting if s != said), said)


def boundaries(dialog: Dialog, turns: Sequence[SynthesizedTurn]) -> list[float]:
    """The session boundaries on the timeline: the end of each session's last turn, but the
    last session's (the conversation's end is not a boundary between sessions)."""
    ends: list[float] = []
    for seg in dialog.segments[:-1]:
        inside = [t.end_time for t in turns if seg.first_turn <= t.source_turn <= seg.last_turn]
        if inside:
            ends.append(max(inside))
    return sorted(ends)


def place(
    evidence_end: float, end: float, bounds: Sequence[float], after_sec: float | None
) -> tuple[float, str]:
    """(time, placement) of a probe whose latest evidence ends at `evidence_end`."""
    if after_sec is None:
        return end, "end"
    k = bisect.bisect_left(bounds, evidence_end + after_sec - 1e-9)
    if k < len(bounds):
        return bounds[k], f"after:{after_sec / 60:g}"
    return end, "end"


class ProbeSpeaker:
    """Speaks and measures a conversation's probes with a pipeline's renderer and casting."""

    def __init__(
        self,
        renderer: TurnRenderer,
        config: ProbeConfig,
        cast: Callable[[Dialog], dict[str, Voice]],
        seed: int = 0,
    ):
        self.renderer = renderer
        self.config = config
        self.cast = cast
        self.seed = seed  # the pipeline's: each probe's noise seed is drawn from it

    def voices(self, dialog: Dialog, casting: Mapping[str, Voice]) -> dict[str, Voice]:
        """The casting with the examiner's voice added when the examiner asks (kept apart from
        every speaker by the same casting rules)."""
        if self.config.asker != EXAMINER or not dialog.probes:
            return dict(casting)
        probe = Dialog(
            dialog.conversation_id,
            tuple(Turn(s, ".") for s in [*casting, EXAMINER]),
            dialog.source,
            {**dialog.voices, **{s: v.id for s, v in casting.items()}},
        )
        return self.cast(probe)

    def speak(
        self,
        dialog: Dialog,
        casting: Mapping[str, Voice],
        turns: Sequence[SynthesizedTurn],
        main_speaker: str | None,
        sink: Callable[[SpokenProbe], SpokenProbe] | None = None,
    ) -> list[SpokenProbe]:
        """Every probe of the dialog spoken and placed (`turns`: the conversation's placed turns,
        audio released or not), each handed to `sink` (the writer) as soon as it is spoken."""
        if self.config.mode == "off" or not dialog.probes:
            return []
        voices = self.voices(dialog, casting)
        end = max((t.end_time for t in turns), default=0.0)
        bounds = boundaries(dialog, turns)
        last_end = source_ends(turns)
        main = main_speaker if main_speaker is not None and main_speaker in casting else next(iter(casting))
        out = []
        for index, probe in enumerate(dialog.probes):
            if not all(i in last_end for i in probe.evidence):
                raise DialogError(
                    f"probe {probe.probe_id}: its evidence turn is not in the conversation",
                    dialog.source.describe(),
                    "probes",
                    dialog.conversation_id,
                )
            asked_by = asker_of(probe, dialog, casting, self.config.asker)
            voice = voices[asked_by]
            evidence_end = max(last_end[i] for i in probe.evidence)
            time, placement = place(evidence_end, end, bounds, self.config.after_sec)
            cid = dialog.conversation_id
            question_seed = noise_seed(self.seed, cid, f"probe:{index}:question")
            audio = self.renderer.finish(
                self.renderer.pieces([(probe.question, voice)], None, [question_seed])[0]
            ).audio
            answer = None
            if self.config.answer_audio:
                answer_seed = noise_seed(self.seed, cid, f"probe:{index}:answer")
                answer = self.renderer.finish(
                    self.renderer.pieces([(probe.answer, casting[main])], None, [answer_seed])[0]
                ).audio
            spoken = SpokenProbe(
                index,
                probe,
                asked_by,
                voice,
                audio,
                self.renderer.sample_rate,
                time,
                placement,
                answer,
                casting[main] if answer is not None else None,
            )
            out.append(sink(spoken) if sink else spoken)
        return out


def source_ends(turns: Sequence[SynthesizedTurn]) -> dict[int, float]:
    """input turn index -> the end of its last part on the timeline."""
    out: dict[int, float] = {}
    for t in turns:
        out[t.source_turn] = max(out.get(t.source_turn, 0.0), t.end_time)
    return out


def attach(
    conv: Conversation, spoken: list[SpokenProbe], builder: BuildsSamples | None, mode: str
) -> Conversation:
    """The conversation with its spoken probes and their samples (`in-training`: also after the
    turns' samples, and counted in its tokens)."""
    if not spoken:
        return conv
    samples = None
    if builder is not None:
        records = probe_records(spoken, conv.turns, conv.samples, len(conv.turns))
        speaker_ids = {s: i for i, s in enumerate(conv.dialog.speakers)}
        samples = builder.answer_samples(conv.conversation_id, records, speaker_ids)
    conv = replace(conv, probes=spoken, probe_samples=samples)
    if mode == "in-training" and samples and conv.samples is not None and conv.tokens is not None:
        in_training, tokens = with_probes(conv.samples, conv.tokens, samples)
        conv = replace(conv, samples=in_training, tokens=tokens)
    return conv
