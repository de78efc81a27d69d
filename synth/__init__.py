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

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Any

from .api import AsrCheckConfig, GenerateOptions, build_pipeline, generate, sample_builder
from .dataset.augment import AugmentConfig
from .dataset.mixdown import ConversationAudioConfig
from .dataset.reader import ConversationRef, open_dataset
from .dataset.records import ConversationMetadata, EventRecord, ManifestEntry, TurnRecord
from .dialogs.build import DialogLimits, build_dialog
from .dialogs.sessions import SessionConfig
from .dialogs.sources import ChatFields, open_dialogs
from .domain import Conversation, Dialog, Source, Turn, Voice
from .engines import CoquiConfig, Engine, PiperConfig, load_engine
from .engines.batching import BatchConfig
from .errors import ConfigError, DatasetError, DialogError, SynthError, VoiceError
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


# Modules that moved in the re-layout into stage folders (docs/architecture.md): their old
# import paths still work (a DeprecationWarning names the new one). `synth.dataset`,
# `synth.samples`, `synth.dialogs` and `synth.asr` are packages now: what the old modules of those
# names held is in synth.dataset.reader, synth.samples.builder, synth.dialogs.build and
# synth.asr.recognizer (docs/usage.md, "Moved import paths").
MOVED = {
    "synth.alignment": "synth.asr.alignment",
    "synth.wer": "synth.asr.wer",
    "synth.augment": "synth.dataset.augment",
    "synth.metadata": "synth.dataset.metadata",
    "synth.mixdown": "synth.dataset.mixdown",
    "synth.records": "synth.dataset.records",
    "synth.writer": "synth.dataset.writer",
    "synth.markup": "synth.dialogs.markup",
    "synth.sessions": "synth.dialogs.sessions",
    "synth.sources": "synth.dialogs.sources",
    "synth.text": "synth.dialogs.text",
    "synth.batcher": "synth.engines.batching",
    "synth.engines.coqui_build": "synth.testing",
    "synth.assembly": "synth.produce.assembly",
    "synth.backchannels": "synth.produce.backchannels",
    "synth.casting": "synth.produce.casting",
    "synth.pipeline": "synth.produce.pipeline",
    "synth.recorded": "synth.produce.recorded",
    "synth.timeline": "synth.produce.timeline",
    "synth.batch": "synth.remote.batch",
    "synth.curriculum": "synth.samples.curriculum",
    "synth.retokenize": "synth.samples.retokenize",
    "synth.tokenizer": "synth.samples.tokenizer",
    "synth.blending": "synth.voices.blending",
    "synth.speaker_encoder": "synth.voices.encoder",
    "synth.voice_report": "synth.voices.report",
    "synth.asr_check": "synth.workflows.asr_check",
    "synth.merge": "synth.workflows.merge",
    "synth.runner": "synth.workflows.runner",
    "synth.sharding": "synth.workflows.sharding",
    "synth.timeline_stats": "synth.workflows.timeline_stats",
    "synth.validate": "synth.workflows.validate",
}


def _moved(name: str) -> str | None:
    """The new name of a module imported by its old path (a moved package's submodules too)."""
    for old, new in MOVED.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old) :]
    return None


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a moved module's old path as the module itself (one module object, not a copy)."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith("synth.") or _moved(fullname) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        new = _moved(spec.name)
        assert new is not None
        warnings.warn(f"{spec.name} moved to {new}", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module: Any) -> None:
        pass  # the module it stands for is already imported


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedModules())


def __getattr__(name: str) -> Any:
    """The training loader needs torch, an optional dependency: import it on first use."""
    if name in _TRAINING:
        from . import training

        return getattr(training, name)
    raise AttributeError(f"module 'synth' has no attribute {name!r}")
