"""The options a dataset was made with, recorded in `dataset.json` at its root, so that resuming it
with other options (another seed, voices, speech profile, noise...) is refused instead of
silently skipping what is there and adding conversations of another kind.

Only what changes the conversations is recorded (not how fast they are made: batching, workers,
shards). A dataset made before this file existed gets it at its first resume.

dataset.json says what the dataset has now: `synth tokenize` rewrites its sample options
(`samples.*`, `tokenizer`) with the conversations, and `synth validate` checks every
conversation's `tokens` against them. A record that holds only those (`"partial": true`, written
by tokenize or merge where there was none) is completed by the next `synth generate` that agrees
with it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConflictError
from ..options import recorded_fields
from ..version import __version__
from .files import replace_bytes

DATASET_FILE = "dataset.json"


def read_record(root: Path) -> dict[str, Any] | None:
    """dataset.json as a whole (synth_version, options, partial), None when it is missing or
    unreadable."""
    path = root / DATASET_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("options"), dict):
        return None
    return data


def read_options(root: Path) -> dict[str, Any] | None:
    """The options recorded in a dataset's dataset.json, None when it has none."""
    record = read_record(root)
    return record["options"] if record is not None else None


# What the training samples were made with: dataset.json's flat keys, and the names of the same
# settings in a conversation's metadata `tokens` block.
SAMPLE_SETTINGS = {
    "tokenizer": "tokenizer",
    "samples.format": "format",
    "samples.pad_multiple": "pad_multiple",
    "samples.system_prompt": "system_prompt",
    "samples.speech_profile": "speech_profile",
}


def sample_keys(config: Any, tokenizer: str) -> dict[str, Any]:
    """dataset.json's keys for a sample config (synth.samples.builder.SampleConfig) and a
    tokenizer, as `synth generate` records them."""
    return {"tokenizer": tokenizer, **{f"samples.{k}": v for k, v in plain(config).items()}}


def _profile(spec: Any) -> Any:
    """A speech profile as synth.samples.builder.SpeechProfile.spec() writes it ('rate:10.0' and
    'rate:10' are one profile)."""
    kind, _, value = str(spec).partition(":")
    try:
        return f"rate:{float(value):g}" if kind == "rate" else spec
    except ValueError:
        return spec


def records_samples(options: Mapping[str, Any]) -> bool:
    """Whether dataset.json's options say how the samples are made (samples on or off)."""
    return "samples" in options or any(k in options for k in SAMPLE_SETTINGS)


def sample_options(options: Mapping[str, Any]) -> dict[str, Any] | None:
    """The sample settings dataset.json records, by their `tokens` names ({} when it does not
    say, None when the dataset has no samples)."""
    if "samples" in options and options["samples"] is None:
        return None
    out = {short: options[key] for key, short in SAMPLE_SETTINGS.items() if key in options}
    if "speech_profile" in out:
        out["speech_profile"] = _profile(out["speech_profile"])
    return out


def tokens_options(tokens: Any) -> dict[str, Any] | None:
    """The sample settings a conversation's metadata `tokens` block names (None: no samples)."""
    if not isinstance(tokens, Mapping) or not tokens:
        return None
    out = {short: tokens[short] for short in SAMPLE_SETTINGS.values() if short in tokens}
    if "speech_profile" in out:
        out["speech_profile"] = _profile(out["speech_profile"])
    return out


def sample_differences(expected: Mapping[str, Any] | None, got: Mapping[str, Any] | None) -> list[str]:
    """'speech_profile rate:10, not llama-omni' for each setting that differs (a setting one side
    does not name, as in datasets made before it was recorded, is not compared)."""
    if expected is None or got is None:
        if expected is None and got is None:
            return []
        return [
            "no training samples" if got is None else "training samples",
        ]
    out = []
    for key in SAMPLE_SETTINGS.values():
        if key in expected and key in got and expected[key] != got[key]:
            out.append(f"{key} {_short(got[key])}, not {_short(expected[key])}")
    return out


def _short(value: Any) -> str:
    text = str(value)
    return repr(text[:40] + "...") if len(text) > 40 else text


def with_sample_keys(root: Path, keys: Mapping[str, Any]) -> bytes:
    """dataset.json with these sample settings (`sample_keys`) in place of the ones it records,
    as bytes to write; a partial record where the dataset has none."""
    record = read_record(root)
    if record is None:
        record = {"options": {}, "partial": True}
    options = {k: v for k, v in record["options"].items() if k != "samples" and k not in SAMPLE_SETTINGS}
    options.update(keys)
    record = {**record, "synth_version": __version__, "options": dict(sorted(options.items()))}
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_record(root: Path, data: bytes) -> None:
    """Replace dataset.json (a temporary file, fsynced, renamed; call it under the writer's lock)."""
    path = root / DATASET_FILE
    replace_bytes(path, data, tmp=path.with_name(f".{DATASET_FILE}.{uuid.uuid4().hex[:8]}"), sync_folder=True)


def differences(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """'name: then X, now Y' for every option that differs."""
    out = []
    for key in sorted(set(recorded) | set(now)):
        if recorded.get(key) != now.get(key):
            out.append(f"{key}: then {recorded.get(key)!r}, now {now.get(key)!r}")
    return out


def check_options(root: Path, options: Mapping[str, Any], allow_changes: bool = False) -> None:
    """Refuse (ConfigError naming `resume`) to add to a dataset made with other options, unless
    `allow_changes`; record the options when the dataset has none recorded yet (call it under the
    writer's lock)."""
    record = read_record(root)
    if record is not None:
        recorded = record["options"]
        partial = bool(record.get("partial"))  # only the sample settings: compare those, then complete it
        changed = differences(recorded, {k: options.get(k) for k in recorded} if partial else options)
        samples = sample_differences(sample_options(recorded), sample_options(options))
        if allow_changes and samples and records_samples(recorded) and records_samples(options):
            raise ConflictError(
                "resume",
                f"{root}'s samples are made otherwise ({', '.join(samples)}), and one dataset holds one set "
                "of sample settings, even with {resume_with_changes}: write elsewhere, or first rewrite "
                "it with `synth tokenize` and the new settings",
                mentions={"resume_with_changes": "resume_with_changes=True"},
            )
        if changed and not allow_changes:
            shown = "; ".join(changed[:6]) + (" ..." if len(changed) > 6 else "")
            raise ConflictError(
                "resume",
                f"{root} was made with other options ({shown}): write elsewhere, or add to it anyway "
                "with {resume_with_changes}",
                mentions={"resume_with_changes": "resume_with_changes=True"},
            )
        if not partial:
            return
    record = {"synth_version": __version__, "options": dict(options)}
    write_record(root, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def plain(value: Any, recorded: bool = False) -> Any:
    """A JSON-ready form of an option value (dataclasses, paths, tuples). `recorded`: a config's
    options of the dataset only (synth.options.recorded_fields: no run option, no `when_set` one
    at its default), what dataset.json records."""
    import dataclasses

    spec = getattr(value, "spec", None)
    if callable(spec):  # a distribution written as its spec ("normal:0.4,0.2")
        return spec()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        pairs = (
            recorded_fields(value)
            if recorded
            else [(f, getattr(value, f.name)) for f in dataclasses.fields(value)]
        )
        return {f.name: plain(v, recorded) for f, v in pairs}
    if isinstance(value, Mapping):
        return {str(k): plain(v, recorded) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(v, recorded) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
