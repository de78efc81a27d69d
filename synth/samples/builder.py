"""Tokenized training samples (docs/dataset-format.md), as pure functions over turn texts.

Template (Llama 3 chat, LLaMA-Omni conventions):

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\n{system}<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\n<speech><|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n{target}<|eot_id|>

`<speech>` is the id -200, replaced in the model by projected speech features. Labels are -100
except the target and its closing <|eot_id|>. Sequences are padded to a multiple of 64.

Formats: `chat` (target = the next turn's text) and `transcribe` (target = the turn's own text).
In `chat`, the last turn has no reply; it gets a transcribe-style sample (marked
`"target": "transcript"`) so that every turn's speech still reaches the model in order and the
conversation state is carried through the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..dataset.records import TurnRecord
from ..errors import ConfigError, SynthError
from .tokenizer import Tokenizer

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

    format: str = "chat"
    pad_multiple: int = 64
    speech_profile: str = "rate:10"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT

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


def speech_positions(duration_sec: float, per_sec: float) -> int:
    return max(1, math.ceil(duration_sec * per_sec - 1e-9))


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
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Samples of one conversation, in turn order, and its token counts (a pure function of
        the turns' ids, speakers, texts, audio files and durations)."""
        missing = [t.turn_id for t in turns if t.text is None or t.speaker_id is None]
        if missing:
            raise SynthError(
                f"{conversation_id}: turn {missing[0]} has no text or speaker_id "
                "(read turns through synth.dataset, which fills them in)"
            )
        chat = self.config.format == "chat"
        targets = [turns[i + 1].text if chat and i + 1 < len(turns) else t.text for i, t in enumerate(turns)]
        encoded = self.tokenizer.encode_texts(targets)
        samples: list[dict[str, Any]] = []
        text_tokens = speech_tokens = 0
        for i, (turn, target_ids) in enumerate(zip(turns, encoded)):
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
                    "target": "reply" if chat and i + 1 < len(turns) else "transcript",
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
