"""Lhotse manifests: a RecordingSet with its SupervisionSet, or a CutSet (JSON Lines, plain or
gzipped), or a Lhotse Shar folder (`cuts.NNNNNN.jsonl.gz` with `recording.NNNNNN.tar`). Every
recording (or cut) is a long conversation by the rules of synth.corpora.segments: a turn per
supervision, in time order, with its speaker, its channels and its times.

The manifests are read as the JSON Lhotse writes, line by line, without importing Lhotse (and
PyTorch with it). Supervisions are grouped by recording as they stream when each recording's
supervisions come together (as Lhotse's recipes write them; a first pass over the file checks);
otherwise they are gathered in memory first. Recordings are indexed in memory (a few hundred bytes
each).

Audio: a `file` source, a `command` source (run once per recording into a temporary file) and a
Shar archive's audio are read by seeking, a piece at a time, whatever the recording's length.
Sources libsndfile cannot read, `url` and `memory` sources and recordings with transforms go
through Lhotse's own `Recording.load_audio` (pip install 'synth[lhotse]'), one piece at a time."""

from __future__ import annotations

import copy
import gzip
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..domain import Skipped, Source
from ..errors import DialogError, SynthError
from ..produce.recorded import AudioFile, FilePieces, Pieces, RecordedGroup
from .segments import Recording, SegmentSettings, Supervision, recording_groups

CUT_TYPES = ("MonoCut", "MultiCut")


def read_lhotse(
    path: Path,
    supervisions: Path | None = None,
    name: str = "lhotse",
    transcripts: str = "auto",
    truecased: bool = False,
    session_minutes: float | None = None,
    max_turn_sec: float | None = None,
) -> Iterator[RecordedGroup | DialogError | Skipped]:
    """The conversations of a Lhotse corpus (see the module): `path` a recordings manifest (with
    `supervisions`), a cuts manifest, or a Shar folder."""
    path = Path(path)
    options = {
        "name": name,
        "rule": transcripts,
        "truecased": truecased,
        "minutes": session_minutes,
        "max_turn_sec": max_turn_sec,
    }
    if path.is_dir():
        if supervisions is not None:
            raise SynthError(f"{path}: a Shar folder holds its supervisions; give no SUPERVISIONS")
        yield from _shar(path, options)
        return
    kind = _kind(path)
    if supervisions is not None:
        other = _kind(Path(supervisions))
        if (kind, other) == ("supervisions", "recordings"):  # given the other way round
            path, supervisions, kind, other = Path(supervisions), path, other, kind
        if (kind, other) != ("recordings", "supervisions"):
            raise SynthError(
                f"expected a recordings manifest and a supervisions manifest, got {path} ({kind}) and "
                f"{supervisions} ({other})"
            )
        yield from _recordings(path, Path(supervisions), options)
    elif kind == "cuts":
        yield from _cuts(path, options)
    else:
        raise SynthError(
            f"{path}: a {kind} manifest; give RECORDINGS SUPERVISIONS, a cuts manifest or a Shar folder"
        )


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | DialogError]]:
    """(line number, record) of a JSON Lines manifest, plain or gzipped; a bad line is a
    DialogError naming it."""
    try:
        fh = _open_text(path)
    except OSError as exc:
        raise SynthError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        try:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield n, DialogError(f"invalid JSON at column {exc.colno}: {exc.msg}", f"{path} line {n}")
                    continue
                if not isinstance(record, dict):
                    yield n, DialogError("not a JSON object", f"{path} line {n}")
                    continue
                yield n, record
        except (OSError, EOFError, UnicodeDecodeError) as exc:  # a damaged gzip stream
            raise SynthError(f"{path}: cannot read on ({exc})") from None


def _kind(path: Path) -> str:
    if not path.is_file():
        raise SynthError(f"{path}: no such file (a Lhotse manifest, .jsonl or .jsonl.gz)")
    for _, record in _lines(path):
        if isinstance(record, DialogError):
            raise SynthError(f"{record.where}: {record.message}; is this a Lhotse JSON Lines manifest?")
        if "supervisions" in record and ("recording" in record or record.get("type") in CUT_TYPES):
            return "cuts"
        if record.get("type") in ("MixedCut", "PaddingCut"):
            return "cuts"
        if "sources" in record:
            return "recordings"
        if "recording_id" in record and "start" in record:
            return "supervisions"
        raise SynthError(f"{path}: the first record is no recording, supervision or cut: {sorted(record)}")
    raise SynthError(f"{path}: empty")


