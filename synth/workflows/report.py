"""`synth report DATASET OUT`: what a dataset holds, for a person to look at. One pass over the
conversations' metadata gathers the figures (`report.json`); plots (matplotlib, an extra) and a
self-contained `index.html` (images and the audio of the worst turns beside it, nothing fetched)
show them: hours, conversations, turns, speakers and voices; turn and conversation durations;
tokens per conversation against the curriculum stages; the gaps and overlaps between speakers
against the configured distribution; backchannels per opportunity; session sizes against their
targets; memory-probe distances; each per-turn score the dataset has (the ASR check's word error
rate, and the `quality` block's scores, synth.quality: a histogram each, and its worst turns to
listen to, worst in the score's own direction) and the conversations' quality summaries of the
manifest (their worst turns' scores); the voices used and how far apart they are; the provenance
(engine, model and its licence, options, seed, the scorers' versions)."""

from __future__ import annotations

import html
import json
import math
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.fingerprint import read_options
from ..dataset.reader import ConversationRef, open_dataset
from ..domain import Voice
from ..engines.base import speaker_distance
from ..engines.piper import derived_voice_distance
from ..errors import DatasetError, NotAvailable
from ..produce import backchannels
from ..quality import KEYS, higher_is_worse

STAGES = (8192, 16384, 32768, 65536)  # the curriculum's total_tokens stages
WORST = 10  # turns listed per score
# Licences of the models synth embeds or fetches by name (others: as the model's card says).
LICENCES = {
    "en_US-joe-medium.onnx": "its dataset CC0 (the voice's MODEL_CARD); fine-tuned from Piper's lessac voice, "
    "whose terms apply too",
    "kokoro": "Apache-2.0 (Kokoro-82M's weights)",
}


@dataclass
class Worst:
    """A turn to listen to: where it is and its score."""

    conversation_id: str
    turn_id: int
    score: float
    text: str
    audio_file: str  # inside the conversation's folder


@dataclass
class ReportData:
    """The figures of `report.json` (seconds, counts, lists for the histograms)."""

    dataset: str
    conversations: int = 0
    turns: int = 0
    hours: float = 0.0
    speech_hours: float = 0.0
    speakers: int = 0
    voices: dict[str, int] = field(default_factory=dict)  # voice id -> turns
    turn_sec: list[float] = field(default_factory=list)
    conversation_sec: list[float] = field(default_factory=list)
    total_tokens: list[int] = field(default_factory=list)
    stages: dict[str, int] = field(default_factory=dict)
    offsets_sec: list[float] = field(default_factory=list)
    gap_distribution: str | None = None
    backchannels: int = 0
    backchannel_opportunities: int = 0
    backchannel_rate: float | None = None
    sessions: list[dict[str, Any]] = field(default_factory=list)  # {target, reached, kind}
    probe_distances_min: list[float] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)  # name -> every turn's score
    worst: dict[str, list[Worst]] = field(default_factory=dict)
    # from the manifest's quality summaries: score -> {conversations, mean (of the conversations'
    # means), worst (the worst conversation's worst turn), higher_is_worse}
    conversation_quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    scorers: dict[str, list[str]] = field(default_factory=dict)  # scorer -> its versions found
    voice_distances: dict[str, dict[str, float]] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


