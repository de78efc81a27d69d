"""Speaker tables: who the speakers of a multi-speaker model are (gender, accent, region, age),
read from the corpus's own table and matched to the model's speaker names."""

from __future__ import annotations

import re
from pathlib import Path


def speaker_key(name: str) -> str:
    """'VCTK_p225' / 'P225' / 'p225' -> 'p225': names as corpora and models spell them."""
    return re.sub(r"^(vctk|libritts)[_-]", "", name.strip().lower())


def read_speaker_info(path: Path) -> dict[str, dict[str, str]]:
    """A speaker table -> speaker key -> metadata (gender, accent, region, age, name): VCTK's
    speaker-info.txt (`ID AGE GENDER ACCENTS REGION`, whitespace-separated, region may have
    spaces), a TSV with a header including id/gender/accent columns, or LibriSpeech's and
    LibriTTS(-R)'s SPEAKERS.txt (`ID | SEX | SUBSET | MINUTES | NAME`, `;` comments)."""
    lines = [l for l in path.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    if not lines:
        return {}
    rows = [l for l in lines if not l.lstrip().startswith(";")]
    if rows and "|" in rows[0]:
        return _pipe_table(rows)
    header = lines[0].replace("\t", " ").split()
    cols = [h.lower() for h in header]
    out: dict[str, dict[str, str]] = {}
    sep = "\t" if "\t" in lines[0] else None
    for line in lines[1:]:
        parts = line.split(sep) if sep else line.split()
        if not parts or parts[0].startswith(";"):
            continue
        row: dict[str, str] = {}
        for i, col in enumerate(cols):
            if i >= len(parts):
                break
            if col == "region" and not sep:
                row["region"] = " ".join(parts[i:])
                break
            row[col] = parts[i].strip()
        ident = row.pop("id", parts[0])
        gender = row.get("gender", "").upper()
        meta = {"gender": {"F": "female", "M": "male"}.get(gender, row.get("gender", ""))}
        accent = row.get("accents") or row.get("accent")
        if accent:
            meta["accent"] = accent
        if row.get("region"):
            meta["region"] = row["region"]
        if row.get("age"):
            meta["age"] = row["age"]
        out[speaker_key(ident)] = {k: v for k, v in meta.items() if v}
    return out


def _pipe_table(rows: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        parts = [p.strip() for p in row.split("|")]
        if len(parts) < 2 or not parts[0]:
            continue
        meta = {"gender": {"F": "female", "M": "male"}.get(parts[1].upper(), parts[1])}
        if len(parts) > 4 and parts[4]:
            meta["name"] = parts[4]
        out[speaker_key(parts[0])] = {k: v for k, v in meta.items() if v}
    return out
