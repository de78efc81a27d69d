"""The reader beside writers: a conversation a writer takes out (its line gone from a manifest
replaced whole, then its folder removed) while a reader goes through the old manifest is read
from the new manifest, not an error; a listed folder that is missing while the manifest stays
the same is the error it always was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from synth.dataset import reader
from synth.dataset.reader import open_dataset
from synth.errors import DatasetError
from synth.testing import dialog, make_dataset


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    make_dataset(
        root, [dialog([("A", f"Line {i} of one."), ("B", f"Line {i} of two.")], f"c{i}") for i in range(3)]
    )
    return root


def _taken_out_while_read(root: Path, cid: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """When the reader reaches `cid`, do what `generate --repair` does to it, at that moment: the
    manifest replaced by one without its line, then its folder removed. Returns the reads."""
    real = reader.conversation_dir
    calls = []

    def at_the_moment(where: Path, name: str) -> Path:
        calls.append(name)
        if name == cid and (root / "conversations" / cid).is_dir():
            manifest = root / "manifest.jsonl"
            lines = [x for x in manifest.read_text().splitlines(keepends=True) if f'"{cid}"' not in x]
            (root / ".manifest.new").write_text("".join(lines))
            os.replace(root / ".manifest.new", manifest)
            shutil.rmtree(root / "conversations" / cid)
        return real(where, name)

    monkeypatch.setattr(reader, "conversation_dir", at_the_moment)
    return calls


def test_a_conversation_taken_out_while_read_is_left_out(dataset, monkeypatch):
    calls = _taken_out_while_read(dataset, "c1", monkeypatch)
    refs = open_dataset(dataset)
    assert [r.conversation_id for r in refs] == ["c0", "c2"]
    assert calls == ["c0", "c1", "c0", "c2"]  # the old manifest up to c1, then the new one whole
    assert all(r.metadata().conversation_id == r.conversation_id for r in refs)


def test_a_missing_folder_still_listed_is_an_error(dataset):
    shutil.rmtree(dataset / "conversations" / "c1")
    with pytest.raises(DatasetError, match=r"manifest.jsonl line 2: folder .*c1 is missing"):
        open_dataset(dataset)


def test_a_conversation_taken_out_after_it_was_listed_is_known_as_such(dataset):
    """Listed first, then taken out (its line, then its folder): a reader leaves it out
    (synth.export.rows); a folder gone while still listed is not 'taken out'."""
    from synth.export.rows import conversation_rows

    refs = open_dataset(dataset)
    manifest = dataset / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    shutil.rmtree(dataset / "conversations" / "c2")
    assert not refs[2].taken_out()  # still listed: damage, not a take-out
    with pytest.raises(DatasetError):
        list(conversation_rows(refs))
    manifest.write_text("".join(x for x in lines if '"c2"' not in x))
    assert refs[2].taken_out() and not refs[1].taken_out()
    assert {row.ref.conversation_id for row in conversation_rows(refs)} == {"c0", "c1"}
