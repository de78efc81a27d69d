"""LibriSpeech (`<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` with
`<speaker>-<chapter>.trans.txt`): one conversation per chapter, or per chunk of a chapter of at
least `min_duration` seconds; utterances in order as turns, the reader as the only speaker.

Transcripts are kept as the corpus gives them (upper case, no punctuation) unless `truecase`;
metadata says which (`transcript_style`). Speaker gender comes from SPEAKERS.TXT when found."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import soundfile as sf

from ..domain import Skipped, Source
from ..errors import DialogError, SynthError
from ..produce.recorded import RecordedGroup, Utterance

_TRUECASE_I = re.compile(r"\bi\b|\bi'(m|ve|ll|d)\b")


def truecase(text: str) -> str:
    """'HELLO I'M HERE' -> "Hello I'm here": lower case, sentence-initial capital, capital I."""
    lowered = _TRUECASE_I.sub(lambda m: m.group(0).replace("i", "I", 1), text.lower())
    return lowered[:1].upper() + lowered[1:]


def _speakers_file(root: Path) -> dict[str, dict[str, str]]:
    for folder in [root, *root.parents][:3]:
        path = folder / "SPEAKERS.TXT"
        if path.is_file():
            meta = {}
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith(";") or "|" not in line:
                    continue
                parts = [p.strip() for p in line.split("|")]
                if len(parts) >= 3 and parts[0].isdigit():
                    meta[parts[0]] = {
                        "gender": {"F": "female", "M": "male"}.get(parts[1], parts[1]),
                        "subset": parts[2],
                        **({"name": parts[4]} if len(parts) > 4 else {}),
                    }
            return meta
    return {}


def _read_transcripts(path: Path) -> dict[str, str]:
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        uid, _, text = line.partition(" ")
        if not text.strip():
            raise DialogError(f"line {n} has an id but no text", str(path))
        out[uid] = text.strip()
    return out


def _key(path: Path) -> tuple[int, ...]:
    return tuple(int(x) if x.isdigit() else 0 for x in re.split(r"[-_]", path.name.split(".")[0]))


def read_librispeech(
    root: Path,
    min_duration: float | None = None,
    truecased: bool = False,
) -> Iterator[RecordedGroup | DialogError | Skipped]:
    """A LibriSpeech folder as one conversation per chapter (or per chunk of at least `min_duration`
    seconds), lazily."""
    root = Path(root)
    if not root.is_dir():
        raise SynthError(f"{root}: not a folder")
    trans_files = sorted(root.rglob("*.trans.txt"), key=_key)
    if not trans_files:
        raise SynthError(
            f"{root}: no *.trans.txt files (expected LibriSpeech's "
            "<speaker>/<chapter>/<speaker>-<chapter>.trans.txt layout)"
        )
    speakers = _speakers_file(root)
    style = "truecased" if truecased else "librispeech-uppercase"
    for trans in trans_files:
        speaker, _, chapter = trans.name.removesuffix(".trans.txt").partition("-")
        where = str(trans)
        try:
            texts = _read_transcripts(trans)
            audio = {
                p.name.split(".")[0]: p
                for p in trans.parent.iterdir()
                if p.suffix.lower() in (".flac", ".wav")
            }
            missing_text = sorted(set(audio) - set(texts))
            if missing_text:
                raise DialogError(
                    f"no transcript line for {audio[missing_text[0]].name} in {trans.name}", where
                )
            missing_audio = sorted(set(texts) - set(audio))
            if missing_audio:
                raise DialogError(f"transcript line {missing_audio[0]} has no audio file", where)
            ordered = sorted(texts, key=lambda u: _key(Path(u)))
            chunks = _chunks(ordered, audio, min_duration, where)
        except DialogError as exc:
            yield exc
            continue
        if not chunks:
            yield Skipped(where, f"the chapter is shorter than --min-duration {min_duration:g} s")
            continue
        meta = {speaker: speakers[speaker]} if speaker in speakers else {}
        for n, ids in enumerate(chunks):
            cid = f"librispeech_{speaker}_{chapter}_{n:03d}"
            yield RecordedGroup(
                conversation_id=cid,
                source=Source(dataset="librispeech", split=root.name, index=n, path=where),
                corpus="librispeech",
                utterances=tuple(
                    Utterance(speaker, audio[u], truecase(texts[u]) if truecased else texts[u]) for u in ids
                ),
                speaker_meta=meta,
                extra={"transcript_style": style, "chapter": chapter},
            )


def _chunks(
    ordered: list[str], audio: dict[str, Path], min_duration: float | None, where: str
) -> list[list[str]]:
    """The whole chapter, or consecutive chunks of at least `min_duration` seconds (the
    remainder joins the last chunk); a chapter shorter than `min_duration` gives none."""
    if not min_duration:
        return [ordered]
    chunks: list[list[str]] = []
    current: list[str] = []
    total = 0.0
    for uid in ordered:
        try:
            info = sf.info(str(audio[uid]))
        except Exception as exc:
            raise DialogError(f"unreadable audio file {audio[uid]} ({exc})", where) from None
        current.append(uid)
        total += info.frames / info.samplerate
        if total >= min_duration:
            chunks.append(current)
            current, total = [], 0.0
    if current and chunks:
        chunks[-1].extend(current)
    return chunks  # none: the chapter is shorter than min_duration
