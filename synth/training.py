"""The PyTorch side: a Dataset that yields exactly the sample of docs/dataset-format.md ("What the
PyTorch loader yields"), a collate function, and a batch sampler that keeps each conversation in
one batch slot.

Why the sampler: test-time-training layers carry state across the turns of a conversation, per
batch row. So batch row k must hold the turns of one conversation in order, batch after batch,
and a new conversation may enter row k only when the previous one has ended; its first turn has
`turn_number == 0`, which is where the model resets row k's state. Rows with nothing left to
play are idle (`active == False`) rather than shifted, so no conversation ever changes row.

    from synth.training import ConversationDataset, ConversationBatchSampler
    ds = ConversationDataset("dataset/", max_total_tokens=8192)
    loader = DataLoader(ds, batch_sampler=ConversationBatchSampler(ds, batch_size=8),
                        collate_fn=ds.collate, num_workers=2)
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import soundfile as sf

try:
    import torch
    from torch.utils.data import Dataset, Sampler
except ModuleNotFoundError as exc:  # an optional dependency: say which install brings it
    if exc.name != "torch":
        raise
    raise ModuleNotFoundError(
        "synth's PyTorch loader (ConversationDataset, ConversationBatchSampler) needs torch, which "
        "is not installed: pip install 'synth[train]' (any torch >= 2.1; the datasets themselves are "
        "made without it)",
        name="torch",
    ) from None

from .audio import SAMPLE_RATE
from .dataset.reader import ConversationRef, open_dataset
from .errors import ConfigError, DatasetError
from .samples.builder import IGNORE_INDEX
from .samples.curriculum import SPLITS_DIR, parse_stages, split_path
from .samples.tokenizer import LLAMA31_RENAMED, PAD_TOKEN

TurnIndex = tuple[int, int]  # (conversation position, turn number)


class ConversationDataset(Dataset):
    """Turns of a dataset's conversations. Indexed by a plain integer (every turn of every
    conversation in order: `dataset[0]` is the first conversation's first turn, as a training
    script's smoke check or a plain DataLoader expects), or by `(conversation position, turn
    number)` as ConversationBatchSampler asks, which keeps each conversation in one batch row so
    state carries over; `None` stands for an idle batch row. Reads WAVs and samples lazily,
    caching a few conversations' samples (each worker process has its own cache)."""

    def __init__(
        self,
        root: str | Path,
        max_total_tokens: int | None = None,
        manifest: str | Path | None = None,
        pad_id: int | None = None,
        cache_size: int = 64,
        stage: int | str | None = None,
        bands: bool = False,
        probes: bool | None = None,
    ):
        """`stage` (16384 or '16k') reads that curriculum stage's split manifest, written by
        `synth splits` (with `bands`, the band where each conversation is in exactly one stage).
        `probes`: each conversation's memory probes (docs/memory.md) after its turns, numbered on
        from them: None where the dataset put them in its training samples (`--probes
        in-training`), True always (an evaluation reads them with the conversation before them),
        False never."""
        self.root = Path(root)
        if stage is not None:
            if manifest is not None:
                raise DatasetError("give a stage or a manifest, not both")
            (tokens,) = parse_stages(str(stage))
            manifest = split_path(self.root / SPLITS_DIR, tokens, bands)
            if not Path(manifest).is_file():
                raise DatasetError(
                    f"{manifest}: missing; run `synth splits {self.root} "
                    f"--stages ...{tokens}{' --bands' if bands else ''}` first"
                )
        refs = open_dataset(self.root, manifest)
        if max_total_tokens is not None:
            missing = [r.conversation_id for r in refs if r.total_tokens is None]
            if missing:
                raise DatasetError(f"{missing[0]}: no total_tokens in the manifest (run `synth tokenize`)")
            refs = [r for r in refs if r.total_tokens is not None and r.total_tokens <= max_total_tokens]
        self.conversations: list[ConversationRef] = refs
        self.probes = probes
        self._counts = [r.num_turns + (r.num_probes if self._with_probes(r) else 0) for r in refs]
        self._starts = list(itertools.accumulate(self._counts, initial=0))
        self.pad_id = LLAMA31_RENAMED[PAD_TOKEN] if pad_id is None else pad_id
        self.cache_size = cache_size
        self._cache: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return self._starts[-1]

    def locate(self, index: int) -> TurnIndex:
        """The (conversation position, turn number) of the index-th turn of the dataset."""
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"turn index {index} out of range for {n} turns")
        conv = bisect.bisect_right(self._starts, index) - 1
        return conv, index - self._starts[conv]

    def turn_counts(self) -> list[int]:
        """Samples per conversation: its turns, and its probes where they are read."""
        return list(self._counts)

    def _with_probes(self, ref: ConversationRef) -> bool:
        return bool(ref.num_probes) and (
            self.probes if self.probes is not None else bool(ref.entry.probes_in_samples)
        )

    def _samples(self, conv: int) -> list[dict[str, Any]]:
        if conv in self._cache:
            self._cache.move_to_end(conv)
            return self._cache[conv]
        ref = self.conversations[conv]
        samples = ref.samples()
        in_samples = ref.num_probes if ref.entry.probes_in_samples else 0
        if len(samples) != ref.num_turns + in_samples:
            what = f"{ref.num_turns} turns" + (f" and {in_samples} probes" if in_samples else "")
            raise DatasetError(f"{ref.folder / 'samples.jsonl'}: {len(samples)} samples for {what}")
        samples = samples[: ref.num_turns]
        if self._with_probes(ref):
            answers = ref.probe_samples()
            if answers is None:
                raise DatasetError(f"{ref.folder}: the manifest lists probes but there is no probes.jsonl")
            samples = samples + answers
        self._cache[conv] = samples
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return samples

    def __getitem__(self, index: int | TurnIndex | None) -> dict[str, Any]:
        if index is None:
            return self._idle()
        conv, turn = self.locate(index) if isinstance(index, int) else index
        ref = self.conversations[conv]
        sample = self._samples(conv)[turn]
        wav = ref.file(sample["audio_file"], f"turn {turn} audio_file")
        try:
            speech, rate = sf.read(str(wav), dtype="float32", always_2d=False)
        except Exception as exc:  # libsndfile: missing or corrupt file
            raise DatasetError(f"{wav}: cannot read audio ({exc})") from None
        if rate != SAMPLE_RATE or speech.ndim != 1:
            raise DatasetError(f"{wav}: expected 16 kHz mono")
        return {
            "speech": torch.from_numpy(speech),
            "speech_lengths": torch.tensor([speech.shape[0]], dtype=torch.int64),
            "input_ids": torch.tensor(sample["input_ids"], dtype=torch.int64),
            "labels": torch.tensor(sample["labels"], dtype=torch.int64),
            "attention_mask": torch.tensor(sample["attention_mask"], dtype=torch.bool),
            "conversation_id": ref.conversation_id,
            "turn_number": int(sample["turn_number"]),
            "speaker_id": int(sample["speaker_id"]),
            "original_length": int(sample["original_length"]),
        }

    def _idle(self) -> dict[str, Any]:
        return {
            "speech": torch.zeros(0),
            "speech_lengths": torch.tensor([0]),
            "input_ids": torch.zeros(0, dtype=torch.int64),
            "labels": torch.zeros(0, dtype=torch.int64),
            "attention_mask": torch.zeros(0, dtype=torch.bool),
            "conversation_id": "",
            "turn_number": -1,
            "speaker_id": -1,
            "original_length": 0,
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Pad speech with zeros and text with the pad id / IGNORE_INDEX / False, row by row in
        slot order. `active` marks rows that hold a turn."""
        b = len(items)
        t_speech = max([it["speech"].shape[0] for it in items] + [1])
        t_text = max([it["input_ids"].shape[0] for it in items] + [1])
        speech = torch.zeros(b, t_speech)
        input_ids = torch.full((b, t_text), self.pad_id, dtype=torch.int64)
        labels = torch.full((b, t_text), IGNORE_INDEX, dtype=torch.int64)
        mask = torch.zeros(b, t_text, dtype=torch.bool)
        for i, it in enumerate(items):
            n, m = it["speech"].shape[0], it["input_ids"].shape[0]
            speech[i, :n] = it["speech"]
            input_ids[i, :m], labels[i, :m], mask[i, :m] = it["input_ids"], it["labels"], it["attention_mask"]
        return {
            "speech": speech,
            "speech_lengths": torch.cat([it["speech_lengths"] for it in items]),
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": mask,
            "conversation_id": [it["conversation_id"] for it in items],
            "turn_number": torch.tensor([it["turn_number"] for it in items]),
            "speaker_id": torch.tensor([it["speaker_id"] for it in items]),
            "original_length": torch.tensor([it["original_length"] for it in items]),
            "active": torch.tensor([it["turn_number"] >= 0 for it in items]),
        }


class ConversationBatchSampler(Sampler[list[TurnIndex | None]]):
    """Batches of `batch_size` rows; row k plays one conversation turn by turn, then the next
    conversation queued for it. Conversations are sharded by `rank` over `world_size` (each rank
    gets a disjoint subset), optionally shuffled per epoch (`set_epoch`). With `drop_last`, stop
    at the first batch that cannot fill every row."""

    def __init__(
        self,
        dataset: ConversationDataset,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ):
        if batch_size < 1:
            raise ConfigError("batch_size", "must be at least 1", batch_size)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError("rank", f"must be in [0, world_size={world_size})", rank)
        self.turns = dataset.turn_counts()
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        order = list(range(len(self.turns)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[list[TurnIndex | None]]:
        queue = iter(self._order())
        slots: list[list[TurnIndex]] = [[] for _ in range(self.batch_size)]
        while True:
            for slot in slots:
                if not slot:
                    conv = next(queue, None)
                    if conv is not None:
                        slot.extend((conv, t) for t in range(self.turns[conv]))
            if not any(slots) or (self.drop_last and not all(slots)):
                return
            yield [slot.pop(0) if slot else None for slot in slots]

    def __len__(self) -> int:
        return sum(1 for _ in iter(self))
