"""The on-disk records of a conversation, as pure functions: metadata.json and the manifest line.
Field names are a contract with training code (DESIGN.md section 1)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from .domain import Conversation

METADATA_VERSION = 1


def turn_files(turn_id: int) -> tuple[str, str]:
    return f"turn_{turn_id}.wav", f"turn_{turn_id}.txt"


def build_metadata(conv: Conversation) -> dict[str, Any]:
    speakers = conv.dialog.speakers
    turns = []
    for t in conv.turns:
        wav, txt = turn_files(t.turn_id)
        turns.append({
            "turn_id": t.turn_id,
            "speaker": t.speaker,
            "speaker_id": speakers.index(t.speaker),
            "voice": t.voice.id,
            "audio_file": wav,
            "transcript_file": txt,
            "text": t.text,
            "num_samples": t.num_samples,
            "duration_sec": round(t.duration_sec, 4),
            "start_time": round(t.start_time, 4),
            "end_time": round(t.end_time, 4),
            **t.extra,
        })
    meta: dict[str, Any] = {
        "conversation_id": conv.conversation_id,
        "total_turns": len(conv.turns),
        "total_duration_sec": round(conv.total_duration_sec, 4),
        "speech_duration_sec": round(conv.speech_duration_sec, 4),
        "speakers": speakers,
        "voices": {s: v.to_dict() for s, v in conv.casting.items()},
        "turns": turns,
        "source": conv.dialog.source.to_dict(),
        "metadata_version": METADATA_VERSION,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    meta.update(conv.extra)
    tokens = conv.extra.get("tokens")
    if tokens:
        meta.update({k: tokens[k] for k in ("text_tokens", "speech_tokens", "total_tokens")})
    return meta


def metadata_json(meta: dict[str, Any]) -> str:
    """metadata.json as written to disk (indented, UTF-8 kept)."""
    return json.dumps(meta, indent=2, ensure_ascii=False) + "\n"


def samples_jsonl(samples: list[dict[str, Any]]) -> str:
    """samples.jsonl: one compact JSON object per line, line i = turn i."""
    return "".join(json.dumps(s, separators=(",", ":")) + "\n" for s in samples)


def build_manifest_entry(meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest line of a conversation, derived from its metadata alone (so a folder that was
    renamed into place can always be described again)."""
    entry = {
        "conversation_id": meta["conversation_id"],
        "path": f"conversations/{meta['conversation_id']}",
        "num_turns": meta["total_turns"],
        "num_speakers": len(meta["speakers"]),
        "duration_sec": meta["total_duration_sec"],
        "speech_duration_sec": meta.get("speech_duration_sec"),
        "total_tokens": meta.get("total_tokens"),
        "text_tokens": meta.get("text_tokens"),
        "speech_tokens": meta.get("speech_tokens"),
    }
    source = meta.get("source") or {}
    if source:
        entry["source"] = {k: source[k] for k in ("dataset", "split", "index") if k in source}
    return entry
