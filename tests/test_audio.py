"""Audio intake: decoding, downmixing, streaming resampling and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from numpy.typing import NDArray

from streamasr.server.engine.audio import AudioIntake, Resampler, decode
from streamasr.server.errors import AsrError, AudioDataError, AudioFormatError
from streamasr.server.options.audio import AudioFormat

RATES = (8000, 22050, 44100, 48000, 96000)


def noise(n: int, seed: int, channels: int = 1) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    shape = (n,) if channels == 1 else (n, channels)
    return (0.3 * rng.standard_normal(shape)).astype(np.float32)


def random_sizes(total: int, seed: int) -> list[int]:
    """Frame sizes from one sample to about a second, summing to ``total``."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < total:
        sizes.append(
            int(rng.choice([1, 2, 7, int(rng.integers(1, 400)), int(rng.integers(1, 40_000))]))
        )
    sizes[-1] -= sum(sizes) - total
    return [s for s in sizes if s > 0]


@pytest.mark.parametrize("rate", RATES)
def test_chunked_resampling_equals_one_shot(rate: int) -> None:
    samples = noise(int(1.7 * rate) + 13, seed=rate)
    reference = soxr.resample(samples, rate, 16000)
    resampler = Resampler(rate)
    pieces, position = [], 0
    for size in random_sizes(samples.size, seed=rate + 1):
        pieces.append(resampler.process(samples[position : position + size]))
        position += size
    pieces.append(resampler.flush())
    out = np.concatenate(pieces)
    assert out.shape == reference.shape
    assert np.max(np.abs(out - reference)) <= 1e-4


@pytest.mark.parametrize("rate", (8000, 44100))
def test_intake_s16le_stereo_bytes(rate: int) -> None:
    stereo = noise(rate, seed=5, channels=2)
    ints = np.round(stereo * 32767).astype("<i2")
    fmt = AudioFormat("s16le", rate, 2)
    intake = AudioIntake(fmt)
    data = ints.tobytes()
    pieces, position = [], 0
    for size in random_sizes(ints.shape[0], seed=9):
        pieces.append(intake.push(data[position * 4 : (position + size) * 4]))
        position += size
    pieces.append(intake.flush())
    mono = ints.astype(np.float32).mean(axis=1) / 32768
    reference = soxr.resample(mono.astype(np.float32), rate, 16000)
    out = np.concatenate(pieces)
    assert out.shape == reference.shape
    assert np.max(np.abs(out - reference)) <= 1e-4
    assert intake.received_samples == ints.shape[0]


def test_16k_is_passed_through() -> None:
    samples = noise(1234, seed=1)
    intake = AudioIntake(AudioFormat("f32le", 16000))
    out = intake.push(samples.astype("<f4").tobytes())
    assert np.array_equal(out, samples)
    assert intake.flush().size == 0


def test_float_arrays_are_downmixed() -> None:
    stereo = noise(100, seed=2, channels=2)
    intake = AudioIntake(AudioFormat("f32le", 16000, 2))
    assert np.allclose(intake.push(stereo), stereo.mean(axis=1))


@pytest.mark.parametrize(
    ("fmt", "size"),
    [
        (AudioFormat("s16le", 16000, 1), 3),
        (AudioFormat("s16le", 8000, 2), 6),
        (AudioFormat("f32le"), 5),
    ],
)
def test_partial_sample_is_refused(fmt: AudioFormat, size: int) -> None:
    with pytest.raises(AudioDataError, match="whole number"):
        decode(bytes(size), fmt)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_are_refused(bad: float) -> None:
    samples = noise(64, seed=3)
    samples[17] = bad
    fmt = AudioFormat("f32le")
    with pytest.raises(AudioDataError, match="NaN or infinite"):
        decode(samples.astype("<f4").tobytes(), fmt)
    with pytest.raises(AudioDataError, match="NaN or infinite"):
        AudioIntake(fmt).push(samples)


def test_wrong_array_shape_is_refused() -> None:
    with pytest.raises(AudioDataError, match="2-channel"):
        AudioIntake(AudioFormat("f32le", 16000, 2)).push(noise(10, seed=4))
    with pytest.raises(AudioDataError, match="float"):
        AudioIntake(AudioFormat("f32le")).push(np.zeros(4, dtype=np.int16))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sample_rate": 7999},
        {"sample_rate": 192_001},
        {"sample_rate": 16000.0},
        {"channels": 3},
        {"channels": 0},
        {"encoding": "u8"},
    ],
)
def test_bad_formats_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(AudioFormatError) as info:
        AudioFormat(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, AsrError)


def test_rate_limits_are_accepted() -> None:
    for rate in (8000, 192_000):
        intake = AudioIntake(AudioFormat("s16le", rate))
        out = np.concatenate([intake.push(bytes(2 * rate)), intake.flush()])
        assert out.shape == (16000,)
