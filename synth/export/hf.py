"""A Hugging Face `datasets` Dataset saved with `save_to_disk`, one row per turn: audio (an
`Audio` feature at 16 kHz holding the WAV bytes), text, target (the target's text) and
target_kind (`reply` or `transcript`, as in samples.jsonl), ids, turn numbers and, when the
dataset has them, the turn's word timings. Built in a staging folder and switched into place
(synth.export.switch), so a killed export leaves the previous one whole.

Memory probes (docs/memory.md; `probes`, PROBE_CHOICES: by default only where the dataset made
them training samples) follow their conversation's turns as rows of target_kind `answer`: audio
the spoken question, text the question, target the answer, turn_number after the turns, and the
probe columns (probe_id, category, adversarial, scoring, time, evidence, distance_sec,
distance_tokens, answer_audio_path), which are None (or empty) on a turn's row.

Where the dataset's turns carry quality scores (metadata `quality`), a `quality` column holds each
turn's block (a struct of the keys found in the dataset; None on a probe's row or an unscored
turn). README.md beside the data is the dataset card (synth.export.card)."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import SAMPLE_RATE
from ..dataset.reader import ConversationRef, open_dataset
from ..dataset.records import ConversationMetadata, conversation_path
from ..errors import SynthError
from ..options import option
from .card import CardSpec, write_card
from .rows import PROBE_CHOICES, PROBES_HELP, ProbeRow, Row, conversation_rows, member, probes_note
from .summary import ExportSummary
from .switch import Stage, staged_folder

_SAVED = re.compile(r"(dataset_info\.json|state\.json|data-\d+-of-\d+\.arrow|README\.md)")


def is_hf_file(name: str) -> bool:
    """A name `Dataset.save_to_disk` writes."""
    return bool(_SAVED.fullmatch(name))


@dataclass(frozen=True)
class HfOptions:
    """The hf export's options; `synth export` gives each field a flag of its own."""

    undecoded: bool = field(
        default=False,
        metadata={
            "help": "always store the audio undecoded (Audio(decode=False): each row's audio a "
            "{bytes, path} dict, decoded with soundfile.read(io.BytesIO(row['audio']['bytes']))); "
            "by default it is stored so only where torchcodec, which datasets decodes with, is not "
            "installed, so that ds[0] works where the export was made (the summary says which)"
        },
    )
    # One flag per export: `synth export` gives each export's fields their own flags.
    probes: str = option("auto", flag="--hf-probes", choices=PROBE_CHOICES, help="hf: " + PROBES_HELP)


_PROBE_NONE: dict[str, Any] = {
    "probe_id": None,
    "category": None,
    "adversarial": None,
    "scoring": None,
    "time": None,
    "evidence": [],
    "distance_sec": None,
    "distance_tokens": None,
    "answer_audio_path": None,
}


COLUMNS = [
    ("audio", "the turn's audio, 16 kHz mono WAV bytes (an `Audio` feature)"),
    ("audio_path", "the WAV's path in the synth dataset (`conversations/<id>/turn_<n>.wav`)"),
    ("text", "what the turn says"),
    ("target", "the sample's target text (the reply, the turn's own words, or a probe's answer)"),
    ("target_kind", "`reply`, `transcript` or `answer` (a memory probe)"),
    ("conversation_id, turn_number", "where the turn is"),
    ("speaker, speaker_id", "who speaks it (the id: order of first appearance)"),
    ("duration_sec", "the turn's length"),
    ("words", "word timings, seconds from the start of the turn's audio (empty when none)"),
    ("conversation_audio_path, channel", "the two-channel conversation.wav and the speaker's channel"),
    ("probe_id ... answer_audio_path", "a memory probe's fields (None on a turn's row)"),
]
QUALITY_COLUMN = (
    "quality",
    "the turn's quality scores (metadata `quality`: scorer versions, WER/CER, DNSMOS, speaker "
    "similarity, signal checks, takes) where the dataset has them, else None",
)


def quality_schema(refs: list[ConversationRef]) -> dict[str, str]:
    """The keys of the turns' `quality` blocks across the dataset, in first-seen order, each with
    the one type its column can hold: bool, int64, float64, string, strings (a list of texts),
    versions (scorer -> version) or json (anything else, stored as JSON text)."""
    kinds: dict[str, set[str]] = {}
    for ref in refs:
        for turn in ref.metadata().turns:
            block = turn.extra.get("quality")
            if isinstance(block, dict):
                for key, value in block.items():
                    if value is not None:
                        kinds.setdefault(key, set()).add(_kind(key, value))
    out: dict[str, str] = {}
    for key, found in kinds.items():
        if len(found) == 1:
            out[key] = found.pop()
        elif found <= {"int64", "float64"}:
            out[key] = "float64"
        else:
            out[key] = "json"
    return out


