"""`synth memory-score` scores answers to memory probes as LoCoMo's own evaluation does
(task_eval/evaluation.py: normalize_answer, f1_score, f1 and the per-category rules of
eval_question_answering); the expected values below are worked out by hand in the comments. The
end-to-end tests write a dataset with probes the way synth lays one out (metadata.json, turn files,
manifest.jsonl) and run the installed command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from synth.dataset.records import (
    MANIFEST,
    METADATA_FILE,
    ConversationMetadata,
    ManifestEntry,
    ProbeRecord,
    TurnRecord,
    probe_files,
    turn_files,
)
from synth.errors import ConfigError, DatasetError, RecordError
from synth.workflows.memory_score import (
    DEFAULT_BANDS_MIN,
    SCORING,
    ProbeScore,
    band_labels,
    band_of,
    f1_first,
    f1_parts,
    normalize_answer,
    not_mentioned,
    parse_bands,
    read_answers,
    score_dataset,
    summarize,
    token_f1,
)
from tests.helpers import REPO, SYNTH_COMMAND, run_cli, write_jsonl

# --- normalization and F1 ---


def test_normalize_answer_as_locomo():
    # commas dropped, lowercased, punctuation dropped ("brown-fox" -> "brownfox"), a/an/the/and
    # dropped as whole words only ("andrew", "theater" stay), whitespace collapsed
    assert normalize_answer("The Quick, brown-fox AND an Apple!") == "quick brownfox apple"
    assert normalize_answer("Andrew at the theater") == "andrew at theater"
    assert normalize_answer("  7   May,  2023. ") == "7 may 2023"
    assert normalize_answer("") == ""


def test_token_f1_known_values():
    # "cat sat on mat" vs "cat on mat": 3 shared, P = 3/4, R = 3/3, F1 = 2*0.75*1/1.75 = 6/7
    assert token_f1("The cat sat on the mat", "a cat on a mat") == pytest.approx(6 / 7)
    # stemmed: "running" and "runs" are both "run"
    assert token_f1("running", "runs") == 1.0
    # an integer answer as its text: [in, 2022] vs [2022]: P = 1/2, R = 1, F1 = 2/3
    assert token_f1("In 2022", "2022") == pytest.approx(2 / 3)
    # [may, 7] vs [7, may, 2023]: P = 2/2, R = 2/3, F1 = 2*(2/3)/(5/3) = 4/5
    assert token_f1("May 7", "7 May 2023") == pytest.approx(0.8)
    # repeated words count once per occurrence in both: [dog, dog] vs [dog]: P = 1/2, R = 1 -> 2/3
    assert token_f1("dogs dog", "dog") == pytest.approx(2 / 3)
    assert token_f1("", "anything") == 0.0
    assert token_f1("anything", "") == 0.0
    assert token_f1("the", "the") == 0.0  # nothing left after normalization: LoCoMo gives 0


def test_f1_parts_multi_hop():
    # gold parts "Psychology" -> [psycholog] and "counseling certification" -> [counsel, certif];
    # the prediction's only part [counsel]: 0 for the first, P = 1, R = 1/2, F1 = 2/3 for the
    # second; the mean over the gold parts is (0 + 2/3) / 2 = 1/3
    assert f1_parts("counseling", "Psychology, counseling certification") == pytest.approx(1 / 3)
    # both parts named, in any order: (1 + 1) / 2
    assert f1_parts("counseling certification, psychology", "Psychology, counseling certification") == 1.0
    # one prediction part that names both: the best part for each gold part is the whole
    # prediction, [counsel, certif, psycholog]: vs [psycholog] P = 1/3, R = 1, F1 = 1/2; vs
    # [counsel, certif] P = 2/3, R = 1, F1 = 4/5; mean (0.5 + 0.8) / 2 = 0.65
    assert f1_parts("counseling certification and psychology", "Psychology, counseling certification") == (
        pytest.approx(0.65)
    )


def test_f1_first_open_domain():
    # only "Sunday" counts of the gold answer
    assert f1_first("Sunday", "Sunday; the painting was finished that weekend") == 1.0
    # the prediction is not cut: [sunday, paint] vs [sunday]: P = 1/2, R = 1, F1 = 2/3
    assert f1_first("Sunday; the painting", "Sunday; the painting") == pytest.approx(2 / 3)
    # uncut, the gold [sunday, paint, wa, finish, that, weekend] (6 tokens, "the" dropped) against
    # [sunday]: P = 1, R = 1/6, F1 = 2*(1/6)/(7/6) = 2/7
    assert token_f1("Sunday", "Sunday; the painting was finished that weekend") == pytest.approx(2 / 7)


def test_not_mentioned_adversarial():
    gold = "Not mentioned in the conversation."
    assert not_mentioned("That is NOT MENTIONED in what they said.", gold) == 1.0
    assert not_mentioned("No information available.", gold) == 1.0
    assert not_mentioned("She went to Paris.", gold) == 0.0
    assert not_mentioned("", gold) == 0.0
    assert not_mentioned("not said", gold) == 0.0  # only LoCoMo's two phrases count


def test_scoring_rules_are_named():
    assert set(SCORING) == {"f1", "f1-parts", "f1-first", "not-mentioned"}
    assert all(SCORING[r]("x", "x") in (0.0, 1.0) for r in SCORING)


# --- bands ---


def test_bands_boundaries():
    edges = DEFAULT_BANDS_MIN
    assert band_labels(edges) == ["<4", "4-10.7", "10.7-21", "21-32", ">=32"]
    # a band holds its lower edge
    assert band_of(0.0, edges) == 0
    assert band_of(239.9, edges) == 0
    assert band_of(240.0, edges) == 1  # 4 min
    assert band_of(641.9, edges) == 1
    assert band_of(642.0, edges) == 2  # 10.7 min
    assert band_of(1259.9, edges) == 2
    assert band_of(1260.0, edges) == 3  # 21 min
    assert band_of(1920.0, edges) == 4  # 32 min
    assert band_of(10_000.0, edges) == 4
    assert band_of(None, edges) is None


def test_parse_bands():
    assert parse_bands("4,10.7,21,32") == DEFAULT_BANDS_MIN
    assert parse_bands(" 5 ") == (5.0,)
    for bad in ("4,3", "4,4", "x", "", "0,5", "-1", "nan", "inf", "4,,5"):
        with pytest.raises(ConfigError) as err:
            parse_bands(bad)
        assert err.value.option == "bands"


def _score(probe_id, score, category=None, latest=None, earliest=None, answered=True):
    return ProbeScore(
        "c", probe_id, "q?", "gold", "x" if answered else None, category, False, "f1", score, latest, earliest
    )


def test_summarize_groups_and_unknown_distance():
    scores = [
        _score("a", 1.0, "2", latest=10, earliest=10),
        _score("b", 0.5, "2", latest=300, earliest=10),
        _score("c", 0.0, "10", latest=None, earliest=None, answered=False),
        _score("d", 0.25, None, latest=3000, earliest=3000),
    ]
    report = summarize(scores, (4.0,), conversations=1)
    assert (report.overall.probes, report.overall.answered) == (4, 3)
    assert report.overall.mean == pytest.approx(1.75 / 4)
    # categories in numeric order, none last
    assert [(g.name, g.probes, g.mean) for g in report.by_category] == [
        ("2", 2, 0.75),
        ("10", 1, 0.0),
        ("none", 1, 0.25),
    ]
    assert [(g.name, g.probes, g.mean) for g in report.by_latest] == [
        ("<4", 1, 1.0),
        (">=4", 2, 0.375),
        ("unknown", 1, 0.0),
    ]
    assert [(g.name, g.probes) for g in report.by_earliest] == [("<4", 2), (">=4", 1), ("unknown", 1)]
    bands = report.to_dict()["by_distance_latest"]
    assert bands[0] == {
        "band": "<4",
        "low_min": None,
        "high_min": 4.0,
        "probes": 1,
        "answered": 1,
        "mean": 1.0,
    }
    assert bands[2]["band"] == "unknown" and bands[2]["low_min"] is None
    empty = summarize(scores[:1], (1.0, 2.0), conversations=1).by_latest
    assert [(g.name, g.probes, g.mean) for g in empty] == [("<1", 1, 1.0), ("1-2", 0, None), (">=2", 0, None)]


# --- the answers file ---


def test_read_answers(tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"probe_id": "p1", "answer": "x"},
            "",
            {"probe_id": "p2", "prediction": 2022},
            {"probe_id": "p3", "answer": None},
        ],
    )
    answers = read_answers(path)
    assert {k: (a.line, a.text) for k, a in answers.items()} == {
        "p1": (1, "x"),
        "p2": (3, "2022"),
        "p3": (4, None),
    }


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"probe_id": "p1", "answer": "x"}', "{not json"], "line 2: not valid JSON"),
        (['{"probe_id": "p1", "answer": "x"}', '{"probe_id": "p2", "answer": "y"}', '{"probe_id": "p1", "answer": "z"}'],
         "lines 1 and 3: probe 'p1' is answered twice"),
        (['["p1", "x"]'], "line 1: not a JSON object"),
        (['{"answer": "x"}'], "line 1: no 'probe_id'"),
        (['{"probe_id": "p1"}'], "line 1: no 'answer' (or 'prediction') for probe 'p1'"),
        (['{"probe_id": "p1", "answer": ["x"]}'], "line 1: 'answer' is a list, not a string"),
    ],
)  # fmt: skip
def test_read_answers_errors_name_the_line(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "a.jsonl", lines)
    with pytest.raises(RecordError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_answers(path)


# --- a dataset with probes ---

EVIDENCE_END = 0.5  # every probe's evidence is turn 0, which ends here


def _probe(index, probe_id, answer, latest, earliest, category=None, scoring=None, adversarial=False):
    audio, transcript = probe_files(index)
    return ProbeRecord(
        probe_id=probe_id,
        question=f"What about {probe_id}?",
        answer=answer,
        audio_file=audio,
        transcript_file=transcript,
        duration_sec=0.5,
        time=EVIDENCE_END + latest,
        evidence=[{"turn_id": 0, "source_id": "D1:1", "start": 0.0, "end": EVIDENCE_END}],
        distance_sec={"latest": latest, "earliest": earliest},
        turn_number=2 + index,
        distance_tokens={"latest": int(latest * 20), "earliest": int(earliest * 20)},
        category=category,
        adversarial=adversarial,
        scoring=scoring,
    )


# distances in seconds; the bands (minutes) are noted
PROBES = {
    "c1": [
        # multi-hop; latest 1 min (<4), earliest 11.7 min (10.7-21)
        _probe(0, "c1_q0", "Psychology, counseling certification", 60, 700, "1", "f1-parts"),
        # latest exactly 4 min (4-10.7), earliest the same
        _probe(1, "c1_q1", "7 May 2023", 240, 240, "2", "f1"),
        # open-domain; latest exactly 10.7 min (10.7-21), earliest 21.7 min (21-32)
        _probe(2, "c1_q2", "Sunday; the painting was finished that weekend", 642, 1300, "3", "f1-first"),
        # adversarial; latest exactly 32 min (>=32)
        _probe(3, "c1_q3", "Not mentioned in the conversation.", 1920, 2000, "5", "not-mentioned", True),
    ],
    "c2": [
        # no scoring given: plain F1; 25 min (21-32)
        _probe(0, "c2_q0", "2022", 1500, 1500, "4"),
        # adversarial without a scoring: the not-mentioned rule; 100 s (<4)
        _probe(1, "c2_q1", "Not mentioned in the conversation.", 100, 100, "5", adversarial=True),
    ],
}


def write_dataset(root: Path) -> Path:
    """A dataset folder as synth writes one: per conversation its turn and probe files (16 kHz
    PCM16 WAVs and transcripts), metadata.json with the probes, and the manifest."""
    lines = []
    for cid, probes in PROBES.items():
        folder = root / "conversations" / cid
        folder.mkdir(parents=True)
        turns = []
        for i, (speaker, text) in enumerate(
            (("A", "I got my counseling certification."), ("B", "Congratulations!"))
        ):
            audio, transcript = turn_files(i)
            sf.write(folder / audio, np.zeros(8000, dtype=np.int16), 16000, subtype="PCM_16")
            (folder / transcript).write_text(text + "\n", encoding="utf-8")
            start = i * EVIDENCE_END
            turns.append(
                TurnRecord(
                    turn_id=i, speaker=speaker, speaker_id=i, audio_file=audio, transcript_file=transcript,
                    text=text, num_samples=8000, duration_sec=0.5, start_time=start, end_time=start + 0.5,
                )
            )  # fmt: skip
        for p in probes:
            sf.write(folder / p.audio_file, np.zeros(8000, dtype=np.int16), 16000, subtype="PCM_16")
            (folder / p.transcript_file).write_text(p.question + "\n", encoding="utf-8")
        meta = ConversationMetadata(
            conversation_id=cid,
            total_turns=len(turns),
            total_duration_sec=1.0,
            speakers=["A", "B"],
            turns=turns,
            probes=probes,
        )
        (folder / METADATA_FILE).write_text(meta.to_json(), encoding="utf-8")
        lines.append(ManifestEntry.from_metadata(meta).to_line())
    (root / MANIFEST).write_text("".join(lines), encoding="utf-8")
    return root


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds")


def _gold_answers():
    # the gold answers as LoCoMo scores them: an open-domain answer up to its ';'
    return [{"probe_id": p.probe_id, "answer": p.answer.split(";")[0]} for ps in PROBES.values() for p in ps]


def test_gold_answers_score_one_and_empty_answers_zero(dataset, tmp_path):
    gold = score_dataset(dataset, write_jsonl(tmp_path / "gold.jsonl", _gold_answers()))
    assert gold.overall.mean == 1.0 and gold.overall.answered == 6 and gold.conversations == 2
    assert all(p.score == 1.0 for p in gold.probes)
    empty = [{"probe_id": a["probe_id"], "answer": ""} for a in _gold_answers()]
    report = score_dataset(dataset, write_jsonl(tmp_path / "empty.jsonl", empty))
    assert report.overall.mean == 0.0 and report.overall.answered == 6
    # the open-domain gold with its explanation as the answer: 2/7 (see test_f1_first_open_domain)
    whole = [{"probe_id": "c1_q2", "answer": PROBES["c1"][2].answer}]
    report = score_dataset(dataset, write_jsonl(tmp_path / "whole.jsonl", whole))
    assert next(p.score for p in report.probes if p.probe_id == "c1_q2") == pytest.approx(2 / 7)


PARTLY = [
    {"probe_id": "c1_q0", "answer": "counseling"},  # 1/3 (test_f1_parts_multi_hop)
    {"probe_id": "c1_q1", "prediction": "May 7"},  # 4/5 (test_token_f1_known_values)
    {"probe_id": "c1_q2", "answer": "On Sunday."},  # [on, sunday] vs [sunday]: 2/3
    {"probe_id": "c1_q3", "answer": "She went to Paris."},  # 0
    # c2_q0 not answered: 0
    {"probe_id": "c2_q1", "answer": "That was not mentioned."},  # 1
]
PARTLY_SCORES = {"c1_q0": 1 / 3, "c1_q1": 0.8, "c1_q2": 2 / 3, "c1_q3": 0.0, "c2_q0": 0.0, "c2_q1": 1.0}


def test_partly_right_answers_known_values(dataset, tmp_path):
    report = score_dataset(dataset, write_jsonl(tmp_path / "a.jsonl", PARTLY))
    assert {p.probe_id: p.score for p in report.probes} == pytest.approx(PARTLY_SCORES)
    assert [p.scoring for p in report.probes] == [
        "f1-parts",
        "f1",
        "f1-first",
        "not-mentioned",
        "f1",
        "not-mentioned",
    ]
    o = report.overall
    assert (o.probes, o.answered) == (6, 5)
    assert o.mean == pytest.approx((1 / 3 + 0.8 + 2 / 3 + 0 + 0 + 1) / 6)  # 0.4667
    cats = {g.name: (g.probes, g.answered, g.mean) for g in report.by_category}
    assert cats == {
        "1": (1, 1, pytest.approx(1 / 3)),
        "2": (1, 1, pytest.approx(0.8)),
        "3": (1, 1, pytest.approx(2 / 3)),
        "4": (1, 0, 0.0),
        "5": (2, 2, 0.5),
    }
    # latest: <4 c1_q0 (60 s), c2_q1 (100 s); 4-10.7 c1_q1 (240 s); 10.7-21 c1_q2 (642 s);
    # 21-32 c2_q0 (1500 s); >=32 c1_q3 (1920 s)
    latest = [(g.name, g.probes, g.mean) for g in report.by_latest]
    assert latest == [
        ("<4", 2, pytest.approx((1 / 3 + 1) / 2)),
        ("4-10.7", 1, pytest.approx(0.8)),
        ("10.7-21", 1, pytest.approx(2 / 3)),
        ("21-32", 1, 0.0),
        (">=32", 1, 0.0),
    ]
    # earliest: <4 c2_q1; 4-10.7 c1_q1; 10.7-21 c1_q0 (700 s); 21-32 c1_q2 (1300 s), c2_q0; >=32 c1_q3
    earliest = [(g.name, g.probes, g.mean) for g in report.by_earliest]
    assert earliest == [
        ("<4", 1, 1.0),
        ("4-10.7", 1, pytest.approx(0.8)),
        ("10.7-21", 1, pytest.approx(1 / 3)),
        ("21-32", 2, pytest.approx(1 / 3)),
        (">=32", 1, 0.0),
    ]


def test_unknown_probe_is_an_error_naming_the_line(dataset, tmp_path):
    path = write_jsonl(
        tmp_path / "a.jsonl", [{"probe_id": "c1_q0", "answer": "x"}, {"probe_id": "c9_q9", "answer": "y"}]
    )
    with pytest.raises(RecordError, match=r"a.jsonl line 2: probe 'c9_q9' is not in"):
        score_dataset(dataset, path)


def test_a_dataset_without_probes_is_an_error(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root)
    for cid in PROBES:
        meta_path = root / "conversations" / cid / METADATA_FILE
        meta = json.loads(meta_path.read_text())
        del meta["probes"]
        meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="no memory probes"):
        score_dataset(root, write_jsonl(tmp_path / "a.jsonl", []))


# --- the command ---

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_cli_table_json_and_plot(dataset, tmp_path):
    answers = write_jsonl(tmp_path / "a.jsonl", PARTLY)
    out_json, out_png = tmp_path / "report.json", tmp_path / "bands.png"
    res = run_cli("memory-score", str(dataset), str(answers), "--json", str(out_json), "--plot", str(out_png))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "6 probes in 2 conversations, 5 answered (1 unanswered, scored 0)"
    table = lines[1:]
    assert table[0].split() == ["probes", "answered", "mean"]
    assert len({len(line) for line in table}) == 1, "the table's columns are aligned"
    rows = {line[: line.index("  ")].strip(): line.split()[-3:] for line in table[1:]}
    assert rows["all"] == ["6", "5", "0.4667"]
    assert rows["category 5"] == ["2", "2", "0.5000"]
    assert rows["category 4"] == ["1", "0", "0.0000"]
    assert rows["latest evidence <4 min"] == ["2", "2", "0.6667"]
    assert rows["latest evidence 4-10.7 min"] == ["1", "1", "0.8000"]
    assert rows["latest evidence >=32 min"] == ["1", "1", "0.0000"]

    report = json.loads(out_json.read_text())
    assert report["overall"] == {"name": "all", "probes": 6, "answered": 5, "mean": 0.4667}
    assert report["bands_min"] == [4, 10.7, 21, 32]
    assert [b["band"] for b in report["by_distance_earliest"]] == ["<4", "4-10.7", "10.7-21", "21-32", ">=32"]
    assert report["by_distance_earliest"][3] == {
        "band": "21-32", "low_min": 21, "high_min": 32, "probes": 2, "answered": 1, "mean": 0.3333,
    }  # fmt: skip
    probes = {p["probe_id"]: p for p in report["probes"]}
    assert probes["c1_q0"]["score"] == 0.3333 and probes["c1_q0"]["prediction"] == "counseling"
    assert probes["c2_q0"]["answered"] is False and probes["c2_q0"]["prediction"] is None
    assert probes["c1_q2"]["gold"].startswith("Sunday;") and probes["c1_q2"]["distance_latest_sec"] == 642

    png = out_png.read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 1000


def test_cli_other_bands_and_gold_answers(dataset, tmp_path):
    res = run_cli(
        "memory-score", str(dataset), str(write_jsonl(tmp_path / "g.jsonl", _gold_answers())), "--bands", "10"
    )
    assert res.returncode == 0, res.stderr
    assert "latest evidence <10 min" in res.stdout and "latest evidence >=10 min" in res.stdout
    assert "4-10.7" not in res.stdout
    all_row = next(line for line in res.stdout.splitlines() if line.startswith("all "))
    assert all_row.split() == ["all", "6", "6", "1.0000"]


def test_cli_errors(dataset, tmp_path):
    answers = write_jsonl(tmp_path / "a.jsonl", PARTLY)
    bad = run_cli("memory-score", str(dataset), str(answers), "--bands", "4,3")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "synth memory-score: error: --bands: must be strictly increasing: 3 comes after 4",
        "(see `synth memory-score --help`)",
    ]
    unknown = write_jsonl(tmp_path / "u.jsonl", [*PARTLY, {"probe_id": "nope", "answer": "x"}])
    res = run_cli("memory-score", str(dataset), str(unknown))
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"synth memory-score: error: {unknown} line 6: probe 'nope' is not in {dataset}"
    ]
    assert res.stdout == ""


def test_cli_plot_without_matplotlib(dataset, tmp_path):
    """Without matplotlib, --plot fails in one line (exit 1) before scoring; without --plot the
    command does not need it."""
    blocker = tmp_path / "blocked" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    answers = str(write_jsonl(tmp_path / "a.jsonl", PARTLY))
    cmd = [*SYNTH_COMMAND, "memory-score", str(dataset), answers]
    res = subprocess.run(
        [*cmd, "--plot", str(tmp_path / "x.png")], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "synth memory-score: error: --plot: needs matplotlib, which is not installed (pip install 'synth[report]')"
    ]
    assert res.stdout == "" and not (tmp_path / "x.png").exists()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert res.returncode == 0, res.stderr
