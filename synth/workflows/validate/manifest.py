"""manifest.jsonl: whole lines of typed entries, each path its id's, each conversation listed once
and with a folder, every folder listed, and each line agreeing with the conversation's metadata
(turns, duration, tokens: the curriculum filters read the manifest's)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...dataset.records import MANIFEST, ManifestEntry
from .problems import Place, Problem
from .quality import check_summary
from .turns import DURATION_TOLERANCE_SEC

if TYPE_CHECKING:
    from .conversation import Conversation


def read_manifest(root: Path) -> tuple[list[dict[str, Any]], list[Problem]]:
    """The typed entries of the manifest, and the problems of its lines."""
    path = root / MANIFEST
    if not path.is_file():
        return [], [Place(MANIFEST, file=MANIFEST).error("missing")]
    entries, problems = [], []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        problems.append(
            Place(MANIFEST, file=MANIFEST).error(
                "last line is unterminated (an interrupted or failed write; the next `synth generate` or "
                "`synth serve` on this folder repairs it)"
            )
        )
    for n, raw in enumerate(data.splitlines(), start=1):
        at = Place(f"{MANIFEST} line {n}", file=MANIFEST)
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            problems.append(
                at.error(
                    "not valid JSON (a torn write, e.g. a full disk; the next `synth generate` or `synth serve` "
                    "on this folder repairs it)"
                )
            )
            continue
        typed = at.typed(entry, ManifestEntry)
        if typed:
            problems += typed
            continue
        cid = entry["conversation_id"]
        at = Place(at.label, cid, MANIFEST)
        if "total_tokens" not in entry:
            problems.append(at.error("missing field 'total_tokens'", "total_tokens"))
        if entry["path"] != f"conversations/{cid}":
            problems.append(at.error(f"path {entry['path']!r} does not match the id", "path"))
        if "quality" in entry:
            problems += check_summary(entry["quality"], Place(f"{MANIFEST} {cid}", cid, MANIFEST))
        entries.append(entry)
    return entries, problems


def check_listing(root: Path, entries: list[dict[str, Any]], folders: list[str], shown: str) -> list[Problem]:
    """Each conversation listed once and with its folder, and every folder listed (`shown`: the
    dataset as the user named it, for the command to run). A folder that is not listed is a
    warning, as a commit's staging folder left in .tmp/ is: a writer killed between renaming a
    conversation into place and appending its line leaves one, no reader opens it, and the next
    writer removes it (the conversation is made again)."""
    problems = []
    conv_root = root / "conversations"
    if not conv_root.is_dir():
        problems.append(Place(str(conv_root)).error("missing"))
    listed = Counter(e["conversation_id"] for e in entries)
    for cid, n in listed.items():
        if n > 1:
            problems.append(Place(MANIFEST, cid, MANIFEST).error(f"conversation {cid!r} listed {n} times"))
    for cid in sorted(set(listed) - set(folders)):
        problems.append(Place(MANIFEST, cid, MANIFEST).error(f"{cid!r} has no folder conversations/{cid}"))
    unlisted = [name for name in folders if name not in listed]
    for name in unlisted:
        problems.append(
            Place(f"conversations/{name}", name).warning(
                f"folder not in {MANIFEST} (a conversation an interrupted run renamed into place before "
                "listing it: nothing refers to it, the listed conversations are whole)"
            )
        )
    if unlisted:
        problems.append(
            Problem(
                f"`synth validate {shown} --recover` removes the unlisted folder(s) (so does the next "
                "`synth generate` on the folder, which makes them again)",
                "advice",
            )
        )
    return problems


def check_entry(conv: Conversation) -> list[Problem]:
    """The conversation's manifest line agrees with its metadata (turns, duration)."""
    entry, meta = conv.entry, conv.meta
    if entry is None:
        return []
    at = Place(f"{MANIFEST} {conv.name}", conv.name, MANIFEST)
    problems = []
    if entry["num_turns"] != meta["total_turns"]:
        problems.append(
            at.error(f"num_turns {entry['num_turns']} but metadata has {meta['total_turns']}", "num_turns")
        )
    if abs(entry["duration_sec"] - meta["total_duration_sec"]) > DURATION_TOLERANCE_SEC:
        problems.append(at.error("duration_sec does not match metadata", "duration_sec"))
    return problems


def check_totals(entries: dict[str, dict[str, Any]], totals: dict[str, Any]) -> list[Problem]:
    """Each manifest line's total_tokens is its conversation's (`totals`: from the metadata)."""
    problems = []
    for name, total in sorted(totals.items()):
        entry = entries.get(name) or {}
        if (
            isinstance(total, int)
            and isinstance(entry.get("total_tokens"), int)
            and entry["total_tokens"] != total
        ):
            problems.append(
                Place(f"{MANIFEST} {name}", name, MANIFEST).error(
                    f"total_tokens {entry['total_tokens']} but its metadata.json says {total} (the curriculum "
                    "filters read the manifest's)",
                    "total_tokens",
                )
            )
    return problems
