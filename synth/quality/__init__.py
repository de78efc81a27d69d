"""Per-turn quality scores (docs/quality.md): intelligibility (ASR WER/CER), perceived quality
(DNSMOS), speaker consistency and cheap signal checks, each a `Scorer` opt-in by name with a
version; the stored block of a turn and the summary of a conversation; `synth score` adds them to
a finished dataset (synth.workflows.score), the pipeline's gates score while generating."""

from __future__ import annotations

from .base import HIGHER_IS_WORSE, KEYS, SCORER_KEYS, SCORERS, Score, Scorer, TurnAudio, higher_is_worse
from .block import quality_block, score_turns, stale
from .config import QualityConfig, build_scorers, parse_scorers
from .sampling import in_sample
from .summary import conversation_summary, dataset_stats, format_stats

__all__ = [
    "HIGHER_IS_WORSE",
    "KEYS",
    "SCORERS",
    "SCORER_KEYS",
    "QualityConfig",
    "Score",
    "Scorer",
    "TurnAudio",
    "build_scorers",
    "conversation_summary",
    "dataset_stats",
    "format_stats",
    "higher_is_worse",
    "in_sample",
    "parse_scorers",
    "quality_block",
    "score_turns",
    "stale",
]
