"""The dataset card an export writes beside its data (README.md), so a dataset pushed to the
Hugging Face Hub says what it is: YAML front matter as the Hub reads it (licence from the engine's
model, language, task and size categories, the export's files and features) and the dataset's key
figures, taken from `synth report`'s one pass over the metadata (synth.workflows.report.collect):
hours, conversations, turns, speakers, voices, the per-turn quality scores and the memory probes
where the dataset has them, and the provenance.

The licence is the model's: Kokoro-82M's weights are Apache-2.0; a Piper voice's MODEL_CARD
(beside the model, as in the embedded voice's package) states its dataset's licence; a model
whose licence synth cannot read is `unknown`, and the card says to see the model's own card. The
dialogs' text has its own licence (the source is named in the card)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset.reader import ConversationRef
from ..domain import Voice
from ..quality import higher_is_worse
from ..workflows.report import LICENCES, ReportData, collect

log = logging.getLogger(__name__)

CARD = "README.md"
# The Hub's size categories (datasets/utils/resources/size_categories.json), by number of rows.
SIZES = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
)
TASKS = ["text-to-speech", "automatic-speech-recognition", "audio-text-to-text"]
# A licence line of a model card -> the Hub's licence identifier (letters and digits only compared).
_HUB_LICENCES = {
    "cc0": "cc0-1.0",
    "cc010": "cc0-1.0",
    "ccby40": "cc-by-4.0",
    "ccbysa40": "cc-by-sa-4.0",
    "ccbync40": "cc-by-nc-4.0",
    "ccbyncsa40": "cc-by-nc-sa-4.0",
    "ccbyncnd40": "cc-by-nc-nd-4.0",
    "ccbynd40": "cc-by-nd-4.0",
    "ccby30": "cc-by-3.0",
    "ccbysa30": "cc-by-sa-3.0",
    "mit": "mit",
    "apache20": "apache-2.0",
    "gplv3": "gpl-3.0",
    "gpl30": "gpl-3.0",
}


def size_category(rows: int) -> str:
    """The Hub's size category of a dataset of `rows` rows."""
    for bound, name in SIZES:
        if rows < bound:
            return name
    return "n>1T"


def hub_licence(statement: str) -> str | None:
    """'CC0', 'CC BY-SA 4.0', 'Creative Commons Attribution 4.0', 'Apache 2.0' ... -> the Hub's
    identifier; None when unknown."""
    text = statement.lower()
    for long, short in (
        ("creative commons", "cc"),
        ("attribution", "by"),
        ("sharealike", "sa"),
        ("share-alike", "sa"),
        ("noncommercial", "nc"),
        ("non-commercial", "nc"),
        ("license", ""),
        ("licence", ""),
        ("international", ""),
    ):
        text = text.replace(long, short)
    return _HUB_LICENCES.get(re.sub(r"[^a-z0-9]", "", text))


@dataclass(frozen=True)
class ModelLicence:
    """One model's licence: the Hub's identifier and what the card says of it."""

    model: str
    hub: str  # a Hub identifier, or "unknown"
    statement: str


def model_licence(engine: dict[str, Any]) -> ModelLicence:
    """The licence of one engine's model (its provenance record, metadata `engine`)."""
    name = str(engine.get("engine", ""))
    model = str(engine.get("model", ""))
    if name == "kokoro" or "kokoro" in model.lower():
        return ModelLicence(model, "apache-2.0", LICENCES["kokoro"])
    path = engine.get("model_path")
    card = Path(str(path)).parent / "MODEL_CARD" if path else None
    if card is not None and card.is_file():
        m = re.search(r"^\s*\*?\s*License:\s*(.+?)\s*$", card.read_text(errors="replace"), re.M | re.I)
        if m:
            hub = hub_licence(m.group(1))
            known = next((v for k, v in LICENCES.items() if k == model), None)
            statement = known or f"{m.group(1)} (the model's MODEL_CARD)"
            return ModelLicence(model, hub or "unknown", statement)
    known = next((v for k, v in LICENCES.items() if k == model), None)
    if known and model == "en_US-joe-medium.onnx":
        return ModelLicence(model, "cc0-1.0", known)
    return ModelLicence(model, "unknown", "see the model's own card")


def engine_records(engine: dict[str, Any]) -> list[dict[str, Any]]:
    """The engines of a provenance record (several for a catalog of models)."""
    inner = engine.get("engines")
    if isinstance(inner, list) and inner:
        return [e for e in inner if isinstance(e, dict)]
    return [engine] if engine else []


@dataclass
class CardSpec:
    """What an export tells its card: what it is, how many rows and of what, its files (the
    Hub's `configs`: one per config, `data_files` with globs relative to the card), its features
    (the Hub's `dataset_info.features`, `Features._to_yaml_list()`), and how to load it."""

    export: str
    rows: int
    unit: str
    loading: str  # a Markdown paragraph (with a code block)
    configs: list[dict[str, Any]] | None = None
    features: list[dict[str, Any]] | None = None
    columns: list[tuple[str, str]] = field(default_factory=list)  # (name, what) for the body
    sources: set[str] = field(default_factory=set)  # the dialog sources, found while writing


def card_text(root: Path, refs: Sequence[ConversationRef], spec: CardSpec) -> str:
    """The whole README.md: front matter and body."""
    data = collect(root, list(refs)) if refs else None
    front, licences = _front_matter(refs, spec, data)
    body = _body(spec, data, licences)
    import yaml  # PyYAML: with `datasets` and `lhotse`, which the exports that write a card need

    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + body