def collect(root: Path | str, refs: list[ConversationRef] | None = None) -> ReportData:
    """Every figure of the report, from the dataset's metadata (one read per conversation);
    `refs`: the dataset already opened."""
    root = Path(root)
    refs = open_dataset(root) if refs is None else refs
    if not refs:
        raise DatasetError(f"{root}: no conversation in the manifest")
    data = ReportData(dataset=str(root.resolve()))
    speakers: set[tuple[str, str]] = set()
    voices: dict[str, Voice] = {}
    low: dict[str, list[Worst]] = {}
    summaries: dict[str, list[dict[str, float]]] = {}
    for ref in refs:
        for key, value in (ref.entry.quality or {}).items():
            if isinstance(value, dict):
                summaries.setdefault(key, []).append(value)
        meta = ref.metadata()
        cid = meta.conversation_id
        data.conversations += 1
        data.conversation_sec.append(meta.total_duration_sec)
        data.hours += meta.total_duration_sec / 3600
        if meta.total_tokens is not None:
            data.total_tokens.append(int(meta.total_tokens))
        for name, v in meta.voices.items():
            speakers.add((cid, name))
            if isinstance(v, dict) and "id" in v:
                voices.setdefault(v["id"], _voice(v))
        end, previous = 0.0, None
        for turn in meta.turns:
            data.turns += 1
            data.turn_sec.append(turn.duration_sec)
            data.speech_hours += turn.duration_sec / 3600
            if turn.voice:
                data.voices[turn.voice] = data.voices.get(turn.voice, 0) + 1
            if previous is not None and turn.speaker != previous:
                data.offsets_sec.append(round(turn.start_time - end, 4))
            end, previous = max(end, turn.end_time), turn.speaker
            data.backchannel_opportunities += backchannels.opportunities(turn.duration_sec)
            block = turn.extra.get("quality")
            if isinstance(block, dict) and isinstance(block.get("scorers"), dict):
                for scorer, version in block["scorers"].items():
                    if str(version) not in data.scorers.setdefault(scorer, []):
                        data.scorers[scorer].append(str(version))
            for name, score, worse in _turn_scores(turn.extra):
                data.scores.setdefault(name, []).append(score)
                entry = Worst(cid, turn.turn_id, score, str(turn.text or ""), turn.audio_file)
                low.setdefault(name, []).append(entry)
                low[name] = sorted(low[name], key=worse)[:WORST]
        data.backchannels += sum(e.kind == "backchannel" for e in meta.events)
        data.gap_distribution = data.gap_distribution or meta.extra.get("gap_distribution")
        session = meta.extra.get("session")
        if isinstance(session, dict) and "target" in session:
            target = session["target"]
            reached = session.get("reached", {})
            kind = target.get("kind")
            value = reached.get("tokens") if kind == "tokens" else reached.get("seconds")
            if value is not None:
                data.sessions.append({"kind": kind, "aim": target.get("aim"), "reached": value})
        data.probe_distances_min += [p.distance_sec["latest"] / 60 for p in meta.probes]
        if not data.provenance:
            data.provenance = _provenance(meta.extra, root)
    data.speakers = len(speakers)
    data.hours, data.speech_hours = round(data.hours, 4), round(data.speech_hours, 4)
    data.stages = _stages(data.total_tokens)
    if data.backchannel_opportunities:
        data.backchannel_rate = round(data.backchannels / data.backchannel_opportunities, 4)
    data.worst = low
    data.scores = {k: data.scores[k] for k in sorted(data.scores, key=_score_order)}
    data.conversation_quality = _conversation_quality(summaries)
    data.voice_distances = _distances(voices)
    return data


def _voice(record: dict[str, Any]) -> Voice:
    return Voice(
        id=record["id"],
        engine=str(record.get("engine", "")),
        model=str(record.get("model", "")),
        speaker=str(record.get("speaker", "")),
        params=dict(record.get("params") or {}),
        meta=dict(record.get("meta") or {}),
    )


def _turn_scores(extra: dict[str, Any]) -> list[tuple[str, float, Callable[[Worst], float]]]:
    """(name, score, sort key that puts the worst first) of each score a turn carries: the ASR
    check's word error rate (higher is worse), and each numeric score of its `quality` block
    (synth.quality: WER/CER, similarity to another voice, clipping, edge silence and takes higher
    is worse; the rest, MOS and similarity to its own voice, lower is worse)."""
    out: list[tuple[str, float, Callable[[Worst], float]]] = []
    check = extra.get("asr_check")
    if isinstance(check, dict) and isinstance(check.get("wer"), (int, float)):
        out.append(("asr_wer", float(check["wer"]), _higher_worse))
    quality = extra.get("quality")
    if isinstance(quality, dict):
        for name, score in quality.items():
            if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
                out.append((name, float(score), _higher_worse if higher_is_worse(name) else _lower_worse))
    return out


