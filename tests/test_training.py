"""The PyTorch loader: the exact sample dict, collation, and a batch sampler that keeps every
conversation in one batch row, in turn order, with resets exactly at turn 0."""

import json
import random
import shutil

import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from synth.errors import DatasetError
from synth.training import ConversationBatchSampler, ConversationDataset


class Turns:
    """A dataset seen by the sampler: only the number of turns of each conversation."""

    def __init__(self, counts):
        self.counts = counts

    def turn_counts(self):
        return list(self.counts)


def check_slot_invariants(batches, counts, batch_size):
    owner = {}  # conversation -> row
    next_turn = {}
    finished = set()
    current = [None] * batch_size
    for batch in batches:
        assert len(batch) == batch_size
        for row, item in enumerate(batch):
            if item is None:
                assert current[row] is None or current[row] in finished
                continue
            conv, turn = item
            owner.setdefault(conv, row)
            assert owner[conv] == row, "a conversation changed row"
            assert turn == next_turn.get(conv, 0), "a turn was repeated or skipped"
            if turn == 0:
                assert current[row] is None or current[row] in finished, "reset before the end"
            current[row] = conv
            next_turn[conv] = turn + 1
            if turn + 1 == counts[conv]:
                finished.add(conv)
    return next_turn


@pytest.mark.parametrize("seed", range(5))
def test_sampler_invariants_on_random_lengths(seed):
    rng = random.Random(seed)
    counts = [rng.randint(1, 12) for _ in range(rng.randint(1, 40))]
    for batch_size in (1, 3, 8):
        sampler = ConversationBatchSampler(Turns(counts), batch_size, shuffle=True, seed=seed)
        batches = list(sampler)
        assert len(sampler) == len(batches)
        played = check_slot_invariants(batches, counts, batch_size)
        assert played == {c: n for c, n in enumerate(counts)}, "every turn exactly once"


def test_sampler_shards_by_rank_and_shuffles_by_epoch():
    counts = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]
    seen = []
    for rank in range(3):
        s = ConversationBatchSampler(Turns(counts), 2, shuffle=True, seed=1, rank=rank, world_size=3)
        convs = {item[0] for b in s for item in b if item is not None}
        seen.append(convs)
    assert set().union(*seen) == set(range(len(counts)))
    assert sum(len(x) for x in seen) == len(counts)
    s = ConversationBatchSampler(Turns(counts), 2, shuffle=True, seed=1)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first
    with pytest.raises(ValueError):
        ConversationBatchSampler(Turns(counts), 2, rank=3, world_size=3)


def test_drop_last_stops_before_idle_rows():
    batches = list(ConversationBatchSampler(Turns([2, 5]), 2, drop_last=True))
    assert len(batches) == 2 and all(None not in b for b in batches)


def test_dataset_yields_the_design_sample(example_dataset):
    ds = ConversationDataset(example_dataset)
    assert len(ds) == 18
    item = ds[(0, 1)]
    ref = ds.conversations[0]
    wav, rate = sf.read(str(ref.folder / "turn_1.wav"), dtype="float32")
    assert item["speech"].dtype == torch.float32 and item["speech"].shape == (len(wav),)
    assert item["speech_lengths"].tolist() == [len(wav)] and item["speech_lengths"].dtype == torch.int64
    assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape[0] % 64 == 0
    assert item["labels"].shape == item["input_ids"].shape
    assert item["attention_mask"].dtype == torch.bool
    assert int(item["attention_mask"].sum()) == item["original_length"]
    assert (item["input_ids"] == -200).sum() == 1
    assert item["conversation_id"] == ref.conversation_id and item["turn_number"] == 1
    assert item["speaker_id"] == 1


def test_dataloader_with_workers_keeps_rows(example_dataset):
    ds = ConversationDataset(example_dataset)
    sampler = ConversationBatchSampler(ds, batch_size=3)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate, num_workers=2)
    rows: dict[str, int] = {}
    last_turn: dict[str, int] = {}
    for batch in loader:
        b = batch["input_ids"].shape[0]
        assert b == 3 and batch["speech"].shape[0] == 3 and batch["input_ids"].shape[1] % 64 == 0
        for row in range(b):
            if not batch["active"][row]:
                assert batch["attention_mask"][row].sum() == 0
                continue
            cid, turn = batch["conversation_id"][row], int(batch["turn_number"][row])
            assert rows.setdefault(cid, row) == row
            assert turn == last_turn.get(cid, -1) + 1
            last_turn[cid] = turn
            n = int(batch["speech_lengths"][row])
            assert batch["speech"][row, n:].abs().sum() == 0
    assert sum(t + 1 for t in last_turn.values()) == 18


def test_token_budget_and_bad_datasets(tmp_path, example_dataset):
    tokens = sorted(
        json.loads(l)["total_tokens"] for l in (example_dataset / "manifest.jsonl").read_text().splitlines()
    )
    assert len(ConversationDataset(example_dataset, max_total_tokens=tokens[1]).conversations) == 2
    with pytest.raises(DatasetError, match="not a folder"):
        ConversationDataset(tmp_path / "none")
    ds_path = tmp_path / "ds"
    shutil.copytree(example_dataset, ds_path)
    ds = ConversationDataset(ds_path)
    (ds.conversations[0].folder / "turn_0.wav").write_bytes(b"not audio")
    with pytest.raises(DatasetError, match="turn_0.wav: cannot read audio"):
        ds[(0, 0)]


def test_plain_integer_indexing_iteration_and_a_plain_dataloader(example_dataset):
    """`dataset[0]`, `iter(dataset)` and `DataLoader(ds, batch_size=2, collate_fn=ds.collate)`
    work as a training script's smoke check expects: the turns in order, every one once."""
    from torch.utils.data import DataLoader

    ds = ConversationDataset(example_dataset)
    first = ds[0]
    assert first["turn_number"] == 0 and first["conversation_id"] == ds.conversations[0].conversation_id
    assert ds[-1]["turn_number"] == ds.conversations[-1].num_turns - 1
    with pytest.raises(IndexError):
        ds[len(ds)]
    seen = [(item["conversation_id"], item["turn_number"]) for item in ds]
    assert seen == [(r.conversation_id, t) for r in ds.conversations for t in range(r.num_turns)]
    batches = list(DataLoader(ds, batch_size=2, collate_fn=ds.collate))
    assert sum(len(b["conversation_id"]) for b in batches) == len(ds)
    assert batches[0]["input_ids"].shape[0] == 2 and batches[0]["input_ids"].shape[1] % 64 == 0