def write_card(folder: Path, root: Path, refs: Sequence[ConversationRef], spec: CardSpec) -> Path:
    """folder/README.md (inside an export's staging tree: it is switched into place with it)."""
    path = folder / CARD
    path.write_text(card_text(root, refs, spec), encoding="utf-8")
    return path


def _front_matter(
    refs: Sequence[ConversationRef], spec: CardSpec, data: ReportData | None
) -> tuple[dict[str, Any], list[ModelLicence]]:
    engines: dict[str, dict[str, Any]] = {}
    languages: set[str] = set()
    for ref in refs:
        meta = ref.metadata()
        if meta.source.get("dataset"):
            spec.sources.add(str(meta.source["dataset"]))
        for record in engine_records(meta.extra.get("engine") or {}):
            engines.setdefault(str(record.get("model", "")), record)
        for v in meta.voices.values():
            if isinstance(v, dict):
                voice = Voice(
                    id=str(v.get("id", "")),
                    engine=str(v.get("engine", "")),
                    model=str(v.get("model", "")),
                    speaker=str(v.get("speaker", "")),
                    meta=dict(v.get("meta") or {}),
                )
                if voice.language:
                    languages.add(voice.language)
    licences = [model_licence(e) for e in engines.values()]
    hubs = sorted({lic.hub for lic in licences}) or ["unknown"]
    front: dict[str, Any] = {
        "license": hubs[0] if len(hubs) == 1 else hubs,
    }
    if languages:
        front["language"] = sorted(languages)
        front["multilinguality"] = "monolingual" if len(languages) == 1 else "multilingual"
    front["task_categories"] = list(TASKS)
    front["size_categories"] = [size_category(spec.rows)]
    front["source_datasets"] = ["original"]
    front["annotations_creators"] = ["machine-generated"]
    front["tags"] = ["synthetic", "speech", "spoken-dialogue", "conversational", "synth"]
    front["pretty_name"] = f"synth spoken conversations ({spec.export})"
    if spec.configs:
        front["configs"] = spec.configs
    if spec.features:
        front["dataset_info"] = {
            "features": spec.features,
            "splits": [{"name": "train", "num_examples": spec.rows}],
        }
    return front, licences


def _fmt(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _body(spec: CardSpec, data: ReportData | None, licences: list[ModelLicence]) -> str:
    lines = [
        f"# synth spoken conversations ({spec.export})",
        "",
        "Synthetic spoken conversations made by synth from text dialogs: each "
        "turn spoken by a text-to-speech voice and placed on a conversation timeline. This folder is "
        f"synth's `{spec.export}` export: {spec.rows:,} {spec.unit}(s).",
        "",
        "## Key figures",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    if data is not None:
        prov = data.provenance
        rows = [
            ("conversations", f"{data.conversations:,}"),
            ("turns", f"{data.turns:,}"),
            ("hours (conversation / speech)", f"{data.hours:.3f} / {data.speech_hours:.3f}"),
            ("speakers", f"{data.speakers:,}"),
            ("voices used", f"{len(data.voices):,}"),
            (f"{spec.unit}s in this export", f"{spec.rows:,}"),
            ("engine / model", f"{prov.get('engine')} / {prov.get('model')}"),
            ("seed / synth version", f"{prov.get('seed')} / {prov.get('synth_version')}"),
        ]
        if data.backchannel_rate is not None and data.backchannels:
            rows.append(("backchannels per opportunity", f"{data.backchannel_rate:.3f}"))
        lines += [f"| {k} | {v} |" for k, v in rows]
    else:
        lines.append(f"| {spec.unit}s in this export | {spec.rows:,} |")
    lines += ["", "## Licence", ""]
    for lic in licences or [ModelLicence("", "unknown", "see the model's own card")]:
        lines.append(f"- `{lic.model}`: {lic.statement} (`license: {lic.hub}`)")
    named = f" ({', '.join(sorted(spec.sources))})" if spec.sources else ""
    lines.append(f"- The dialogs' text keeps the licence of its source{named}; check it before publishing.")
    if data is not None and data.scores:
        lines += [
            "",
            "## Quality scores per turn",
            "",
            "Computed by synth's scorers (metadata `quality`; docs/quality.md); the worst turns are "
            "the highest where the score is an error, else the lowest.",
            "",
            "| score | turns | mean | min | max |",
            "|---|---|---|---|---|",
        ]
        for name, values in sorted(data.scores.items()):
            finite = [v for v in values if math.isfinite(v)]
            if not finite:
                continue
            worse = " (higher is worse)" if higher_is_worse(name) or name == "asr_wer" else ""
            lines.append(
                f"| {name}{worse} | {len(finite)} | {_fmt(sum(finite) / len(finite))} | "
                f"{_fmt(min(finite))} | {_fmt(max(finite))} |"
            )
    if data is not None and data.probe_distances_min:
        d = sorted(data.probe_distances_min)
        lines += [
            "",
            "## Memory probes",
            "",
            f"{len(d)} memory probe(s) (questions about earlier sessions); minutes from the latest "
            f"evidence to the question: min {d[0]:.1f}, median {d[len(d) // 2]:.1f}, max {d[-1]:.1f}.",
        ]
    if spec.columns:
        lines += ["", "## Fields", "", "| field | what |", "|---|---|"]
        lines += [f"| `{name}` | {what} |" for name, what in spec.columns]
    lines += ["", "## Loading", "", spec.loading.strip(), ""]
    return "\n".join(lines)
