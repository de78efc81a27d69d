"""`synth validate`: check a dataset folder against its contract (docs/dataset-format.md) and
report every problem with the file it is in, so that a person can act on it, and what to run.

One check per record, each a function returning its problems (`Problem`: the conversation, file,
turn and field it is about): the manifest (manifest.py), a conversation's header and files
(conversation.py), its turns and events (turns.py), its audio (audio.py), its training samples
(samples.py), its memory probes (probes.py), its quality scores (quality.py); over the whole
folder, damage (damage.py), the sample settings (settings.py) and what is going on in it now
(state.py: a writer running or interrupted, a rewrite running or interrupted)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...dataset.fingerprint import tokens_options
from ...dataset.run_lock import REWRITE, WRITE, holders
from .audio import check_conversation_audio
from .conversation import Conversation, check_files, check_header, read_conversation
from .damage import check_integrity, check_links, check_unsealed, repair_advice
from .manifest import check_entry, check_listing, check_totals, read_manifest
from .probes import check_probes
from .problems import Problem, ValidationReport
from .quality import check_quality
from .samples import check_samples
from .settings import check_settings
from .state import check_rewrite, check_tmp, steady
from .turns import check_events, check_turns, turn_seconds

__all__ = ["CHECKS", "Problem", "Report", "ValidationReport", "validate_dataset"]

Report = ValidationReport  # the name synth exported before (synth.Report)

# The checks of one conversation, in the order their problems are listed.
CHECKS: tuple[Callable[[Conversation], list[Problem]], ...] = (
    check_header,
    check_turns,
    check_events,
    check_conversation_audio,
    check_probes,
    check_samples,
    check_quality,
    check_files,
    check_entry,
)


def validate_dataset(root: Path | str) -> ValidationReport:
    """Check the dataset folder `root`: the manifest, every conversation (CHECKS, then its
    integrity record), one set of sample settings, and what runs or was interrupted in it.
    Reads only; safe beside running writers (it reads the manifest and the folders as one moment
    of their commits). The report's `ok` is False when any problem is an error; its advice says
    what to run (`synth validate DATASET --recover`, `synth generate ... --repair`, ...)."""
    root = Path(root)
    report = ValidationReport()
    if not root.is_dir():
        report.add([Problem(f"{root}: not a folder")])
        return report
    shown = shlex.quote(str(root))  # as the user gave it, for the commands it names
    live = holders(root)
    with steady(root):  # the manifest and the folders as one moment of the writers' commits
        entries, found = read_manifest(root)
        conv_root = root / "conversations"
        folders = sorted(p.name for p in conv_root.iterdir()) if conv_root.is_dir() else []
    report.add(found)
    report.add(check_listing(root, entries, folders, shown))
    report.add(check_links(root))
    by_id = {e["conversation_id"]: e for e in entries}
    checked = [conv_root / name for name in folders]
    checked = [f for f in checked if f.is_dir() and not f.is_symlink()]
    settings: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    damaged: dict[str, dict[str, Any] | None] = {}
    for folder in checked:
        conv = _check_conversation(folder, by_id.get(folder.name), report)
        if conv is not None:
            settings[folder.name] = tokens_options(conv.meta.get("tokens"))
            totals[folder.name] = conv.meta.get("total_tokens")
        bad = check_integrity(folder)
        report.add(bad)
        if bad:
            damaged[folder.name] = conv.meta if conv is not None else None
    report.add(check_unsealed(checked))
    if damaged:
        report.add([repair_advice(root, shown, damaged)])
    report.add(check_settings(root, settings))
    report.add(check_totals(by_id, totals))
    report.add(check_rewrite(root, shown, [h for h in live if h.mode == REWRITE and not h.waiting]))
    report.add(check_tmp(root, shown, [h for h in live if h.mode == WRITE]))
    return report


def _check_conversation(
    folder: Path, entry: dict[str, Any] | None, report: ValidationReport
) -> Conversation | None:
    """One conversation through every check, counted; None when its metadata cannot be read."""
    conv, found = read_conversation(folder, entry)
    report.add(found)
    if conv is None:
        return None
    report.conversations += 1
    for check in CHECKS:
        report.add(check(conv))
    for seconds in turn_seconds(conv):
        report.turns += 1
        if seconds is not None:
            report.audio_sec += seconds
    return conv