def _kind(key: str, value: Any) -> str:
    if key == "scorers" and isinstance(value, dict):
        return "versions"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "strings"
    return "json"


def _quality_feature(datasets: Any, schema: dict[str, str], scorers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        if kind == "versions":
            out[key] = {name: datasets.Value("string") for name in scorers}
        elif kind == "strings":
            out[key] = [datasets.Value("string")]
        else:
            out[key] = datasets.Value("string" if kind == "json" else kind)
    return out


def _quality_value(block: Any, schema: dict[str, str], scorers: list[str]) -> dict[str, Any] | None:
    if not isinstance(block, dict):
        return None
    out: dict[str, Any] = {}
    for key, kind in schema.items():
        value = block.get(key)
        if value is None:
            out[key] = [] if kind == "strings" else None
        elif kind == "versions":
            out[key] = {name: (str(value[name]) if name in value else None) for name in scorers}
        elif kind == "json":
            out[key] = json.dumps(value)
        elif kind == "float64":
            out[key] = float(value)
        else:
            out[key] = value
    return out


def _turn_row(row: Row, meta: ConversationMetadata) -> dict[str, Any]:
    ref, turn, sample, wav = row.ref, row.turn, row.sample, row.audio
    folder = conversation_path(ref.conversation_id)  # not the manifest's `path`: the id is checked
    channel = next((i for i, c in enumerate(meta.channels or []) if turn.speaker in c), None)
    return {
        "audio": {"bytes": wav.read_bytes(), "path": f"{folder}/{wav.name}"},
        "audio_path": f"{folder}/{wav.name}",
        "text": turn.text,
        "target": row.target,
        "target_kind": row.kind,
        "conversation_id": ref.conversation_id,
        "turn_number": int(sample["turn_number"]),
        "speaker": turn.speaker,
        "speaker_id": int(sample["speaker_id"]),
        "duration_sec": float(turn.duration_sec),
        "words": [
            {"word": w["word"], "start": w["start"] - turn.start_time, "end": w["end"] - turn.start_time}
            for w in turn.words or []
        ],
        "conversation_audio_path": _conversation_audio(ref, meta),
        "channel": channel,
        **_PROBE_NONE,
    }


def _probe_row(row: ProbeRow, meta: ConversationMetadata) -> dict[str, Any]:
    """A probe's row: not on the conversation audio (no channel), no word timings."""
    p, wav = row.probe, row.audio
    folder = conversation_path(row.ref.conversation_id)
    answer = row.answer_audio
    return {
        "audio": {"bytes": wav.read_bytes(), "path": f"{folder}/{wav.name}"},
        "audio_path": f"{folder}/{wav.name}",
        "text": p.question,
        "target": p.answer,
        "target_kind": row.kind,
        "conversation_id": row.ref.conversation_id,
        "turn_number": p.turn_number,
        "speaker": p.asked_by,
        "speaker_id": row.speaker_id,
        "duration_sec": float(p.duration_sec),
        "words": [],
        "conversation_audio_path": _conversation_audio(row.ref, meta),
        "channel": None,
        "probe_id": p.probe_id,
        "category": p.category,
        "adversarial": p.adversarial,
        "scoring": p.scoring,
        "time": float(p.time),
        "evidence": [
            {
                "turn_id": int(e["turn_id"]),
                "source_id": e.get("source_id"),
                "start": float(e["start"]),
                "end": float(e["end"]),
            }
            for e in p.evidence
        ],
        "distance_sec": _pair(p.distance_sec, float),
        "distance_tokens": _pair(p.distance_tokens, int),
        "answer_audio_path": f"{folder}/{answer.name}" if answer else None,
    }


def _pair(value: dict[str, Any] | None, kind: type) -> dict[str, Any] | None:
    """A {latest, earliest} distance typed for its column."""
    return None if value is None else {k: kind(value[k]) for k in ("latest", "earliest")}


def _conversation_audio(ref: ConversationRef, meta: ConversationMetadata) -> str | None:
    """conversation.wav relative to the root, or None."""
    if not meta.conversation_audio:
        return None
    conv = member(ref, meta.conversation_audio, "conversation_audio")
    return f"{conversation_path(ref.conversation_id)}/{conv.name}"


def _pair_feature(datasets: Any, kind: str) -> dict[str, Any]:
    return {"latest": datasets.Value(kind), "earliest": datasets.Value(kind)}


def export_hf(
    root: Path | str,
    out: Path | str,
    manifest: Path | None = None,
    undecoded: bool = False,
    probes: str = "auto",
    decoded: bool = False,
) -> ExportSummary:
    """Rows are built as `{bytes, path}` structs and cast to `Audio`, so writing needs no audio
    codec; reading decodes with whatever backend `datasets` uses on the training machine
    (torchcodec in datasets 5). `undecoded` stores `Audio(decode=False)`: `ds[i]` then works on a
    machine without torchcodec, its audio a `{"bytes", "path"}` dict, decoded in one line with
    `soundfile.read(io.BytesIO(row["audio"]["bytes"]))`. `audio_path` is the WAV's path relative
    to the dataset root (`conversations/<id>/turn_<n>.wav`): `save_to_disk` keeps only the file
    name in the Audio struct's own `path`.

    Which one, by default: decodable `Audio` where torchcodec is importable here, else
    `Audio(decode=False)`, so that an export loads with `ds[0]` in the environment that made it;
    the summary says which. `decoded` stores decodable `Audio` even without torchcodec here (for
    a reading machine that has it; `ds.cast_column("audio", datasets.Audio())` does the same
    on the reading side).

    Full-duplex columns: `words` (the turn's word timings, seconds from the start of its audio;
    empty when the dataset has none), `conversation_audio_path` (the conversation's two-channel
    conversation.wav relative to the root, or None) and `channel` (the channel the turn's speaker
    is on in it, or None)."""
    datasets = _datasets_library()
    root = Path(root)
    refs = open_dataset(root, manifest)
    schema = quality_schema(refs)
    rows = _Rows(refs, probes, schema, _scorer_names(refs) if "scorers" in schema else [])
    features = datasets.Features(_features(datasets, schema, rows.scorers))
    undecoded, notes = _decoding(undecoded, decoded)
    with staged_folder(out, "hf", is_hf_file) as stage:
        ds = _save(datasets, stage, rows, features, undecoded)
        kinds = Counter(ds["target_kind"])
        write_card(stage.tree, root, refs, _card_spec(ds, undecoded, bool(schema)))
        if rows.left_out and probes == "auto":
            notes.append(probes_note(len(rows.left_out), "--hf-probes"))
        return ExportSummary(len(ds), "sample", {k: kinds[k] for k in sorted(kinds)}, tuple(notes))


def _datasets_library() -> Any:
    """The `datasets` module, or a SynthError saying how to install it."""
    try:
        import datasets
    except ImportError:
        raise SynthError(
            "the hf export needs the Hugging Face datasets library: pip install 'synth[hf]'"
        ) from None
    return datasets


def _scorer_names(refs: list[ConversationRef]) -> list[str]:
    """The scorers named in the turns' `quality` versions, in first-seen order."""
    scorers: list[str] = []
    for ref in refs:
        for turn in ref.metadata().turns:
            names = (turn.extra.get("quality") or {}).get("scorers") or {}
            scorers += [n for n in names if n not in scorers]
    return scorers


@dataclass
class _Rows:
    """The export's rows, generated for `Dataset.from_generator`: each conversation's turns, then
    its probes as `probes` says (those left out are listed in `left_out`), with the quality column
    where `schema` has keys."""

    refs: list[ConversationRef]
    probes: str
    schema: dict[str, str]
    scorers: list[str]
    left_out: list[str] = field(default_factory=list)

    def __call__(self) -> Iterator[dict[str, Any]]:
        metas: dict[str, ConversationMetadata] = {}
        for row in conversation_rows(self.refs, self.probes, self.left_out):
            ref = row.ref
            if ref.conversation_id not in metas:
                metas.clear()  # one conversation's metadata at a time
                metas[ref.conversation_id] = ref.metadata()
            meta = metas[ref.conversation_id]
            if isinstance(row, ProbeRow):
                out = _probe_row(row, meta)
                block = None
            else:
                out = _turn_row(row, meta)
                block = row.turn.extra.get("quality")
            if self.schema:
                out["quality"] = _quality_value(block, self.schema, self.scorers)
            yield out


def _features(datasets: Any, schema: dict[str, str], scorers: list[str]) -> dict[str, Any]:
    """The columns' types: a turn's, a probe's, and the quality column where `schema` has keys."""
    return {
        **_turn_features(datasets),
        **_probe_features(datasets),
        **({"quality": _quality_feature(datasets, schema, scorers)} if schema else {}),
    }


def _turn_features(datasets: Any) -> dict[str, Any]:
    """The columns every row has (audio to channel)."""
    return {
        "audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
        "audio_path": datasets.Value("string"),
        "text": datasets.Value("string"),
        "target": datasets.Value("string"),
        "target_kind": datasets.Value("string"),
        "conversation_id": datasets.Value("string"),
        "turn_number": datasets.Value("int32"),
        "speaker": datasets.Value("string"),
        "speaker_id": datasets.Value("int32"),
        "duration_sec": datasets.Value("float64"),
        "words": [
            {
                "word": datasets.Value("string"),
                "start": datasets.Value("float64"),
                "end": datasets.Value("float64"),
            }
        ],
        "conversation_audio_path": datasets.Value("string"),
        "channel": datasets.Value("int32"),
    }


def _probe_features(datasets: Any) -> dict[str, Any]:
    """A memory probe's columns (None or empty on a turn's row)."""
    return {
        "probe_id": datasets.Value("string"),
        "category": datasets.Value("string"),
        "adversarial": datasets.Value("bool"),
        "scoring": datasets.Value("string"),
        "time": datasets.Value("float64"),
        "evidence": [
            {
                "turn_id": datasets.Value("int32"),
                "source_id": datasets.Value("string"),
                "start": datasets.Value("float64"),
                "end": datasets.Value("float64"),
            }
        ],
        "distance_sec": _pair_feature(datasets, "float64"),
        "distance_tokens": _pair_feature(datasets, "int64"),
        "answer_audio_path": datasets.Value("string"),
    }


def _decoding(undecoded: bool, decoded: bool) -> tuple[bool, list[str]]:
    """Whether the audio is stored undecoded, and the summary's notes on it: undecoded by
    default where torchcodec (which datasets decodes Audio with) is missing, so ds[0] works here."""
    notes: list[str] = []
    if not undecoded and not decoded and importlib.util.find_spec("torchcodec") is None:
        undecoded = True
        notes.append(
            "audio stored undecoded (Audio(decode=False)): torchcodec, which datasets decodes audio "
            "with, is not installed here; ds[0]['audio'] is {'bytes', 'path'}, decoded with "
            "soundfile.read(io.BytesIO(row['audio']['bytes'])); where torchcodec is installed, "
            "ds.cast_column('audio', datasets.Audio()) decodes it"
        )
    elif decoded and importlib.util.find_spec("torchcodec") is None:
        notes.append(
            "rows decode their audio with torchcodec, which is not installed here: install it where you read them"
        )
    return undecoded, notes


def _save(datasets: Any, stage: Stage, rows: _Rows, features: Any, undecoded: bool) -> Any:
    """The rows made into a Dataset with its audio cast to `Audio`, saved in the stage's tree."""
    cache = stage.folder / "cache"  # not ~/.cache; a killed run's is removed by the next
    ds = datasets.Dataset.from_generator(rows, features=features, cache_dir=str(cache))
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=SAMPLE_RATE, decode=not undecoded))
    ds.save_to_disk(str(stage.tree))
    return ds


def _card_spec(ds: Any, undecoded: bool, quality: bool) -> CardSpec:
    """The card of an hf export: its arrow files as the Hub's one config, its features."""
    decode = (
        "The audio is stored undecoded (`Audio(decode=False)`): `ds[0]['audio']` is `{bytes, path}`, "
        "decoded with `soundfile.read(io.BytesIO(row['audio']['bytes']))`, or "
        "`ds.cast_column('audio', datasets.Audio())` where torchcodec is installed."
        if undecoded
        else "The audio decodes with `datasets`' audio backend (torchcodec)."
    )
    loading = f"""A `datasets` folder written with `save_to_disk`:

```python
import datasets

ds = datasets.load_from_disk("path/to/this/folder")
```

{decode} The Arrow files are also readable as the card's config declares them:
`datasets.load_dataset("arrow", data_files={{"train": "path/to/this/folder/data-*.arrow"}})`."""
    return CardSpec(
        export="hf",
        rows=len(ds),
        unit="sample",
        loading=loading,
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "data-*.arrow"}]}],
        features=ds.features._to_yaml_list(),
        columns=COLUMNS + ([QUALITY_COLUMN] if quality else []),
    )
