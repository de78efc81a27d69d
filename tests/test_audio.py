import numpy as np
import soundfile as sf

from synth.audio import (
    SAMPLE_RATE,
    ResampledReader,
    active_dbfs,
    edge_silence,
    join,
    normalize_loudness,
    resample,
    residual,
    to_pcm16,
    trim_silence,
    wav_bytes,
    write_wav,
)


def tone(freq: float, sec: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sec * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resample_keeps_duration_and_frequency():
    x = tone(440, 1.0, 22050)
    y = resample(x, 22050)
    assert abs(len(y) - SAMPLE_RATE) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(y) - 440) < 2
    # a fractional source rate: samples read faster -> pitch up by the same ratio
    z = resample(x, 22050 * 1.2)
    peak = np.argmax(np.abs(np.fft.rfft(z))) * SAMPLE_RATE / len(z)
    assert abs(peak - 528) < 3


def test_trim_silence_bounds_edges():
    rate = SAMPLE_RATE
    x = np.concatenate([np.zeros(rate), tone(300, 0.5, rate), np.zeros(2 * rate)])
    y = trim_silence(x, rate, keep_sec=0.1)
    assert 0.5 <= len(y) / rate <= 0.72
    assert trim_silence(np.zeros(rate, dtype=np.float32), rate).size == 0


def test_loudness_is_consistent_and_never_clips():
    rate = SAMPLE_RATE
    quiet = tone(200, 1.0, rate, 0.01)
    loud = tone(200, 1.0, rate, 0.99)
    spiky = tone(200, 1.0, rate, 0.05)
    spiky[100] = 1.0
    levels = [active_dbfs(normalize_loudness(x, rate), rate) for x in (quiet, loud)]
    assert all(abs(level + 20) < 0.5 for level in levels)
    out = normalize_loudness(spiky, rate)
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    pcm = to_pcm16(np.array([1.5, -1.5, 0.0], dtype=np.float32))
    assert pcm.tolist() == [32767, -32768, 0]


def test_join_inserts_pauses():
    rate = SAMPLE_RATE
    out = join([np.ones(100, np.float32), np.ones(50, np.float32)], rate, pause_sec=0.01)
    assert len(out) == 310 and out[100:260].max() == 0


def test_wav_files_are_16k_mono_pcm16(tmp_path):
    x = tone(300, 0.25, SAMPLE_RATE)
    write_wav(tmp_path / "a.wav", x)
    info = sf.info(str(tmp_path / "a.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 4000)
    assert wav_bytes(x)[:4] == b"RIFF"


def test_a_file_read_at_another_rate_in_blocks_is_the_whole_resampled(tmp_path):
    """ResampledReader (what validate reads a full-band conversation.wav with): blocks of any
    size, streamed, make the file resampled whole; past its end, silence."""
    left, right = tone(220, 1.3, 24_000), tone(660, 1.3, 24_000, amp=0.25)
    path = tmp_path / "two.wav"
    sf.write(str(path), np.stack([left, right], axis=1), 24_000, subtype="FLOAT")
    with ResampledReader(path, SAMPLE_RATE) as reader:
        blocks = [reader.read(n) for n in (1, 999, 7000, 16_000, 500)]
    got = np.concatenate(blocks)
    assert got.shape == (24_500, 2) and got.dtype == np.float32
    n = int(1.3 * SAMPLE_RATE)
    for ch, samples in enumerate((left, right)):
        whole = resample(samples, 24_000, SAMPLE_RATE)
        assert residual(got[100 : n - 100, ch], whole[100 : n - 100]) < 1e-4
    assert not got[n + 50 :].any()
    assert residual(got[:n, 1], got[:n, 0]) > 0.5  # another signal is far
    assert residual(got[:, 0], np.zeros_like(got[:, 0])) is None


def test_edge_silence_is_measured_in_seconds():
    speech = tone(440, 1.0, SAMPLE_RATE)
    padded = np.concatenate([np.zeros(8000, np.float32), speech, np.zeros(3200, np.float32)])
    lead, trail = edge_silence(padded, SAMPLE_RATE)
    assert abs(lead - 0.5) <= 0.01 and abs(trail - 0.2) <= 0.01
    assert edge_silence(np.zeros(1600, np.float32), SAMPLE_RATE) is None