def _supervision(d: dict[str, Any], offset: float = 0.0, channel: Any = None) -> Supervision:
    """A supervision record, its start moved by `offset` (a cut's start in its recording)."""
    ch = d.get("channel", channel)
    channels = None if ch is None else tuple(int(c) for c in (ch if isinstance(ch, list) else [ch]))
    meta = {"gender": d["gender"]} if d.get("gender") else {}
    return Supervision(
        id=str(d["id"]),
        start=float(d["start"]) + offset,
        duration=float(d["duration"]),
        text=d.get("text") if isinstance(d.get("text"), str) else None,
        speaker=str(d["speaker"]) if d.get("speaker") not in (None, "") else None,
        channels=channels,
        meta=meta,
    )


def _languages(sups: list[dict[str, Any]]) -> dict[str, Any]:
    found = sorted({str(s["language"]) for s in sups if s.get("language")})
    return {"language": found[0] if len(found) == 1 else found} if found else {}


def _recordings(recordings: Path, supervisions: Path, options: dict[str, Any]) -> Iterator[Any]:
    index: dict[str, tuple[int, dict[str, Any]]] = {}
    for n, rec in _lines(recordings):
        if isinstance(rec, DialogError):
            yield rec
        elif "id" not in rec or "sources" not in rec:
            yield DialogError("a recording without id or sources", f"{recordings} line {n}")
        else:
            index[str(rec["id"])] = (n, rec)
    done: set[str] = set()
    for rid, sups in _grouped(supervisions):
        if isinstance(sups, DialogError):
            yield sups
            continue
        done.add(rid)
        where = f"{supervisions} recording {rid}"
        if rid not in index:
            first = sups[0]["id"] if sups and "id" in sups[0] else "?"
            yield DialogError(f"recording {rid} (of supervision {first}) is not in {recordings.name}", where)
            continue
        line, rec = index[rid]
        yield from _conversations(rec, sups, 0.0, None, recordings, line, where, options)
    for rid, (line, _) in index.items():
        if rid not in done:
            yield Skipped(f"{recordings} line {line} recording {rid}", "no supervisions")


def _grouped(path: Path) -> Iterator[tuple[str, list[dict[str, Any]] | DialogError]]:
    """(recording id, its supervisions) in the file's order; streamed when each recording's
    supervisions come together (a first pass checks), gathered in memory when they do not."""
    finished: set[str] = set()
    current: str | None = None
    together = True
    for _, sup in _lines(path):
        if isinstance(sup, DialogError):
            continue
        rid = str(sup.get("recording_id"))
        if rid != current:
            if rid in finished:
                together = False
                break
            if current is not None:
                finished.add(current)
            current = rid
    finished.clear()
    if not together:
        gathered: dict[str, list[dict[str, Any]]] = {}
        for n, sup in _lines(path):
            if isinstance(sup, DialogError):
                yield "", sup
            elif _bad(sup):
                yield "", DialogError(_bad(sup), f"{path} line {n}")
            else:
                gathered.setdefault(str(sup["recording_id"]), []).append(sup)
        yield from gathered.items()
        return
    group: list[dict[str, Any]] = []
    current = None
    for n, sup in _lines(path):
        if isinstance(sup, DialogError):
            yield "", sup
            continue
        if _bad(sup):
            yield "", DialogError(_bad(sup), f"{path} line {n}")
            continue
        rid = str(sup["recording_id"])
        if rid != current and group:
            yield str(current), group
            group = []
        current = rid
        group.append(sup)
    if group:
        yield str(current), group


def _bad(sup: dict[str, Any]) -> str:
    """Why a supervision record cannot be used ("" when it can)."""
    missing = [k for k in ("id", "recording_id", "start", "duration") if k not in sup]
    if missing:
        return f"a supervision without {', '.join(missing)}"
    if not all(
        isinstance(sup[k], (int, float)) and not isinstance(sup[k], bool) for k in ("start", "duration")
    ):
        return f"supervision {sup['id']}: start and duration must be numbers"
    return ""


def _cuts(path: Path, options: dict[str, Any]) -> Iterator[Any]:
    for n, cut in _lines(path):
        if isinstance(cut, DialogError):
            yield cut
            continue
        yield from _cut(cut, path, n, None, options)


def _cut(
    cut: dict[str, Any],
    manifest: Path,
    line: int,
    audio: tuple[AudioFile, str] | None,
    options: dict[str, Any],
) -> Iterator[Any]:
    """The conversations of one cut (line `line` of `manifest`); `audio`: the cut's own audio
    and its name (Shar)."""
    where = f"{manifest} line {line}"
    kind = cut.get("type", "MonoCut")
    cid = str(cut.get("id", "?"))
    if kind == "PaddingCut":
        yield Skipped(f"{where} cut {cid}", "a padding cut (silence, no recording)")
        return
    if kind not in CUT_TYPES:
        yield DialogError(f"cut {cid} is a {kind}, not one recording (MonoCut or MultiCut)", where)
        return
    rec = cut.get("recording")
    if not isinstance(rec, dict) or "start" not in cut or "duration" not in cut:
        yield DialogError(f"cut {cid} has no recording (or no start and duration)", where)
        return
    sups = cut.get("supervisions") or []
    bad = [problem for s in sups if (problem := _bad({"recording_id": rec.get("id"), **s}))]
    if bad:
        yield DialogError(f"cut {cid}: {bad[0]}", where)
        return
    start, duration = float(cut["start"]), float(cut["duration"])
    options = {**options, "cut": cid}
    yield from _conversations(
        rec,
        sups,
        start,
        start + duration,
        manifest,
        line,
        f"{where} cut {cid}",
        options,
        audio,
        cut.get("channel"),
    )


