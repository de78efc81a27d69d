"""Memory probes (docs/memory.md): typed, their question's WAV and transcript as listed, each
asked after its evidence, which names the conversation's turns with their times, distances that
match the timeline, numbered after the turns; their samples (probes.jsonl) one per probe, each an
`answer` of its probe."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...dataset.records import METADATA_FILE, PROBES_FILE, ProbeRecord
from .problems import Place, Problem
from .samples import check_sample_lines
from .transcripts import check_transcript
from .turns import DURATION_TOLERANCE_SEC

if TYPE_CHECKING:
    from .conversation import Conversation


def check_probes(conv: Conversation) -> list[Problem]:
    """Every probe of the metadata (`_probe`), then probes.jsonl where there is one."""
    probes = conv.meta.get("probes", [])
    if not isinstance(probes, list):
        return [conv.place(METADATA_FILE).error("'probes' is not a list", "probes")]
    problems = []
    ids: set[str] = set()
    for k, probe in enumerate(probes):
        at = conv.place(METADATA_FILE, f"probes[{k}]")
        typed = at.typed(probe, ProbeRecord)
        if typed:
            problems += typed
            continue
        if probe["probe_id"] in ids:
            problems.append(at.error(f"probe_id {probe['probe_id']!r} is listed twice", "probe_id"))
        ids.add(probe["probe_id"])
        problems += _probe(conv, k, probe, at)
    path = conv.folder / PROBES_FILE
    if path.exists():
        problems += _probe_samples(conv, probes)
    return problems


def _probe(conv: Conversation, k: int, probe: dict[str, Any], at: Place) -> list[Problem]:
    """One typed probe: numbered after the turns, its files as listed, its evidence."""
    n = len(conv.meta["turns"])
    problems = []
    if probe["turn_number"] != n + k:
        problems.append(
            at.error(f"turn_number {probe['turn_number']}, expected {n + k} (after the turns)", "turn_number")
        )
    wav = conv.wav(probe["audio_file"])
    problems += wav.problems
    if wav.seconds is not None and abs(wav.seconds - probe["duration_sec"]) > DURATION_TOLERANCE_SEC:
        problems.append(
            at.error(
                f"duration_sec {probe['duration_sec']} but the WAV lasts {wav.seconds:.4f} s", "duration_sec"
            )
        )
    name = probe["transcript_file"]
    text, found = check_transcript(conv.folder / name, conv.place(name))
    problems += found
    if text is not None and text != probe["question"]:
        problems.append(conv.place(name).error("is not the probe's question", "question"))
    if isinstance(probe.get("answer_audio_file"), str):
        problems += conv.wav(probe["answer_audio_file"]).problems
    return problems + _evidence(probe, conv.meta["turns"], conv.meta["total_duration_sec"], at)


def _evidence(probe: dict[str, Any], turns: list[Any], total: float, at: Place) -> list[Problem]:
    """A probe's evidence names turns with their times, ends before the probe is asked, and its
    distances are the timeline's."""
    tol = DURATION_TOLERANCE_SEC
    ends = []
    for e, ev in enumerate(probe["evidence"]):
        tid = ev.get("turn_id") if isinstance(ev, dict) else None
        if not isinstance(tid, int) or isinstance(tid, bool) or not 0 <= tid < len(turns):
            return [at.error(f"evidence[{e}] names no turn of the conversation", "evidence")]
        turn = turns[tid]
        if (
            abs(ev.get("start", -1) - turn["start_time"]) > tol
            or abs(ev.get("end", -1) - turn["end_time"]) > tol
        ):
            return [at.error(f"evidence[{e}]'s times are not turn {tid}'s", "evidence")]
        ends.append(turn["end_time"])
    if not ends:
        return [at.error("no evidence", "evidence")]
    problems = []
    time = probe["time"]
    if time < max(ends) - tol:
        problems.append(at.error(f"asked at {time} s, before its evidence ends ({max(ends)} s)", "time"))
    if time > total + tol:
        problems.append(at.error(f"asked at {time} s, after the conversation's end ({total} s)", "time"))
    dist = probe["distance_sec"]
    for key, end in (("latest", max(ends)), ("earliest", min(ends))):
        if not isinstance(dist.get(key), (int, float)) or abs(dist[key] - (time - end)) > 2 * tol:
            problems.append(
                at.error(
                    f"distance_sec.{key} {dist.get(key)} is not {time - end:.3f} (time - evidence end)",
                    f"distance_sec.{key}",
                )
            )
    return problems


def _probe_samples(conv: Conversation, probes: list[Any]) -> list[Problem]:
    """probes.jsonl: one sample per probe, numbered after the turns, each the `answer` of its probe."""
    path, at = conv.folder / PROBES_FILE, conv.place(PROBES_FILE)
    n = len(conv.meta["turns"])
    problems = check_sample_lines(path, at, 0, len(probes), n)
    try:
        samples = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    except (ValueError, UnicodeDecodeError):
        return problems
    for k, (sample, probe) in enumerate(zip(samples, probes)):
        if (
            not isinstance(sample, dict)
            or sample.get("target") != "answer"
            or sample.get("probe_id") != probe.get("probe_id")
        ):
            problems.append(
                Place(f"{at} line {k + 1}", at.conversation, at.file).error(
                    f"not the `answer` sample of probe {probe.get('probe_id')!r}", "target"
                )
            )
            break
    return problems
