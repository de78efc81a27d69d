"""synth: text dialogs in, multi-speaker conversational speech datasets out.

The public API (docs/architecture.md has the map):

    import synth

    summary = synth.generate("examples/dialogs.jsonl", "dataset/")        # embedded voice, offline
    report = synth.validate_dataset("dataset/")
    for ref in synth.open_dataset("dataset/"):
        meta = ref.metadata()                                              # a ConversationMetadata

Configure a run with one `GenerateOptions` (engine or several engines, pipeline, samples, limits,
batching, `ConversationAudioConfig` with `AugmentConfig` for two-channel audio); build a
`Pipeline` for one conversation at a time with `build_pipeline`; train with
`ConversationDataset` and `ConversationBatchSampler` (need torch; imported on first use)."""

from __future__ import annotations

from typing import Any

from .api import AsrCheckConfig, GenerateOptions, build_pipeline, generate, sample_builder
from .dataset.augment import AugmentConfig
from .dataset.mixdown import ConversationAudioConfig
from .dataset.reader import ConversationRef, DatasetError, open_dataset
from .dataset.records import ConversationMetadata, EventRecord, ManifestEntry, TurnRecord
from .dialogs.build import DialogLimits, build_dialog
from .dialogs.sessions import SessionConfig
from .dialogs.sources import ChatFields, open_dialogs
from .domain import Conversation, Dialog, Source, Turn, Voice
from .engines import CoquiConfig, Engine, PiperConfig, load_engine
from .engines.batching import BatchConfig
from .errors import ConfigError, DialogError, SynthError, VoiceError
from .produce.pipeline import Pipeline, PipelineConfig
from .produce.timeline import GapDistribution
from .samples.builder import SampleConfig, SpeechProfile
from .version import __version__
from .words import WordTiming
from .workflows.runner import RunSummary
from .workflows.sharding import Shard
from .workflows.validate import Report, validate_dataset

_TRAINING = ("ConversationDataset", "ConversationBatchSampler")

__all__ = [
    "AsrCheckConfig",
    "AugmentConfig",
    "BatchConfig",
    "ChatFields",
    "ConfigError",
    "Conversation",
    "ConversationAudioConfig",
    "ConversationBatchSampler",
    "ConversationDataset",
    "ConversationMetadata",
    "ConversationRef",
    "CoquiConfig",
    "DatasetError",
    "Dialog",
    "DialogError",
    "DialogLimits",
    "Engine",
    "EventRecord",
    "GapDistribution",
    "GenerateOptions",
    "ManifestEntry",
    "Pipeline",
    "PipelineConfig",
    "PiperConfig",
    "Report",
    "RunSummary",
    "SampleConfig",
    "SessionConfig",
    "Shard",
    "Source",
    "SpeechProfile",
    "SynthError",
    "Turn",
    "TurnRecord",
    "Voice",
    "VoiceError",
    "WordTiming",
    "__version__",
    "build_dialog",
    "build_pipeline",
    "generate",
    "load_engine",
    "open_dataset",
    "open_dialogs",
    "sample_builder",
    "validate_dataset",
]


def __getattr__(name: str) -> Any:
    """The training loader needs torch, an optional dependency: import it on first use."""
    if name in _TRAINING:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'synth' has no attribute {name!r}")
