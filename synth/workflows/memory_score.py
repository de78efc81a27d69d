"""`synth memory-score`: a model's answers to a dataset's memory probes (docs/memory.md), scored
the way LoCoMo's own evaluation scores them (snap-research/LoCoMo `task_eval/evaluation.py`), so
numbers stay comparable with the published ones, and reported by category and by how far back the
evidence lies (the distance bands the TTT trainers read their loss at).

The scoring functions are pure; `score_dataset` reads the probes and the answers file, and
`summarize` turns per-probe scores into the report."""

from __future__ import annotations

import bisect
import json
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..dataset.reader import open_dataset
from ..dataset.records import ProbeRecord
from ..errors import ConfigError, DatasetError, NotAvailable, RecordError

# --- LoCoMo's answer normalization and token F1 (evaluation.py: normalize_answer, f1_score, f1) ---

_ARTICLES = re.compile(r"\b(a|an|the|and)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """LoCoMo's normalize_answer: commas removed, lowercased, ASCII punctuation removed, the words
    a/an/the/and removed, whitespace collapsed."""
    text = text.replace(",", "").lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer  # imported on first use: nltk takes a second to load

    return PorterStemmer()  # NLTK_EXTENSIONS mode, as LoCoMo's `PorterStemmer()`


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return str(_stemmer().stem(word))


def answer_tokens(text: str) -> list[str]:
    """The normalized answer's words, Porter-stemmed (so "counseling" matches "counsel")."""
    return [_stem(w) for w in normalize_answer(text).split()]


def token_f1(prediction: str, gold: str) -> float:
    """LoCoMo's f1_score: the harmonic mean of token precision and recall over the multiset of
    stemmed tokens; 0 when no token is shared (so also when either side is empty)."""
    pred, ref = answer_tokens(prediction), answer_tokens(gold)
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_parts(prediction: str, gold: str) -> float:
    """LoCoMo's f1 (multi-hop, category 1): prediction and gold split at commas; for each gold
    part the best F1 of any prediction part, averaged over the gold parts (a list answer earns
    credit for each item it names)."""
    predictions = [p.strip() for p in prediction.split(",")]
    golds = [g.strip() for g in gold.split(",")]
    return sum(max(token_f1(p, g) for p in predictions) for g in golds) / len(golds)


def f1_first(prediction: str, gold: str) -> float:
    """LoCoMo's rule for open-domain questions (category 3): only the gold answer's part before
    the first ';' counts (what follows is the annotators' explanation), then plain token F1."""
    return token_f1(prediction, gold.split(";")[0].strip())


def not_mentioned(prediction: str, gold: str) -> float:
    """LoCoMo's rule for adversarial questions (category 5), whose premise the conversation does
    not support: 1 when the answer says so ("no information available" or "not mentioned",
    case-insensitive), else 0. The gold answer plays no part."""
    said = prediction.lower()
    return 1.0 if "no information available" in said or "not mentioned" in said else 0.0


SCORING: dict[str, Callable[[str, str], float]] = {
    "f1": token_f1,  # single-hop, temporal (LoCoMo 2, 4) and any other question: plain token F1
    "f1-parts": f1_parts,  # multi-hop (LoCoMo 1): per comma-separated part of the gold answer
    "f1-first": f1_first,  # open-domain (LoCoMo 3): the gold answer up to its first ';'
    "not-mentioned": not_mentioned,  # adversarial (LoCoMo 5): right when it says it was not said
}
"""How a probe's answer is scored, by the probe's `scoring` (a function (prediction, gold) -> [0, 1])."""


def rule_of(probe: ProbeRecord) -> str:
    """The probe's scoring rule: its `scoring`, else "not-mentioned" for an adversarial probe (its
    gold answer only says the conversation does not tell) and "f1" for any other."""
    return probe.scoring or ("not-mentioned" if probe.adversarial else "f1")


def score_answer(rule: str, prediction: str, gold: str) -> float:
    """An answer's score in [0, 1] by the probe's scoring rule (SCORING)."""
    return float(SCORING[rule](prediction, gold))


# --- distance bands ---

DEFAULT_BANDS_MIN = (4.0, 10.7, 21.0, 32.0)
"""Band edges in minutes: the TTT trainers read their loss at 10.7, 21 and 32 minutes."""


def parse_bands(text: str) -> tuple[float, ...]:
    """'4,10.7,21,32' -> the band edges in minutes: positive, strictly increasing."""
    edges: list[float] = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            value = float("nan")
        if not value > 0 or value == float("inf"):
            raise ConfigError("bands", f"{part.strip()!r} is not a positive number of minutes", text)
        if edges and value <= edges[-1]:
            raise ConfigError("bands", f"must be strictly increasing: {value:g} comes after {edges[-1]:g}")
        edges.append(value)
    return tuple(edges)


def band_labels(edges: Iterable[float]) -> list[str]:
    """The bands' names in order: '<4', '4-10.7', ..., '>=32' (minutes)."""
    e = list(edges)
    return [f"<{e[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(e, e[1:])] + [f">={e[-1]:g}"]


def band_of(distance_sec: float | None, edges: tuple[float, ...]) -> int | None:
    """The index of the band a distance falls in; a band holds its lower edge (exactly 4 minutes
    is in '4-10.7'). None for a probe that has no such distance."""
    if distance_sec is None:
        return None
    return bisect.bisect_right(edges, distance_sec / 60)


# --- the answers file ---


@dataclass(frozen=True)
class Answer:
    """An answer from the answers file, with its line for the errors that name it."""

    line: int
    text: str | None  # None: the line answers null (counted as unanswered)


def read_answers(path: Path | str) -> dict[str, Answer]:
    """ANSWERS.jsonl: one `{"probe_id", "answer"}` (or "prediction") per line. A number is taken
    as its text (LoCoMo stringifies integer answers); every other problem is an error naming the
    line, and a probe answered twice names both lines."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordError(f"{path}: missing") from None
    except IsADirectoryError:
        raise RecordError(f"{path}: a folder, not an answers file") from None
    answers: dict[str, Answer] = {}
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise RecordError(f"{where}: not valid JSON") from None
        if not isinstance(obj, dict):
            raise RecordError(f"{where}: not a JSON object")
        probe_id = obj.get("probe_id")
        if not isinstance(probe_id, str) or not probe_id:
            raise RecordError(f"{where}: no 'probe_id' (a non-empty string)")
        key = "answer" if "answer" in obj else "prediction" if "prediction" in obj else None
        if key is None:
            raise RecordError(f"{where}: no 'answer' (or 'prediction') for probe {probe_id!r}")
        value = obj[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"{where}: {key!r} is a {type(value).__name__}, not a string")
        if probe_id in answers:
            raise RecordError(
                f"{path} lines {answers[probe_id].line} and {n}: probe {probe_id!r} is answered twice"
            )
        answers[probe_id] = Answer(n, value)
    return answers


# --- the report ---


@dataclass(frozen=True)
class ProbeScore:
    """One probe's score, with its question, the answer given and how far back its evidence lies."""

    conversation_id: str
    probe_id: str
    question: str
    gold: str
    prediction: str | None  # None: not answered (scored 0)
    category: str | None
    adversarial: bool
    scoring: str
    score: float
    distance_latest_sec: float | None
    distance_earliest_sec: float | None

    @property
    def answered(self) -> bool:
        return self.prediction is not None


@dataclass(frozen=True)
class Group:
    """Probes taken together: how many, how many answered, their mean score (None when none)."""

    name: str
    probes: int
    answered: int
    mean: float | None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": None if self.mean is None else round(self.mean, 4)}


@dataclass(frozen=True)
class MemoryReport:
    """The scores of a dataset's memory probes: overall, by category and by distance band, as a
    table (`format`) or JSON (`to_dict`)."""

    conversations: int
    bands_min: tuple[float, ...]
    overall: Group
    by_category: list[Group]
    by_latest: list[Group]  # the distance bands of the latest evidence turn (then 'unknown', if any)
    by_earliest: list[Group]
    probes: list[ProbeScore]

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversations": self.conversations,
            "bands_min": list(self.bands_min),
            "overall": self.overall.to_dict(),
            "by_category": [g.to_dict() for g in self.by_category],
            "by_distance_latest": self._bands(self.by_latest),
            "by_distance_earliest": self._bands(self.by_earliest),
            "probes": [
                {**asdict(p), "answered": p.answered, "score": round(p.score, 4)} for p in self.probes
            ],
        }

    def _bands(self, groups: list[Group]) -> list[dict[str, Any]]:
        """Each band with its edges in minutes (None: open; both None for 'unknown')."""
        lows: list[float | None] = [None, *self.bands_min]
        highs: list[float | None] = [*self.bands_min, None]
        out = []
        for i, g in enumerate(groups):
            known = i < len(lows)
            edges = {"low_min": lows[i] if known else None, "high_min": highs[i] if known else None}
            out.append({"band": g.name, **edges, **{k: v for k, v in g.to_dict().items() if k != "name"}})
        return out

    def format(self) -> str:
        """The aligned table: all probes, each category, each band of the latest evidence."""
        o = self.overall
        rows = [("all", o)] + [(f"category {g.name}", g) for g in self.by_category]
        rows += [
            (f"latest evidence {g.name}" + (" min" if g.name != "unknown" else ""), g) for g in self.by_latest
        ]
        width = max(len(name) for name, _ in rows)
        lines = [
            f"{o.probes} probes in {self.conversations} conversations, {o.answered} answered "
            f"({o.probes - o.answered} unanswered, scored 0)",
            f"{'':<{width}}  {'probes':>7}  {'answered':>8}  {'mean':>6}",
        ]
        for name, g in rows:
            mean = "-" if g.mean is None else f"{g.mean:.4f}"
            lines.append(f"{name:<{width}}  {g.probes:>7}  {g.answered:>8}  {mean:>6}")
        return "\n".join(lines)


def _group(name: str, scores: list[ProbeScore]) -> Group:
    mean = sum(s.score for s in scores) / len(scores) if scores else None
    return Group(name, len(scores), sum(s.answered for s in scores), mean)


def _category_key(name: str | None) -> tuple[int, float, str]:
    if name is None:
        return (2, 0.0, "")
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _band_groups(
    scores: list[ProbeScore], edges: tuple[float, ...], distance: Callable[[ProbeScore], float | None]
) -> list[Group]:
    members: list[list[ProbeScore]] = [[] for _ in range(len(edges) + 1)]
    unknown: list[ProbeScore] = []
    for s in scores:
        index = band_of(distance(s), edges)
        (unknown if index is None else members[index]).append(s)
    groups = [_group(name, m) for name, m in zip(band_labels(edges), members)]
    return groups + ([_group("unknown", unknown)] if unknown else [])


def summarize(scores: list[ProbeScore], edges: tuple[float, ...], conversations: int) -> MemoryReport:
    """Per-probe scores -> the report: overall, by category, by distance band."""
    categories = sorted({s.category for s in scores}, key=_category_key)
    return MemoryReport(
        conversations=conversations,
        bands_min=edges,
        overall=_group("all", scores),
        by_category=[_group(c or "none", [s for s in scores if s.category == c]) for c in categories],
        by_latest=_band_groups(scores, edges, lambda s: s.distance_latest_sec),
        by_earliest=_band_groups(scores, edges, lambda s: s.distance_earliest_sec),
        probes=scores,
    )


def _distance(distances: Mapping[str, Any], key: str) -> float | None:
    value = distances.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_dataset(
    root: Path | str, answers_path: Path | str, edges: tuple[float, ...] = DEFAULT_BANDS_MIN
) -> MemoryReport:
    """Score the answers file against every probe of the dataset (in manifest order). An answer
    to a probe the dataset does not have is an error naming its line; a probe with no answer
    scores 0 and is counted as unanswered."""
    refs = open_dataset(root)
    answers = read_answers(answers_path)
    scores: list[ProbeScore] = []
    seen: dict[str, str] = {}
    for ref in refs:
        meta = ref.metadata()
        for probe in meta.probes:
            where = f"{ref.metadata_path}: probe {probe.probe_id!r}"
            if probe.probe_id in seen:
                raise DatasetError(f"{where}: the same probe id as in conversation {seen[probe.probe_id]}")
            seen[probe.probe_id] = meta.conversation_id
            rule = rule_of(probe)
            if rule not in SCORING:
                raise DatasetError(f"{where}: scoring {rule!r} is not one of {', '.join(SCORING)}")
            answer = answers.get(probe.probe_id)
            prediction = answer.text if answer else None
            scores.append(
                ProbeScore(
                    conversation_id=meta.conversation_id,
                    probe_id=probe.probe_id,
                    question=probe.question,
                    gold=probe.answer,
                    prediction=prediction,
                    category=None if probe.category is None else str(probe.category),
                    adversarial=probe.adversarial,
                    scoring=rule,
                    score=0.0 if prediction is None else score_answer(rule, prediction, probe.answer),
                    distance_latest_sec=_distance(probe.distance_sec, "latest"),
                    distance_earliest_sec=_distance(probe.distance_sec, "earliest"),
                )
            )
    for probe_id, answer in answers.items():
        if probe_id not in seen:
            raise RecordError(f"{answers_path} line {answer.line}: probe {probe_id!r} is not in {root}")
    if not scores:
        raise DatasetError(f"{root}: no memory probes in its conversations (docs/memory.md)")
    return summarize(scores, edges, len(refs))


# --- the plot ---


def require_matplotlib() -> None:
    """Fail before any work when --plot cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NotAvailable(
            "plot", "needs matplotlib, which is not installed (pip install 'synth[report]')"
        ) from None


def plot_report(report: MemoryReport, path: Path | str) -> None:
    """A PNG of the mean score in each distance band, for the latest and the earliest evidence,
    each bar labelled with its number of probes (a band with none is left empty)."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = band_labels(report.bands_min)
    fig, ax = plt.subplots(figsize=(7, 4))
    try:
        width = 0.4
        for offset, (name, groups) in zip(
            (-width / 2, width / 2),
            (("latest evidence", report.by_latest), ("earliest evidence", report.by_earliest)),
        ):
            bands = groups[: len(labels)]
            xs = [i + offset for i in range(len(labels))]
            bars = ax.bar(xs, [g.mean or 0.0 for g in bands], width, label=name)
            for bar, g in zip(bars, bands):
                if g.probes:
                    ax.annotate(f"n={g.probes}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                                ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel("distance from the evidence to the question (minutes)")
        ax.set_ylabel("mean score (LoCoMo F1)")
        ax.set_ylim(0, 1.15)  # room for the labels above a full bar
        ax.set_title(f"memory probes: {report.overall.probes}, mean {report.overall.mean or 0:.3f}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(str(path), format="png")
    finally:
        plt.close(fig)