def _conversations(
    rec: dict[str, Any],
    sups: list[dict[str, Any]],
    offset: float,
    end: float | None,
    manifest: Path,
    line: int,
    where: str,
    options: dict[str, Any],
    audio: tuple[AudioFile, str] | None = None,
    cut_channel: Any = None,
) -> Iterator[Any]:
    rid = str(rec.get("id"))
    rec_where = f"{manifest} line {line}"
    try:
        opener, path, channels = _audio(rec, manifest, audio, rec_where)
    except SynthError as exc:
        yield DialogError(str(exc), rec_where)
        return
    duration = rec.get("duration")
    cut = options.get("cut")
    name = options["name"]
    recording = Recording(
        id=str(cut) if cut is not None else rid,
        open=opener,
        path=path,
        where=where,
        duration=float(duration) if isinstance(duration, (int, float)) else None,
        channels=channels,
        offset=offset,
        end=end,
    )
    extra: dict[str, Any] = {"lhotse": {"recording_id": rid, **({"cut_id": cut} if cut is not None else {})}}
    extra.update(_languages(sups))
    segments = [_supervision(s, offset if cut is not None else 0.0, cut_channel) for s in sups]
    settings = SegmentSettings(
        corpus=name,
        prefix=name,
        source=Source(
            dataset=name, path=str(manifest), line=line, original_id=str(cut) if cut is not None else rid
        ),
        rule=options["rule"],
        truecased=options["truecased"],
        session_minutes=options["minutes"],
        extra=extra,
        max_turn_sec=options["max_turn_sec"],
    )
    yield from recording_groups(recording, segments, settings)


def _resolve(source: str, manifest: Path) -> Path:
    """A file source: as Lhotse reads it (relative to the working folder), else relative to the
    manifest's folder."""
    path = Path(source)
    if path.is_absolute() or path.exists():
        return path
    beside = manifest.parent / path
    return beside if beside.exists() else path


def _audio(
    rec: dict[str, Any], manifest: Path, audio: tuple[AudioFile, str] | None, where: str
) -> tuple[Callable[[], Pieces], Path, int]:
    """How to open a recording for pieces, the path turns name, its number of channels."""
    sources = rec.get("sources") or []
    ids = rec.get("channel_ids") or sorted({int(c) for s in sources for c in s.get("channels", [])})
    name = str(rec.get("id"))
    if audio is not None:  # Shar: the cut's own audio, from the archive
        member, member_name = audio
        return (lambda: FilePieces([member], name)), Path(member_name), len(member.channels or ids) or 1
    if not sources:
        raise SynthError(f"recording {name} has no sources")
    types = {s.get("type") for s in sources}
    channels = len(ids) or 1
    if rec.get("transforms") or not types <= {"file", "command"}:
        return (lambda: LhotsePieces(rec, name)), Path(str(sources[0].get("source", name))), channels
    if types == {"command"}:
        if len(sources) != 1:
            raise SynthError(f"recording {name}: several command sources")
        command, chans = str(sources[0]["source"]), tuple(int(c) for c in sources[0]["channels"])
        return (lambda: CommandPieces(command, chans, name)), Path(name), channels
    if types != {"file"}:
        raise SynthError(f"recording {name}: mixed file and command sources")
    files = [
        AudioFile(_resolve(str(s["source"]), manifest), tuple(int(c) for c in s["channels"])) for s in sources
    ]

    def opener() -> Pieces:
        missing = [str(f.source) for f in files if not Path(str(f.source)).is_file()]
        if missing:
            raise SynthError(f"recording {name}: no audio file {missing[0]}")
        try:
            return FilePieces(files, name)
        except SynthError:
            if not _has_lhotse():
                raise
            return LhotsePieces(rec, name)  # a format libsndfile does not read (shorten SPHERE, m4a)

    return opener, Path(str(files[0].source)), channels


def _has_lhotse() -> bool:
    import importlib.util

    return importlib.util.find_spec("lhotse") is not None


