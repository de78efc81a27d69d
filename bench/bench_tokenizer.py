"""Training samples tokenized per second: the embedded Llama 3 tokenizer (quicktok) against
transformers' fast tokenizer on the same vocabulary, same turns, same SampleBuilder, one run.

    python bench/bench_tokenizer.py --conversations 2000
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time

from synth.dataset.records import TurnRecord
from synth.samples.builder import SampleBuilder
from synth.samples.tokenizer import EmbeddedLlama3, HuggingFaceTokenizer, export_llama3_hf

WORDS = [
    "the",
    "a",
    "we",
    "you",
    "they",
    "it",
    "is",
    "was",
    "will",
    "can",
    "could",
    "should",
    "market",
    "train",
    "morning",
    "evening",
    "coffee",
    "ticket",
    "window",
    "doctor",
    "garden",
    "weather",
    "tomorrow",
    "yesterday",
    "because",
    "although",
    "really",
    "quite",
    "seven",
    "twelve",
    "forty",
    "thousand",
    "o'clock",
    "don't",
    "isn't",
    "I'm",
    "you're,",
    ".",
    "?",
    "!",
]


def make_conversations(n: int, seed: int = 0) -> list[list[TurnRecord]]:
    rng = random.Random(seed)
    convs = []
    for _ in range(n):
        turns = []
        for t in range(rng.randint(4, 12)):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))).capitalize()
            d = rng.uniform(1, 12)
            turns.append(
                TurnRecord(
                    turn_id=t,
                    speaker="AB"[t % 2],
                    speaker_id=t % 2,
                    text=text,
                    audio_file=f"turn_{t}.wav",
                    transcript_file=f"turn_{t}.txt",
                    duration_sec=d,
                    start_time=0.0,
                    end_time=d,
                )
            )
        convs.append(turns)
    return convs


def rate(builder: SampleBuilder, convs: list[list[TurnRecord]], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter()
        for i, turns in enumerate(convs):
            builder.build(f"c{i}", turns)
        best = min(best, time.perf_counter() - began)
    return sum(len(c) for c in convs) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conversations", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    convs = make_conversations(args.conversations)
    with tempfile.TemporaryDirectory() as tmp:
        hf = HuggingFaceTokenizer(str(export_llama3_hf(tmp)))
        embedded = SampleBuilder(EmbeddedLlama3())
        transformers_fast = SampleBuilder(hf)
        assert embedded.build("x", convs[0])[0] == transformers_fast.build("x", convs[0])[0]
        r_emb = rate(embedded, convs, args.rounds)
        r_hf = rate(transformers_fast, convs, args.rounds)
    n = sum(len(c) for c in convs)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(f"{n} samples from {len(convs)} conversations, best of {args.rounds} rounds")
    print(f"embedded (quicktok)      {r_emb:10.0f} samples/s")
    print(f"transformers fast        {r_hf:10.0f} samples/s")
    print(f"embedded / transformers  {r_emb / r_hf:10.2f}x")


if __name__ == "__main__":
    main()
