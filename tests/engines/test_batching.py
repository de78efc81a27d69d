"""The dynamic batcher: every caller gets exactly its own audio, batches form under concurrent
load, and out-of-memory failures split the batch instead of failing the callers."""

import threading
import time

import numpy as np
import pytest

from synth.engines import SynthesisRequest
from synth.engines.batching import BatchingEngine
from synth.errors import SynthError
from synth.testing import ToneEngine


@pytest.mark.slow
def test_concurrent_callers_get_their_own_audio(quiet_engine):
    voices = quiet_engine.voices()
    texts = [f"Caller {i} says hello number {i}." for i in range(12)]
    expected = [quiet_engine.synthesize([SynthesisRequest(t, voices[i % 6])])[0] for i, t in enumerate(texts)]
    sizes = []
    batching = BatchingEngine(
        quiet_engine, max_batch=8, max_wait_ms=50, on_batch=lambda n, d: sizes.append(n)
    )
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


def test_out_of_memory_splits_the_batch():
    small = ToneEngine(max_batch=2)  # a batch of more than 2 runs out of memory
    batching = BatchingEngine(small, max_batch=8)
    voice = small.voices()[0]
    reqs = [SynthesisRequest(f"Sentence {i}.", voice) for i in range(7)]
    out = batching.synthesize(reqs)
    batching.close()
    assert len(out) == 7 and all(a.samples.size for a in out)
    sizes = [len(call) for call in small.calls]
    assert sizes[0] == 7
    assert sum(n for n in sizes if n <= 2) == 7  # every request ran once, in halves


def test_other_errors_reach_the_caller():
    engine = ToneEngine(fail_text="One")
    batching = BatchingEngine(engine, max_batch=4)
    with pytest.raises(SynthError, match="cannot say"):
        batching.synthesize([SynthesisRequest("One.", engine.voices()[0])])
    batching.close()


def test_limits_bound_every_engine_call_even_within_one_call():
    """A call with more requests (a long turn's chunks) than a batch holds is spread over
    consecutive engine calls: max_batch and max_batch_chars bound each; results keep their order."""
    recorder = ToneEngine()
    voice = recorder.voices()[0]
    texts = [f"Chunk number {i} of a very long turn." for i in range(11)]
    expected = [recorder.synthesize([SynthesisRequest(t, voice)])[0].samples for t in texts]
    recorder.calls.clear()
    batching = BatchingEngine(recorder, max_batch=4, max_batch_chars=80)
    out = batching.synthesize([SynthesisRequest(t, voice) for t in texts])
    batching.close()
    assert [t for call in recorder.calls for t in call] == texts
    assert all(len(call) <= 4 and (len(call) == 1 or sum(map(len, call)) <= 80) for call in recorder.calls)
    assert len(recorder.calls) >= 5  # 11 requests of ~37 chars: at most 2 per call
    for want, got in zip(expected, out):
        assert np.array_equal(want, got.samples)
    with pytest.raises(ValueError):
        BatchingEngine(recorder, max_batch=0)
    assert BatchingEngine(recorder).synthesize([]) == []


def test_callers_are_served_in_arrival_order():
    """A call that does not fit whole fills the batch and its rest opens the next one, ahead of
    calls that came after it."""
    recorder = ToneEngine()
    voice = recorder.voices()[0]
    gate = threading.Event()

    class _Blocking:
        name, model = recorder.name, recorder.model
        voices, describe = recorder.voices, recorder.describe

        def synthesize(self, requests):
            gate.wait(timeout=60)
            return recorder.synthesize(requests)

    batching = BatchingEngine(_Blocking(), max_batch=3, max_wait_ms=0)
    calls = [["Zero."], ["First a.", "First b."], ["Second a.", "Second b."], ["Third."]]
    threads = []
    for texts in calls:  # "Zero." blocks the worker while the others queue in order
        threads.append(
            threading.Thread(target=batching.synthesize, args=([SynthesisRequest(t, voice) for t in texts],))
        )
        threads[-1].start()
        time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join(timeout=60)
    batching.close()
    assert recorder.calls == [["Zero."], ["First a.", "First b.", "Second a."], ["Second b.", "Third."]]