class LhotsePieces:
    """A recording read through Lhotse's own Recording.load_audio, one piece at a time."""

    def __init__(self, rec: dict[str, Any], name: str):
        try:
            from lhotse import Recording as LhotseRecording
        except ImportError:
            raise SynthError(
                f"recording {name}: its audio needs Lhotse to read it (pip install 'synth[lhotse]')"
            ) from None
        self.name = name
        self.recording = LhotseRecording.from_dict(copy.deepcopy(rec))  # from_dict takes the dict apart

    def read(self, start: float, duration: float, channels: tuple[int, ...] | None) -> np.ndarray:
        try:
            data = self.recording.load_audio(
                channels=list(channels) if channels is not None else None, offset=start, duration=duration
            )
        except Exception as exc:  # Lhotse's own errors: a missing file, a failing command
            raise SynthError(f"recording {self.name}: Lhotse cannot read it ({exc})") from None
        data = np.asarray(data, dtype=np.float32)
        mono = data.mean(axis=0) if data.ndim == 2 else data
        return resample(mono, self.recording.sampling_rate, SAMPLE_RATE)

    def close(self) -> None:
        pass


class CommandPieces:
    """A `command` source (e.g. sph2pipe): run once, its output streamed into a temporary file,
    read by seeking; the file goes when the conversation is made."""

    def __init__(self, command: str, channels: tuple[int, ...], name: str):
        self.folder = Path(tempfile.mkdtemp(prefix="synth-lhotse-"))
        target = self.folder / "audio"
        try:
            with open(target, "wb") as out:
                proc = subprocess.run(command, shell=True, stdout=out, stderr=subprocess.PIPE, check=False)
            if proc.returncode != 0:
                raise SynthError(
                    f"recording {name}: command {command!r} failed ({proc.stderr.decode(errors='replace')[-200:]})"
                )
            self.pieces = FilePieces([AudioFile(target, channels)], name)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def read(self, start: float, duration: float, channels: tuple[int, ...] | None) -> np.ndarray:
        return self.pieces.read(start, duration, channels)

    def close(self) -> None:
        self.pieces.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class TarMember(io.RawIOBase):
    """One member of an uncompressed tar file, read in place (seekable, its own file handle)."""

    def __init__(self, path: Path, offset: int, size: int):
        super().__init__()
        self._fh = open(path, "rb")
        self._offset, self._size, self._pos = offset, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = min(max(0, base + pos), self._size)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        self._fh.seek(self._offset + self._pos)
        data = self._fh.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _shar(folder: Path, options: dict[str, Any]) -> Iterator[Any]:
    shards = sorted(folder.glob("cuts.*.jsonl*"))
    if not shards:
        raise SynthError(f"{folder}: no cuts.NNNNNN.jsonl.gz (a Lhotse Shar folder)")
    for shard in shards:
        number = shard.name.split(".")[1]
        tars = sorted(folder.glob(f"recording.{number}.tar*"))
        if not tars:
            yield DialogError(f"no recording.{number}.tar beside it (Shar without audio)", str(shard))
            continue
        yield from _shar_shard(shard, tars[0], options)


def _shar_shard(shard: Path, tar_path: Path, options: dict[str, Any]) -> Iterator[Any]:
    compressed = not tar_path.name.endswith(".tar")
    with tarfile.open(tar_path, "r:*") as tar:
        members = iter(tar)
        for n, cut in _lines(shard):
            where = f"{shard} line {n}"
            if isinstance(cut, DialogError):
                yield cut
                continue
            cid = str(cut.get("id", "?"))
            data, meta = next(members, None), next(members, None)
            if data is None or meta is None or not data.name.startswith(f"{cid}."):
                yield DialogError(f"{tar_path.name} does not hold cut {cid}'s audio next", where)
                return
            if data.name.endswith(".nodata"):
                yield DialogError(f"cut {cid} has no audio in {tar_path.name}", where)
                continue
            try:
                rec = json.loads(tar.extractfile(meta).read())  # type: ignore[union-attr]
            except (ValueError, AttributeError) as exc:
                yield DialogError(f"{tar_path.name} {meta.name}: not a recording manifest ({exc})", where)
                continue
            chans = tuple(int(c) for c in (rec.get("sources") or [{}])[0].get("channels") or [0])
            if compressed:  # no reading in place: the cut's encoded audio is held in memory
                blob = tar.extractfile(data).read()  # type: ignore[union-attr]
                audio = AudioFile(lambda blob=blob: io.BytesIO(blob), chans)  # type: ignore[misc]
            else:
                offset, size = data.offset_data, data.size
                audio = AudioFile(lambda o=offset, s=size: _member(tar_path, o, s), chans)  # type: ignore[misc]
            # the archive holds the cut's own audio: its time 0 is the cut's start
            cut = {**cut, "start": 0.0, "recording": {**rec, "id": (cut.get("recording") or rec).get("id")}}
            yield from _cut(cut, shard, n, (audio, data.name), options)


def _member(path: Path, offset: int, size: int) -> BinaryIO:
    return io.BufferedReader(TarMember(path, offset, size))
