"""One set of sample settings per dataset: every conversation's `tokens` agree with dataset.json
(or, where it records none, with most conversations), and what to run where they do not."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ...dataset.fingerprint import read_options, records_samples, sample_differences, sample_options
from ...dataset.records import METADATA_FILE
from ...samples.retokenize import tokenize_command
from .problems import Problem, in_conversation


def check_settings(root: Path, settings: dict[str, Any]) -> list[Problem]:
    """`settings`: each conversation's sample settings (synth.dataset.fingerprint.tokens_options
    of its metadata), by conversation id."""
    recorded = read_options(root)
    if recorded is not None and records_samples(recorded):
        expected, whose = sample_options(recorded), "dataset.json"
    elif settings:
        counted = Counter(json.dumps(v, sort_keys=True) for v in settings.values())
        expected, whose = json.loads(counted.most_common(1)[0][0]), "most conversations"
    else:
        return []
    problems = []
    for name, got in sorted(settings.items()):
        differ = sample_differences(expected, got)
        if differ:
            problems.append(
                in_conversation(name, METADATA_FILE).error(
                    f"tokens made with {', '.join(differ)} (the dataset's settings, as {whose} says: "
                    f"{describe_settings(expected)})",
                    "tokens",
                )
            )
    if problems:
        fix = (
            f"`{tokenize_command(str(root), expected)}` rewrites every conversation with the dataset's settings"
            if expected is not None
            else "the dataset has no training samples: make the conversations named again, or tokenize the dataset"
        )
        problems.append(
            Problem(f"{len(problems)} conversation(s) with other sample settings: {fix}", "advice")
        )
    return problems


def describe_settings(settings: Any) -> str:
    """Sample settings in words, as the messages name them."""
    if settings is None:
        return "no training samples"
    keys = ("speech_profile", "tokenizer", "format", "pad_multiple")
    return ", ".join(f"{k.replace('_', ' ')} {settings[k]}" for k in keys if k in settings) or "its settings"
