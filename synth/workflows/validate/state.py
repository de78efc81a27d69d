"""What is going on in the dataset folder (docs/reliability.md, "Tools on one dataset"): a writer
running now (a live record in `.run/`, held staging locks in `.tmp/`) or one that was interrupted
(staging folders nobody holds); a rewrite running now, one interrupted before its switch (the
dataset is the old one, whole) or during it (part old, part new until `--recover` finishes it).
None of it is damage: each is said with what to run."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...dataset.files import is_held as held
from ...dataset.fingerprint import read_options, records_samples, sample_options
from ...dataset.journal import JOURNAL, NEXT, REWRITE, hidden_new_files, marker, pending
from ...dataset.run_lock import LOCK, Holder
from ...dataset.writer import CLAIM, STAGING_LOCK, TMP
from ...samples.retokenize import tokenize_command
from .problems import Place, Problem
from .settings import describe_settings


@contextlib.contextmanager
def steady(root: Path, patience: float = 2.0) -> Iterator[None]:
    """Hold the writers' lock (shared) while the manifest and the folders are read, so that no
    commit is seen half-way (renamed, not yet listed); gives up after `patience` seconds (a
    writer stopped inside its commit) and reads anyway."""
    try:
        fd = os.open(root / LOCK, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        give_up = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > give_up:
                    break
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def _advice(text: str) -> Problem:
    return Problem(text, "advice")


def check_rewrite(root: Path, shown: str, rewrites: list[Holder]) -> list[Problem]:
    """A rewrite (synth tokenize, synth check) running now, interrupted during its switch (part
    old, part new) or before it (the old dataset, whole), or hidden files no rewrite marks.
    `shown`: the dataset as the user named it, for the commands to run."""
    info = marker(root)
    into = ""
    if info:
        new = sample_options(info.get("options") or {}) if info.get("options") else None
        into = f" (to {describe_settings(new)})" if new else ""
    if rewrites:
        return [
            Problem(
                f"{rewrites[0].describe()} is rewriting this dataset now{into}: until it switches its new "
                "files in, the dataset is the old one; other tools on it are refused meanwhile",
                "warning",
            ),
            _advice("validate again once it has finished"),
        ]
    who = ""
    if info:
        who = f" (`{info.get('command', '?')}`, pid {info.get('pid', '?')}, in {info.get('cwd', '?')})"
    if (root / JOURNAL).exists():
        return [
            Place(JOURNAL, file=JOURNAL).error(
                f"a rewrite{who}{into} was interrupted while it switched its new files in "
                f"({len(pending(root))} files): the dataset is part old, part new until it is finished"
            ),
            _advice(
                f"`synth validate {shown} --recover` finishes the switch (so does any writer's start: synth "
                "generate, serve, merge, tokenize): the dataset is then the new one" + into
            ),
        ]
    stray = len(hidden_new_files(root))
    if info is not None:
        return _before_switch(root, shown, info, f"a rewrite{who}{into}", stray)
    if stray:
        return [
            Problem(
                f"{stray} hidden file(s) of a rewrite (.NAME{NEXT}) that no rewrite marks: they change nothing",
                "warning",
            ),
            _advice(f"`synth validate {shown} --recover` removes them"),
        ]
    return []


def _before_switch(root: Path, shown: str, info: dict[str, Any], rewrite: str, stray: int) -> list[Problem]:
    """A rewrite (`info`: its marker; `rewrite`: it in words) interrupted before its switch: the
    dataset is the old one, whole; what to remove, and what to run again."""
    old = read_options(root)
    was = (
        f" ({describe_settings(sample_options(old))}, as dataset.json says)"
        if old and records_samples(old)
        else ""
    )
    again = (
        f"`{tokenize_command(str(root), sample_options(info['options']) or {})}`"
        if info.get("tool") == "synth tokenize" and info.get("options")
        else f"`{info.get('command', 'the rewrite')}` (in {info.get('cwd', '?')})"
    )
    return [
        Place(REWRITE, file=REWRITE).warning(
            f"{rewrite} was interrupted before its switch: the dataset is the old one{was}, whole; the "
            f"{stray} hidden new file(s) it left (.NAME{NEXT}) change nothing"
        ),
        _advice(
            f"`synth validate {shown} --recover` removes what it left (so does the next writer); "
            f"run {again} again for the new settings"
        ),
    ]


def check_tmp(root: Path, shown: str, writers: list[Holder]) -> list[Problem]:
    """Conversations being written now (their staging locks held) or left by an interrupted run;
    `writers`: the live writers' records."""
    tmp = root / TMP
    running = gone = claims = 0
    try:
        entries = list(tmp.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        if entry.is_dir():
            if held(entry.with_name(entry.name + STAGING_LOCK)):
                running += 1
            else:
                gone += 1
        elif entry.name.endswith(CLAIM) and not held(entry):
            claims += 1
    problems = []
    if writers:
        problems += [
            Problem(
                f"being written now by {'; '.join(h.describe() for h in writers)}: {running} conversation(s) "
                "in progress, not part of the dataset until each is listed whole",
                "warning",
            ),
            _advice("validate again once it has finished, for the whole dataset"),
        ]
    elif running:
        problems.append(
            Place(TMP).warning(
                f"{running} conversation(s) being written now by a running writer (their locks are held)"
            )
        )
    if gone or claims:
        problems += [
            Place(TMP).warning(
                f"{gone} unfinished conversation(s) and {claims} claim(s) of an interrupted run (no process "
                "holds their locks): nothing of them is listed, nothing is lost (the next run makes them)"
            ),
            _advice(
                f"`synth validate {shown} --recover` removes what the interrupted run left (so does the next "
                "writer on this folder)"
            ),
        ]
    return problems
