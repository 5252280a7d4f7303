"""Audio intake: decoding, downmixing, streaming resampling and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from numpy.typing import NDArray

from streamasr.server.engine.audio import HOLD_SAMPLES, AudioIntake, Resampler, decode
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


def s16_frames(samples: NDArray[np.float32], size: int) -> list[bytes]:
    data = (samples * 32767).astype("<i2").tobytes()
    return [data[i : i + 2 * size] for i in range(0, len(data), 2 * size)]


def test_plain_frames_wait_until_the_next_window_is_due() -> None:
    frames = s16_frames(noise(3200, seed=5), 320)
    held, reference = AudioIntake(AudioFormat()), AudioIntake(AudioFormat())
    out = [held.hold(f, due=1000) for f in frames[:4]]
    assert out[:3] == [None, None, None] and out[3] is not None  # 1,280 >= 1,000 samples
    expected = np.concatenate([reference.push(f) for f in frames[:4]])
    np.testing.assert_array_equal(out[3], expected)
    assert held.received_samples == reference.received_samples == 1280


def test_held_frames_are_capped_and_flushed_at_the_end() -> None:
    frames = s16_frames(noise(8000, seed=6), 320)
    intake = AudioIntake(AudioFormat())
    released = [intake.hold(f, due=1 << 40) for f in frames]
    sizes = [r.shape[0] for r in released if r is not None]
    assert sizes and set(sizes) == {HOLD_SAMPLES}  # 1,600 samples: five 20 ms frames
    assert intake.flush().shape[0] == 8000 - sum(sizes)


def test_a_bad_frame_raises_and_the_held_frames_stay() -> None:
    frames = s16_frames(noise(960, seed=7), 320)
    intake, reference = AudioIntake(AudioFormat()), AudioIntake(AudioFormat())
    assert intake.hold(frames[0], due=900) is None
    with pytest.raises(AudioDataError, match="not a whole number"):
        intake.hold(b"\x01\x02\x03", due=900)
    assert intake.hold(frames[1], due=900) is None
    out = intake.hold(noise(320, seed=8), due=900)  # float samples release the held ones first
    assert out is not None
    expected = np.concatenate([reference.push(frames[0]), reference.push(frames[1])])
    np.testing.assert_array_equal(out[:640], expected)
    np.testing.assert_array_equal(out[640:], noise(320, seed=8))


def test_other_formats_are_never_held() -> None:
    intake = AudioIntake(AudioFormat(sample_rate=48000))
    frame = s16_frames(noise(960, seed=9), 960)[0]
    out = intake.hold(frame, due=1 << 40)
    assert out is not None
    assert intake.hold_room(due=1 << 40) == 0  # nothing for a caller to gather either


@pytest.mark.parametrize("due", [1, 700, 1000, 1600, 5000])
def test_hold_room_is_what_hold_keeps(due: int) -> None:
    """Frames adding up to less than ``hold_room`` bytes are held; the one that reaches it
    releases them all (what lets the session gather frames and hand them in as one)."""
    frames = s16_frames(noise(4000, seed=10), 160)
    intake = AudioIntake(AudioFormat())
    assert intake.hold(frames[0], due) is None or due <= 160
    room, gathered = intake.hold_room(due), 0
    for frame in frames[1:]:
        gathered += len(frame)
        released = intake.hold(frame, due)
        assert (released is None) == (gathered < room), (gathered, room)
        if released is not None:
            break
