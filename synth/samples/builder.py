"""Tokenized training samples (docs/dataset-format.md), as pure functions over turn texts.

Template (Llama 3 chat, LLaMA-Omni conventions):

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\n<speech><|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{target}<|eot_id|>

`<speech>` is the id -200, replaced in the model by projected speech features. Labels are -100
except the target and its closing <|eot_id|>. Sequences are padded to a multiple of 64.

Formats: `chat` (target = the reply) and `transcribe` (target = the turn's own text). Every
sample says what its target is (`"target"`, also in metadata per turn):

- `reply`: the next *other* speaker's words within the same source dialog: the next turn, when
  it has another speaker and belongs to the same session part; a reply that was split into
  pieces (a long turn) is the whole reply, all its pieces' words.
- `transcript`: the turn's own words, where there is no reply to learn: a conversation's last
  turn, a session part's last turn (the next part is another dialog), and a turn followed by the
  same speaker (a piece of a split turn, or a speaker who goes on).

So every turn's speech still reaches the model in order and the conversation state is carried
through the end, and no target ever crosses a part or stays with one speaker."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..dataset.records import ProbeRecord, TurnRecord
from ..errors import ConfigError, SynthError
from ..options import option
from .tokenizer import Tokenizer

ANSWER_TARGET = "answer"  # a memory probe's sample: its answer (docs/memory.md)
IGNORE_INDEX = -100
SPEECH_TOKEN_INDEX = -200
FORMATS = ("chat", "transcribe")
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant in a spoken conversation. Listen to what the user says and reply naturally."
)
# LLaMA-Omni's own system prompt: `conv_llama_3` in omni_speech/conversation.py (ictnlp/LLaMA-Omni).
LLAMA_OMNI_SYSTEM_PROMPT = (
    "You are a helpful language and speech assistant. You are able to understand the speech content "
    "that the user provides, and assist the user with a variety of tasks using natural language."
)
SYSTEM_PROMPTS = {"default": DEFAULT_SYSTEM_PROMPT, "llama-omni": LLAMA_OMNI_SYSTEM_PROMPT}
# LLaMA-Omni pads or trims every turn to Whisper's 30 s window: 3000 mel frames, 1500 encoder
# frames, 300 positions after its 5x downsampling; audio past 30 s is lost.
LLAMA_OMNI_POSITIONS = 300
WHISPER_WINDOW_SEC = 30.0


def system_prompt(text: str) -> str:
    """A preset by name ('default', 'llama-omni') or the prompt itself."""
    return SYSTEM_PROMPTS.get(text, text)


@dataclass(frozen=True)
class SpeechProfile:
    """How many positions a turn's speech takes in the model's context.

    `rate:N`: N per second of audio (10: Whisper's 50 Hz frames after LLaMA-Omni's 5x
    downsampling, when audio is not padded). `llama-omni`: every turn 300 (Whisper's 30 s window,
    padded or trimmed), and no turn may be longer than 30 s."""

    kind: str = "rate"
    per_sec: float = 10.0

    @classmethod
    def parse(cls, spec: str) -> SpeechProfile:
        if spec == "llama-omni":
            return cls("llama-omni", LLAMA_OMNI_POSITIONS / WHISPER_WINDOW_SEC)
        kind, _, value = spec.partition(":")
        try:
            per_sec = float(value)
        except ValueError:
            per_sec = -1.0
        if kind != "rate" or per_sec <= 0:
            raise ConfigError(
                "speech_profile", "expected rate:N (N > 0 positions per second) or llama-omni", spec
            )
        return cls("rate", per_sec)

    def spec(self) -> str:
        return "llama-omni" if self.kind == "llama-omni" else f"rate:{self.per_sec:g}"

    @property
    def max_turn_sec(self) -> float | None:
        return WHISPER_WINDOW_SEC if self.kind == "llama-omni" else None

    def positions(self, duration_sec: float) -> int:
        if self.kind == "llama-omni":
            return LLAMA_OMNI_POSITIONS
        return speech_positions(duration_sec, self.per_sec)


@dataclass(frozen=True)
class SampleConfig:
    """The training samples: format, padding, how speech positions are counted (a speech
    profile, `rate:N` or `llama-omni`) and the system prompt (text, or a preset name)."""

    format: str = option(
        "chat",
        flag="--sample-format",
        choices=FORMATS,
        help="chat: the target is the reply (the next other speaker's words); transcribe: the turn's own words",
    )
    pad_multiple: int = option(64, help="pad sequences to a multiple of this (the TTT mini-batch)")
    speech_profile: str = option(
        "llama-omni",
        help="how speech positions are counted in total_tokens: llama-omni (300 a turn, Whisper's "
        "30 s window; no turn may be longer than 30 s) or rate:N (N per second of audio)",
    )
    system_prompt: str = option(
        DEFAULT_SYSTEM_PROMPT,
        text=lambda prompt: next((k for k, v in SYSTEM_PROMPTS.items() if v == prompt), prompt),
        help="the samples' system prompt: a text, or a preset: 'default' or 'llama-omni' (the prompt "
        "of LLaMA-Omni's conv_llama_3 template)",
    )

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError("format", "choose chat or transcribe", self.format)
        if self.pad_multiple < 1:
            raise ConfigError("pad_multiple", "must be at least 1", self.pad_multiple)
        SpeechProfile.parse(self.speech_profile)
        object.__setattr__(self, "system_prompt", system_prompt(self.system_prompt))

    @property
    def profile(self) -> SpeechProfile:
        return SpeechProfile.parse(self.speech_profile)


def target_kinds(
    turns: Sequence[TurnRecord], part_starts: Collection[int] = (), fmt: str = "chat"
) -> list[tuple[str, int, int]]:
    """Per turn, (kind, first, last): its target is the text of turns first..last ('reply': the
    reply's turns; 'transcript': the turn itself). `part_starts`: indices of the turns that begin
    a session part after the first (see the module docstring for the rules)."""
    out = []
    n = len(turns)
    for i, turn in enumerate(turns):
        nxt = i + 1
        if fmt != "chat" or nxt >= n or nxt in part_starts or turns[nxt].speaker == turn.speaker:
            out.append(("transcript", i, i))
            continue
        last = nxt
        piece = turns[nxt].source_turn
        while (
            piece is not None
            and last + 1 < n
            and last + 1 not in part_starts
            and turns[last + 1].source_turn == piece
        ):
            last += 1
        out.append(("reply", nxt, last))
    return out


def with_probes(
    samples: list[dict[str, Any]], tokens: dict[str, Any], answers: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The training samples with the memory probes' samples after the turns' (`--probes
    in-training`), and the token counts that hold them too."""
    text = sum(int(s["original_length"]) - 1 for s in answers)
    speech = sum(int(s["speech_tokens"]) for s in answers)
    counted = dict(tokens)
    counted.update(
        text_tokens=tokens["text_tokens"] + text,
        speech_tokens=tokens["speech_tokens"] + speech,
        total_tokens=tokens["total_tokens"] + text + speech,
        probes_in_samples=True,
    )
    return samples + answers, counted


def part_starts(segments: Sequence[Mapping[str, Any]] | None) -> frozenset[int]:
    """The turn ids where a session's parts begin, after the first (metadata `segments`)."""
    return frozenset(int(s["first_turn"]) for s in (segments or [])[1:])


def speech_positions(duration_sec: float, per_sec: float) -> int:
    """How many speech positions a turn of `duration_sec` takes at `per_sec` a second (at least
    one)."""
    return max(1, math.ceil(duration_sec * per_sec - 1e-9))


class BuildsSamples(Protocol):
    """What producers and `synth tokenize` need of a sample builder: a conversation's training
    samples and token counts from its turn records (SampleBuilder is the one synth ships)."""

    def build(
        self,
        conversation_id: str,
        turns: Sequence[TurnRecord],
        part_starts: Collection[int] = (),
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]: ...

    def answer_samples(
        self, conversation_id: str, probes: Sequence[ProbeRecord], speaker_ids: Mapping[str, int]
    ) -> list[dict[str, Any]]: ...


class SampleBuilder:
    """Builds every sample of a conversation; header ids are encoded once per builder."""

    def __init__(self, tokenizer: Tokenizer, config: SampleConfig = SampleConfig()):
        self.tokenizer = tokenizer
        self.config = config
        sp = tokenizer.special_id
        bos, start, end, eot = (
            sp("<|begin_of_text|>"),
            sp("<|start_header_id|>"),
            sp("<|end_header_id|>"),
            sp("<|eot_id|>"),
        )
        system, user, assistant, nl, nl_system = tokenizer.encode_texts(
            ["system", "user", "assistant", "\n\n", "\n\n" + config.system_prompt]
        )
        self.eot = eot
        self.pad_id = tokenizer.pad_id
        self.prefix = (
            [bos, start]
            + system
            + [end]
            + nl_system
            + [eot, start]
            + user
            + [end]
            + nl
            + [SPEECH_TOKEN_INDEX, eot, start]
            + assistant
            + [end]
            + nl
        )

    def describe(self) -> dict[str, Any]:
        profile = self.config.profile
        return {
            "tokenizer": self.tokenizer.name,
            "format": self.config.format,
            "pad_multiple": self.config.pad_multiple,
            **({"speech_tokens_per_sec": profile.per_sec} if profile.kind == "rate" else {}),
            "system_prompt": self.config.system_prompt,
            "speech_profile": profile.spec(),
        }

    def build(
        self,
        conversation_id: str,
        turns: Sequence[TurnRecord],
        part_starts: Collection[int] = (),
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Samples of one conversation, in turn order, and its token counts (a pure function of
        the turns' ids, speakers, texts, source turns, audio files and durations, and of where a
        session's parts begin)."""
        missing = [t.turn_id for t in turns if t.text is None or t.speaker_id is None]
        if missing:
            raise SynthError(
                f"{conversation_id}: turn {missing[0]} has no text or speaker_id "
                "(read turns through synth.dataset, which fills them in)"
            )
        kinds = target_kinds(turns, part_starts, self.config.format)
        targets = [" ".join(str(turns[k].text) for k in range(a, b + 1)) for _, a, b in kinds]
        encoded = self.tokenizer.encode_texts(targets)
        samples: list[dict[str, Any]] = []
        text_tokens = speech_tokens = 0
        for (kind, _, _), turn, target_ids in zip(kinds, turns, encoded):
            sample = self.sample(target_ids)
            speech = self.config.profile.positions(turn.duration_sec)
            text_tokens += sample["original_length"] - 1  # minus the speech placeholder
            speech_tokens += speech
            samples.append(
                {
                    "conversation_id": conversation_id,
                    "turn_number": turn.turn_id,
                    "speaker_id": turn.speaker_id,
                    "audio_file": turn.audio_file,
                    "format": self.config.format,
                    "target": kind,
                    "speech_tokens": speech,
                    **sample,
                }
            )
        tokens = {
            "text_tokens": text_tokens,
            "speech_tokens": speech_tokens,
            "total_tokens": text_tokens + speech_tokens,
            **self.describe(),
        }
        return samples, tokens

    def answer_samples(
        self, conversation_id: str, probes: Sequence[ProbeRecord], speaker_ids: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        """The memory probes' samples (target kind `answer`): the question's speech in, the
        answer's text out, numbered after the conversation's turns. `speaker_ids`: the asker's id
        (an examiner, who is none of the speakers, gets the next free id)."""
        encoded = self.tokenizer.encode_texts([p.answer for p in probes])
        out = []
        for probe, target_ids in zip(probes, encoded):
            out.append(
                {
                    "conversation_id": conversation_id,
                    "turn_number": probe.turn_number,
                    "speaker_id": speaker_ids.get(probe.asked_by or "", len(speaker_ids)),
                    "audio_file": probe.audio_file,
                    "format": self.config.format,
                    "target": ANSWER_TARGET,
                    "probe_id": probe.probe_id,
                    "speech_tokens": self.config.profile.positions(probe.duration_sec),
                    **self.sample(target_ids),
                }
            )
        return out

    def sample(self, target_ids: Sequence[int]) -> dict[str, Any]:
        """input_ids / labels / attention_mask for one target, padded to the multiple."""
        ids = self.prefix + list(target_ids) + [self.eot]
        labels = [IGNORE_INDEX] * len(self.prefix) + list(target_ids) + [self.eot]
        n = len(ids)
        padded = -(-n // self.config.pad_multiple) * self.config.pad_multiple
        pad = padded - n
        return {
            "input_ids": ids + [self.pad_id] * pad,
            "labels": labels + [IGNORE_INDEX] * pad,
            "attention_mask": [1] * n + [0] * pad,
            "original_length": n,
        }