def _higher_worse(w: Worst) -> float:
    return -w.score


def _lower_worse(w: Worst) -> float:
    return w.score


def _score_order(name: str) -> tuple[int, str]:
    return (KEYS.index(name) if name in KEYS else len(KEYS), name)


def _conversation_quality(summaries: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """The manifest's per-conversation summaries across the dataset: per score, how many
    conversations have it, the mean of their means and the worst conversation's worst turn."""
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(summaries, key=_score_order):
        rows = [r for r in summaries[key] if isinstance(r.get("mean"), (int, float))]
        if not rows:
            continue
        worse = higher_is_worse(key)
        worst = max(r["max"] for r in rows) if worse else min(r["min"] for r in rows)
        out[key] = {
            "conversations": len(rows),
            "mean": round(sum(r["mean"] for r in rows) / len(rows), 4),
            "worst": worst,
            "higher_is_worse": worse,
        }
    return out


def _stages(tokens: list[int]) -> dict[str, int]:
    """Conversations per curriculum stage band (previous stage, stage], and over the last."""
    out: dict[str, int] = {}
    lower = 0
    for stage in STAGES:
        out[f"{lower // 1024}k-{stage // 1024}k"] = sum(lower < t <= stage for t in tokens)
        lower = stage
    out[f">{lower // 1024}k"] = sum(t > lower for t in tokens)
    return out


def _distances(voices: dict[str, Voice]) -> dict[str, dict[str, float]]:
    """How far apart the voices used are, by the measure casting used for their engine."""
    measure = (
        derived_voice_distance if all(v.engine == "piper" for v in voices.values()) else speaker_distance
    )
    ids = sorted(voices)[:40]  # a readable matrix
    return {a: {b: round(measure(voices[a], voices[b]), 3) for b in ids} for a in ids}


def _provenance(extra: dict[str, Any], root: Path) -> dict[str, Any]:
    engine = extra.get("engine") or {}
    model = str(engine.get("model", ""))
    licence = next((v for k, v in LICENCES.items() if k in model.lower() or k == model), None)
    return {
        "engine": engine.get("engine"),
        "model": model,
        "model_licence": licence or "see the model's own card",
        "seed": extra.get("seed"),
        "synth_version": extra.get("synth_version"),
        "options": read_options(root) or {},
    }


# -- the page ----------------------------------------------------------------------------------
def write_report(root: Path | str, out: Path | str) -> ReportData:
    """Collect the figures and write OUT/report.json, OUT/*.png and OUT/index.html (with the
    worst turns' audio copied into OUT/audio/), self-contained."""
    refs = open_dataset(root)
    data = collect(root, refs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(asdict(data), indent=1) + "\n", encoding="utf-8")
    figures = _plots(data, out)
    audio = _copy_worst(data, refs, out)
    (out / "index.html").write_text(_page(data, figures, audio), encoding="utf-8")
    return data


def _plots(data: ReportData, out: Path) -> list[tuple[str, str]]:
    """(file, caption) of each figure drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NotAvailable(
            "report", "the report's plots need matplotlib: pip install 'synth[report]'"
        ) from None
    figures: list[tuple[str, str]] = []

    def save(name: str, caption: str, draw: Callable[[Any], None]) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        draw(ax)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        figures.append((name, caption))

    def hist(values: list[float], xlabel: str) -> Callable[[Any], None]:
        def draw(ax: Any) -> None:
            ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#4477aa")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("count")

        return draw

    save("turn_durations.png", "Turn durations", hist(data.turn_sec, "seconds"))
    save(
        "conversation_durations.png",
        "Conversation durations",
        hist([s / 60 for s in data.conversation_sec], "minutes"),
    )
    if data.total_tokens:

        def tokens(ax: Any) -> None:
            ax.hist(data.total_tokens, bins=30, color="#228833")
            top = max(data.total_tokens) * 1.05
            shown = [s for s in STAGES if s <= top] or [STAGES[0]]
            for stage in shown:  # the stages up to the largest conversation, and the first above it
                ax.axvline(stage, color="#aa3377", linestyle="--", linewidth=1)
            ax.set_xlim(0, max(top, shown[-1] * 1.05))
            ax.set_xlabel("total_tokens per conversation (dashed: curriculum stages)")
            ax.set_ylabel("conversations")

        save("tokens.png", "Tokens per conversation against the curriculum stages", tokens)
    if data.offsets_sec:
        save(
            "offsets.png",
            f"Offsets between speakers (negative: overlap); configured: {data.gap_distribution}",
            hist(data.offsets_sec, "seconds from the end of one speaker's turn to the next speaker's start"),
        )
    if data.sessions:

        def sessions(ax: Any) -> None:
            aims = [s["aim"] for s in data.sessions]
            reached = [s["reached"] for s in data.sessions]
            ax.scatter(aims, reached, color="#ee6677")
            top = max(aims + reached)
            ax.plot([0, top], [0, top], color="grey", linewidth=1)
            ax.set_xlabel(f"target ({data.sessions[0]['kind']})")
            ax.set_ylabel("reached")

        save("sessions.png", "Session sizes against their targets", sessions)
    if data.probe_distances_min:
        save(
            "probes.png",
            "Memory probes: distance from the latest evidence to the question",
            hist(data.probe_distances_min, "minutes"),
        )
    for name, values in data.scores.items():
        direction = "higher is worse" if name == "asr_wer" or higher_is_worse(name) else "lower is worse"
        save(f"score_{name}.png", f"Per-turn score: {name} ({direction})", hist(values, name))
    if len(data.voice_distances) > 1:

        def matrix(ax: Any) -> None:
            ids = list(data.voice_distances)
            grid = [[data.voice_distances[a][b] for b in ids] for a in ids]
            image = ax.imshow(grid, cmap="viridis")
            ax.set_xticks(range(len(ids)), ids, rotation=90, fontsize=6)
            ax.set_yticks(range(len(ids)), ids, fontsize=6)
            ax.figure.colorbar(image, ax=ax, label="distance")

        save("voices.png", "Distances between the voices used (as casting measures them)", matrix)
    return figures


def _copy_worst(data: ReportData, opened: list[ConversationRef], out: Path) -> dict[tuple[str, int], str]:
    """The worst turns' WAVs copied beside the page (so it plays with the dataset elsewhere)."""
    folder = out / "audio"
    copied: dict[tuple[str, int], str] = {}
    refs = {r.conversation_id: r for r in opened}
    for entries in data.worst.values():
        for w in entries:
            key = (w.conversation_id, w.turn_id)
            if key in copied or w.conversation_id not in refs:
                continue
            folder.mkdir(exist_ok=True)
            name = f"{w.conversation_id}_turn_{w.turn_id}.wav"
            shutil.copyfile(refs[w.conversation_id].file(w.audio_file, "audio_file"), folder / name)
            copied[key] = f"audio/{name}"
    return copied


def _page(data: ReportData, figures: list[tuple[str, str]], audio: dict[tuple[str, int], str]) -> str:
    e = html.escape
    rows = [
        ("Conversations", f"{data.conversations:,}"),
        ("Turns", f"{data.turns:,}"),
        ("Hours (conversation / speech)", f"{data.hours:.3f} / {data.speech_hours:.3f}"),
        ("Speakers", f"{data.speakers:,}"),
        ("Voices used", f"{len(data.voices):,}"),
        (
            "Backchannels per opportunity",
            "-" if data.backchannel_rate is None else f"{data.backchannel_rate:.3f}",
        ),
        ("Memory probes", f"{len(data.probe_distances_min):,}"),
    ]
    rows += [(f"Conversations {k} tokens", f"{v:,}") for k, v in data.stages.items() if data.total_tokens]
    prov = data.provenance
    rows += [
        ("Engine / model", f"{prov.get('engine')} / {prov.get('model')}"),
        ("Model licence", str(prov.get("model_licence"))),
        ("Seed / synth", f"{prov.get('seed')} / {prov.get('synth_version')}"),
    ]
    table = "\n".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows)
    images = "\n".join(
        f'<figure><img src="{e(name)}" alt="{e(caption)}"><figcaption>{e(caption)}</figcaption></figure>'
        for name, caption in figures
    )
    worst = []
    for name, entries in sorted(data.worst.items(), key=lambda item: _score_order(item[0])):
        items = "\n".join(
            f"<tr><td>{e(w.conversation_id)}</td><td>{w.turn_id}</td><td>{w.score:.3f}</td><td>{e(w.text[:120])}</td>"
            f'<td><audio controls preload="none" src="{e(audio[(w.conversation_id, w.turn_id)])}"></audio></td></tr>'
            for w in entries
            if (w.conversation_id, w.turn_id) in audio
        )
        worst.append(
            f"<h3>Worst turns by {e(name)}</h3><table><tr><th>conversation</th><th>turn</th>"
            f"<th>score</th><th>text</th><th>listen</th></tr>{items}</table>"
        )
    quality_rows = "\n".join(
        f"<tr><td>{e(k)}</td><td>{q['conversations']:,}</td><td>{q['mean']:.4g}</td><td>{q['worst']:.4g}</td>"
        f"<td>{'higher' if q['higher_is_worse'] else 'lower'}</td></tr>"
        for k, q in data.conversation_quality.items()
    )
    quality = (
        "<h2>Quality by conversation</h2><p>From the manifest's summaries; scorers: "
        + e(", ".join(f"{k} {'/'.join(v)}" for k, v in data.scorers.items()))
        + "</p><table><tr><th>score</th><th>conversations</th><th>mean</th><th>worst conversation's "
        f"worst turn</th><th>worse when</th></tr>{quality_rows}</table>"
        if data.conversation_quality
        else ""
    )
    options = e(json.dumps(prov.get("options", {}), indent=1, sort_keys=True))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>synth dataset report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }} img {{ max-width: 520px; }} pre {{ background: #f4f4f4; padding: 1em; overflow: auto; }}
</style></head>
<body data-images="{len(figures)}">
<h1>Dataset report</h1><p>{e(data.dataset)}</p>
<table>{table}</table>
<h2>Figures</h2>
{images}
{quality}
<h2>Turns to listen to</h2>
{"".join(worst) or "<p>No per-turn scores in this dataset (synth score adds them; synth generate --asr-check adds word error rates).</p>"}
<h2>Options</h2><pre>{options}</pre>
<script>
window.addEventListener("load", function () {{
  var ok = Array.prototype.filter.call(document.images, function (i) {{ return i.complete && i.naturalWidth > 0; }});
  document.body.setAttribute("data-images-loaded", ok.length + "/" + document.images.length);
}});
</script>
</body></html>
"""


def report_summary(data: ReportData, out: Path) -> str:
    """What `synth report` prints."""
    counts = Counter({k: len(v) for k, v in data.worst.items()})
    scored = ", ".join(f"{k} ({n} worst)" for k, n in sorted(counts.items())) or "no per-turn scores"
    return (
        f"report of {data.conversations} conversation(s), {data.turns} turns, {data.hours:.3f} h: "
        f"{out / 'index.html'} ({scored})"
    )
