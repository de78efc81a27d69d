"""`synth score DATASET`: per-turn quality scores (synth.quality) added to a finished dataset.

Crash-consistent and resumable: it holds the dataset alone (like `synth tokenize`: no writer or
other tool runs meanwhile; `wait` waits for them) and writes through the journal
(synth.dataset.journal): each conversation's new metadata.json and integrity record, the new
manifest (its lines' `quality` summaries) and the curriculum splits inside the dataset are
written beside the old ones and switched in as one step, every `checkpoint_sec` seconds of work
and at the end. A kill loses at most the work since the last switch; the dataset is the old one
or the new one at every moment (`synth validate` passes), and a run started again scores only
the turns that lack a scorer's current version, so it ends with the dataset one uninterrupted
run makes.

Which turns: every turn, or with `score_sample` < 1 a deterministic sample by conversation and
turn id (synth.quality.sampling). A turn's block keeps the scores of scorers not run this time."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import load_audio
from ..dataset.journal import Rewrite
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import MANIFEST, ConversationMetadata, ManifestEntry
from ..dataset.writer import DatasetWriter, Holder
from ..errors import ConfigError, DatasetError
from ..quality import (
    QualityConfig,
    Scorer,
    TurnAudio,
    build_scorers,
    conversation_summary,
    in_sample,
    quality_block,
    stale,
)
from ..samples.curriculum import SPLITS_DIR, refreshed_splits

log = logging.getLogger(__name__)


@dataclass
class ScoreSummary:
    """What a run did: conversations and turns newly scored, the audio they hold, the turns
    already up to date, the scorers' versions and the time taken."""

    conversations: int = 0
    turns: int = 0
    audio_sec: float = 0.0
    up_to_date: int = 0
    sampled_out: int = 0
    switches: int = 0
    seconds: float = 0.0
    scorers: dict[str, str] = field(default_factory=dict)


def score_dataset(
    root: Path | str,
    config: QualityConfig,
    *,
    engine: Any | None = None,
    cache: Path | None = None,
    recognizer: Any | None = None,
    scorers: list[Scorer] | None = None,
    wait: bool = False,
    on_wait: Callable[[list[Holder]], None] | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint_sec: float = 60.0,
) -> ScoreSummary:
    """Score the dataset at `root` with the scorers `config` names (or `scorers`, already
    built). `engine` speaks the reference sentences of the voices for the speaker scorer (load it
    without sampling noise, synth.voices.references), its embeddings kept in `cache`;
    `recognizer`: the Whisper model of the intelligibility scorer (default the embedded tiny.en).
    DatasetBusy, naming the process, while another tool uses the dataset, unless `wait`."""
    root = Path(root).resolve()
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root / MANIFEST}: missing (is {root} a dataset?)")
    started = time.monotonic()
    summary = ScoreSummary()
    writer = DatasetWriter(root)
    with writer.exclusive(wait, on_wait) as session:
        writer.recover()  # finishes, or undoes, an interrupted rewrite first
        refs = open_dataset(root)
        plan = _plan(refs, config)
        summary.sampled_out = plan.sampled_out
        if scorers is None:
            scorers = _build(config, plan, engine, cache, recognizer)
        summary.scorers = {s.name: s.version for s in scorers}
        info = {
            "tool": session.tool,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": session.command,
            "cwd": os.getcwd(),
            "since": session.since,
            "options": {
                "quality.scorers": ",".join(summary.scorers),
                "quality.score_sample": config.score_sample,
            },
        }
        rewrite: Rewrite | None = None
        changed: dict[str, ConversationMetadata] = {}
        last = time.monotonic()
        try:
            for ref in refs:
                meta = ref.metadata()
                work = {
                    t.turn_id: todo
                    for t in meta.turns
                    if t.turn_id in plan.turns[ref.conversation_id]
                    and (todo := stale(scorers, t.extra.get("quality")))
                }
                summary.up_to_date += len(plan.turns[ref.conversation_id]) - len(work)
                if not work:
                    continue
                summary.audio_sec += _score(ref, meta, work)
                summary.conversations += 1
                summary.turns += len(work)
                if rewrite is None:
                    rewrite = Rewrite(root, info)
                rewrite.conversation(ref.folder, {ref.metadata_path.name: meta.to_json().encode("utf-8")})
                changed[ref.conversation_id] = meta
                if progress:
                    progress(ref.conversation_id)
                if time.monotonic() - last >= checkpoint_sec:
                    _switch(writer, rewrite, root, changed)
                    summary.switches += 1
                    rewrite, changed, last = None, {}, time.monotonic()
            if rewrite is not None:
                _switch(writer, rewrite, root, changed)
                summary.switches += 1
        except BaseException:
            if rewrite is not None:
                rewrite.abandon()
            raise
    summary.seconds = round(time.monotonic() - started, 3)
    return summary


