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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import load_audio
from ..dataset.journal import Rewrite
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import MANIFEST, ConversationMetadata, ManifestEntry
from ..dataset.run_lock import Session
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


@dataclass(frozen=True)
class ScoreSettings:
    """What a score run scores with and how it goes (nothing here changes a score).

    engine: speaks the reference sentences of the voices for the speaker scorer (load it without
        sampling noise, synth.voices.references); cache: where their embeddings are kept.
    recognizer: the Whisper model of the intelligibility scorer (default the embedded tiny.en).
    scorers: already built (instead of the ones the config names).
    wait: wait for another tool using the dataset (else DatasetBusy, naming the process);
        on_wait is told who holds it.
    progress: told each conversation id once its scores are made.
    checkpoint_sec: switch the scores made so far in this often (a kill loses at most this)."""

    engine: Any | None = None
    cache: Path | None = None
    recognizer: Any | None = None
    scorers: list[Scorer] | None = None
    wait: bool = False
    on_wait: Callable[[list[Holder]], None] | None = None
    progress: Callable[[str], None] | None = None
    checkpoint_sec: float = 60.0


class ScoreRun:
    """One run of `synth score` over the dataset at `root` (see the module): the turns the plan
    holds that lack a scorer's current version are scored, and what is scored is switched in
    through the journal every `checkpoint_sec` and at the end. One use: call it once."""

    def __init__(self, root: Path | str, config: QualityConfig, settings: ScoreSettings = ScoreSettings()):
        self.root = Path(root).resolve()
        self.config, self.settings = config, settings
        self.summary = ScoreSummary()
        self._info: dict[str, Any] = {}  # the journal's word on who rewrites the dataset
        self._rewrite: Rewrite | None = None  # the switch being prepared
        self._changed: dict[str, ConversationMetadata] = {}  # in it: conversation id -> metadata
        self._last = 0.0  # when the last switch was made

    def __call__(self) -> ScoreSummary:
        root, settings, summary = self.root, self.settings, self.summary
        if not (root / MANIFEST).is_file():
            raise DatasetError(f"{root / MANIFEST}: missing (is {root} a dataset?)")
        started = time.monotonic()
        writer = DatasetWriter(root)
        with writer.exclusive(settings.wait, settings.on_wait) as session:
            writer.recover()  # finishes, or undoes, an interrupted rewrite first
            refs = open_dataset(root)
            plan = _plan(refs, self.config)
            summary.sampled_out = plan.sampled_out
            scorers = (
                settings.scorers if settings.scorers is not None else _build(self.config, plan, settings)
            )
            summary.scorers = {s.name: s.version for s in scorers}
            self._info = _run_info(session, self.config, summary.scorers)
            self._score_all(writer, refs, plan, scorers)
        summary.seconds = round(time.monotonic() - started, 3)
        return summary

    def _score_all(
        self, writer: DatasetWriter, refs: list[ConversationRef], plan: _Plan, scorers: list[Scorer]
    ) -> None:
        """Every conversation's stale turns scored and switched in; on any error (an interrupt
        included) the switch being prepared is abandoned."""
        every = self.settings.checkpoint_sec
        self._last = time.monotonic()
        try:
            for ref in refs:
                if self._conversation(ref, plan, scorers) and time.monotonic() - self._last >= every:
                    self._switch(writer)
            if self._rewrite is not None:
                self._switch(writer)
        except BaseException:
            if self._rewrite is not None:
                self._rewrite.abandon()
            raise

    def _conversation(self, ref: ConversationRef, plan: _Plan, scorers: list[Scorer]) -> bool:
        """Score the conversation's turns in the plan that a scorer has not scored at its current
        version, and add its new metadata to the switch; False when it had none to score."""
        summary, meta = self.summary, ref.metadata()
        chosen = plan.turns[ref.conversation_id]
        work = {
            t.turn_id: todo
            for t in meta.turns
            if t.turn_id in chosen and (todo := stale(scorers, t.extra.get("quality")))
        }
        summary.up_to_date += len(chosen) - len(work)
        if not work:
            return False
        summary.audio_sec += _score(ref, meta, work)
        summary.conversations += 1
        summary.turns += len(work)
        if self._rewrite is None:
            self._rewrite = Rewrite(self.root, self._info)
        self._rewrite.conversation(ref.folder, {ref.metadata_path.name: meta.to_json().encode("utf-8")})
        self._changed[ref.conversation_id] = meta
        if self.settings.progress:
            self.settings.progress(ref.conversation_id)
        return True

    def _switch(self, writer: DatasetWriter) -> None:
        """Switch in what is prepared, and start the next switch afresh."""
        assert self._rewrite is not None
        _switch(writer, self._rewrite, self.root, self._changed)
        self.summary.switches += 1
        self._rewrite, self._changed, self._last = None, {}, time.monotonic()


def score_dataset(
    root: Path | str,
    config: QualityConfig,
    settings: ScoreSettings | None = None,
    **fields: Any,
) -> ScoreSummary:
    """Score the dataset at `root` with the scorers `config` names (or settings' `scorers`,
    already built): a `ScoreRun` with `settings`, or with ScoreSettings made of `fields`
    (engine=..., wait=..., checkpoint_sec=...)."""
    return ScoreRun(root, config, settings if settings is not None else ScoreSettings(**fields))()


def _run_info(session: Session, config: QualityConfig, scorers: Mapping[str, str]) -> dict[str, Any]:
    """What the journal records of the run rewriting the dataset: tool, process, options."""
    return session.info({"quality.scorers": ",".join(scorers), "quality.score_sample": config.score_sample})


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


def _build(config: QualityConfig, plan: _Plan, settings: ScoreSettings) -> list[Scorer]:
    """The scorers `config` names; the speaker scorer's voice references spoken by the engine."""
    references = None
    if "speaker" in config.scorers:
        if settings.engine is None:
            raise ConfigError(
                "scorers", "the speaker scorer needs the engine that speaks the voices' references"
            )
        from ..produce.render import TurnRenderer
        from ..voices.references import reference_embeddings

        log.info("reference embeddings of %d voice(s)", len(plan.voices))
        references = reference_embeddings(
            settings.engine, plan.voices, TurnRenderer(settings.engine).render, settings.cache
        )
    return build_scorers(config, recognizer=settings.recognizer, references=references)


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
