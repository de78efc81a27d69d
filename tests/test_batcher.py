"""The dynamic batcher: every caller gets exactly its own audio, batches form under concurrent
load, and out-of-memory failures split the batch instead of failing the callers."""

import threading

import numpy as np
import pytest

from synth.batcher import BatchingEngine
from synth.engines import SynthesisRequest


def test_concurrent_callers_get_their_own_audio(quiet_engine):
    voices = quiet_engine.voices()
    texts = [f"Caller {i} says hello number {i}." for i in range(12)]
    expected = [quiet_engine.synthesize([SynthesisRequest(t, voices[i % 6])])[0] for i, t in enumerate(texts)]
    sizes = []
    batching = BatchingEngine(quiet_engine, max_batch=8, max_wait_ms=50, on_batch=lambda n, d: sizes.append(n))
    got = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def call(i):
        barrier.wait()
        got[i] = batching.synthesize([SynthesisRequest(texts[i], voices[i % 6])])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    batching.close()
    for e, g in zip(expected, got):
        assert g.sample_rate == e.sample_rate and np.array_equal(g.samples, e.samples)
    assert max(sizes) > 1 and sum(sizes) == len(texts) and max(sizes) <= 8


class _SmallMemoryEngine:
    """Wraps a real engine; a batch of more than `limit` requests runs out of memory."""

    def __init__(self, engine, limit):
        self.engine, self.limit, self.calls = engine, limit, []
        self.name, self.model = engine.name, engine.model

    def voices(self):
        return self.engine.voices()

    def describe(self):
        return self.engine.describe()

    def synthesize(self, requests):
        self.calls.append(len(requests))
        if len(requests) > self.limit:
            raise MemoryError("CUDA out of memory (simulated)")
        return self.engine.synthesize(requests)


def test_out_of_memory_splits_the_batch(quiet_engine):
    small = _SmallMemoryEngine(quiet_engine, limit=2)
    batching = BatchingEngine(small, max_batch=8)
    voice = quiet_engine.voices()[0]
    reqs = [SynthesisRequest(f"Sentence {i}.", voice) for i in range(7)]
    out = batching.synthesize(reqs)
    batching.close()
    assert len(out) == 7 and all(a.samples.size for a in out)
    assert small.calls[0] == 7
    assert sum(n for n in small.calls if n <= 2) == 7  # every request ran once, in halves


def test_other_errors_reach_the_caller(quiet_engine):
    batching = BatchingEngine(_SmallMemoryEngine(quiet_engine, limit=0), max_batch=4)
    with pytest.raises(MemoryError):
        batching.synthesize([SynthesisRequest("One.", quiet_engine.voices()[0])])
    batching.close()
