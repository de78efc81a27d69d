"""Transcript files: UTF-8, one line of clean text (synth.dialogs.text), as a turn or a probe
names it."""

from __future__ import annotations

from pathlib import Path

from ...dialogs.text import clean_text, unclean
from .problems import Place, Problem


def check_transcript(path: Path, at: Place) -> tuple[str | None, list[Problem]]:
    """The transcript's text (None when it cannot be read) and its problems."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, [at.error("missing")]
    except UnicodeDecodeError:
        return None, [at.error("not UTF-8")]
    body = text.rstrip("\n")
    if not body.strip():
        return body, [at.error("empty transcript")]
    if "\n" in body:
        return body, [at.error("transcript has more than one line")]
    if unclean(body):
        return body, [at.error(f"transcript is not clean text: {unclean(body)}")]
    if clean_text(body) != body:
        return body, [
            at.error("transcript is not clean text (extra spaces, tokenized punctuation or curly quotes)")
        ]
    return body, []