@dataclass
class _Plan:
    turns: dict[str, set[int]]  # conversation id -> the turns in the sample
    voices: set[str]  # the voices of the turns to score and of their conversations
    sampled_out: int = 0


def _plan(refs: list[ConversationRef], config: QualityConfig) -> _Plan:
    plan = _Plan({}, set())
    for ref in refs:
        meta = ref.metadata()
        chosen = {
            t.turn_id
            for t in meta.turns
            if in_sample(ref.conversation_id, t.turn_id, config.score_sample, config.seed)
        }
        plan.turns[ref.conversation_id] = chosen
        plan.sampled_out += len(meta.turns) - len(chosen)
        if chosen:
            plan.voices.update(v for v in _voices(meta).values() if v)
    return plan


def _voices(meta: ConversationMetadata) -> dict[str, str]:
    """speaker -> voice id, from the metadata's voices (else the turns')."""
    out = {s: v["id"] for s, v in meta.voices.items() if isinstance(v, dict) and isinstance(v.get("id"), str)}
    for t in meta.turns:
        if t.voice and t.speaker not in out:
            out[t.speaker] = t.voice
    return out


def _build(
    config: QualityConfig, plan: _Plan, engine: Any | None, cache: Path | None, recognizer: Any | None
) -> list[Scorer]:
    references = None
    if "speaker" in config.scorers:
        if engine is None:
            raise ConfigError(
                "scorers", "the speaker scorer needs the engine that speaks the voices' references"
            )
        from ..produce.render import TurnRenderer
        from ..voices.references import reference_embeddings

        log.info("reference embeddings of %d voice(s)", len(plan.voices))
        references = reference_embeddings(engine, plan.voices, TurnRenderer(engine).render, cache)
    return build_scorers(config, recognizer=recognizer, references=references)


def _score(ref: ConversationRef, meta: ConversationMetadata, work: Mapping[int, list[Scorer]]) -> float:
    """Score the turns of `work` in place (their `quality` blocks); returns their audio seconds."""
    voices = _voices(meta)
    texts = {t.turn_id: t for t in ref.turns(meta)}
    audio: dict[int, TurnAudio] = {}
    for turn in meta.turns:
        if turn.turn_id not in work:
            continue
        where = f"{ref.conversation_id} turn {turn.turn_id}"
        samples = load_audio(ref.file(turn.audio_file, f"turn {turn.turn_id} audio_file"), where)
        own = turn.voice or voices.get(turn.speaker)
        others = tuple(sorted({v for s, v in voices.items() if s != turn.speaker and v != own}))
        audio[turn.turn_id] = TurnAudio(
            samples,
            str(texts[turn.turn_id].text or ""),
            own,
            turn.speaker,
            others,
            ref.conversation_id,
            turn.turn_id,
        )
    rows: dict[int, dict[str, Any]] = {i: {} for i in work}
    versions: dict[int, dict[str, str]] = {i: {} for i in work}
    for scorer in {id(s): s for todo in work.values() for s in todo}.values():
        ids = [i for i, todo in work.items() if scorer in todo]
        for i, got in zip(ids, scorer.score([audio[i] for i in ids]), strict=True):
            rows[i].update(got)
            versions[i][scorer.name] = scorer.version
    for turn in meta.turns:
        if turn.turn_id in work:
            turn.extra["quality"] = quality_block(
                versions[turn.turn_id], rows[turn.turn_id], turn.extra.get("quality")
            )
    return sum(a.duration_sec for a in audio.values())


def _switch(
    writer: DatasetWriter, rewrite: Rewrite, root: Path, changed: Mapping[str, ConversationMetadata]
) -> None:
    """The manifest's lines of the changed conversations get their new summaries; the splits inside
    the dataset follow; everything written so far is switched in as one step."""
    entries = []
    for raw in (root / MANIFEST).read_text(encoding="utf-8").splitlines():
        if raw.strip():
            entry = ManifestEntry.from_dict(json.loads(raw))
            meta = changed.get(entry.conversation_id)
            if meta is not None:
                entry = dataclasses.replace(
                    entry, quality=conversation_summary(t.extra.get("quality") for t in meta.turns)
                )
            entries.append(entry)
    rewrite.write(root / MANIFEST, "".join(e.to_line() for e in entries).encode("utf-8"))
    for path, data in refreshed_splits(root / SPLITS_DIR, entries).items():
        rewrite.write(path, data)
    with writer.locked():
        rewrite.switch()
    log.info("scores of %d conversation(s) switched in", len(changed))
