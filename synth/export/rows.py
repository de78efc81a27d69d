"""What every per-turn export walks: each training sample of a dataset with its turn and the
text it targets."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..dataset.reader import ConversationRef, DatasetError
from ..dataset.records import SAMPLES_FILE, TurnRecord


def turn_rows(
    refs: list[ConversationRef],
) -> Iterator[tuple[ConversationRef, TurnRecord, dict[str, Any], str]]:
    """(conversation, turn, sample, target text) for every sample, in order."""
    for ref in refs:
        turns = ref.turns()
        samples = ref.samples()
        if len(samples) != len(turns):
            raise DatasetError(
                f"{ref.folder / SAMPLES_FILE}: {len(samples)} samples for "
                f"{len(turns)} turns (run `synth tokenize`)"
            )
        for sample, turn in zip(samples, turns):
            i = int(sample["turn_number"])
            target = turns[i + 1].text if sample.get("target") == "reply" else turns[i].text
            yield ref, turn, sample, str(target)
