"""The numpy filter-bank features against transformers' SeamlessM4TFeatureExtractor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from streamasr.server.engine.features import fbank_features, num_frames
from streamasr.server.manifest import FBANK_HOP, FBANK_WINDOW

TOLERANCE = 1e-4
SPEECH_FILE = Path("speech/dev/human/1089-134686-0000.flac")


@pytest.fixture(scope="module")
def extractor() -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.SeamlessM4TFeatureExtractor()


def reference(
    extractor: Any, samples: NDArray[np.float32], *, normalize: bool = True
) -> NDArray[np.float32]:
    """The extractor's valid (unmasked) stacked frames for one unpadded utterance."""
    out = extractor(
        samples,
        sampling_rate=16000,
        return_tensors="np",
        do_normalize_per_mel_bins=normalize,
    )
    features = np.asarray(out["input_features"])
    mask = np.asarray(out["attention_mask"])
    assert features.shape[0] == 1 and mask.shape == features.shape[:2]
    valid = int(mask[0].sum())
    # A single input is only padded at the end (an odd frame count is padded to even).
    assert mask[0, :valid].all() and not mask[0, valid:].any()
    return np.asarray(features[0, :valid], dtype=np.float32)


def noise(length: int, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, length).astype(np.float32)


def sweep(seconds: float = 1.5, low: float = 50.0, high: float = 7900.0) -> NDArray[np.float32]:
    """Exponential sine sweep at 16 kHz, amplitude 0.8."""
    t = np.arange(int(seconds * 16000)) / 16000.0
    rate = np.log(high / low) / seconds
    phase = 2.0 * np.pi * low * (np.exp(rate * t) - 1.0) / rate
    return (0.8 * np.sin(phase)).astype(np.float32)


def assert_matches(ours: NDArray[np.float32], theirs: NDArray[np.float32]) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape
    assert np.isfinite(ours).all()
    diff = float(np.max(np.abs(ours - theirs)))
    assert diff <= TOLERANCE, f"max abs diff {diff:.3g} > {TOLERANCE}"


# 0.3 s, 1 s + 1 sample, 1 s + 161 samples (odd frame count), 1.7 s, 10 s
@pytest.mark.parametrize("length", [4800, 16001, 16161, 27200, 160000])
@pytest.mark.parametrize("normalize", [True, False])
def test_noise_matches_reference(extractor: Any, length: int, normalize: bool) -> None:
    samples = noise(length, seed=length)
    ours = fbank_features(samples, normalize=normalize)
    assert ours.shape == (num_frames(length) // 2, 160)
    assert_matches(ours, reference(extractor, samples, normalize=normalize))


@pytest.mark.parametrize("normalize", [True, False])
def test_sweep_matches_reference(extractor: Any, normalize: bool) -> None:
    samples = sweep()
    assert_matches(
        fbank_features(samples, normalize=normalize),
        reference(extractor, samples, normalize=normalize),
    )


@pytest.mark.parametrize("normalize", [True, False])
def test_speech_matches_reference(extractor: Any, shared_dir: Path, normalize: bool) -> None:
    soundfile = pytest.importorskip("soundfile")
    samples, rate = soundfile.read(shared_dir / SPEECH_FILE, dtype="float32")
    assert rate == 16000 and samples.ndim == 1
    assert_matches(
        fbank_features(samples, normalize=normalize),
        reference(extractor, samples, normalize=normalize),
    )


def test_other_geometry_matches_reference() -> None:
    transformers = pytest.importorskip("transformers")
    other = transformers.SeamlessM4TFeatureExtractor(feature_size=64, num_mel_bins=64, stride=3)
    samples = noise(8160, seed=3)  # 49 frames: padded to 50, then 2 dropped
    ours = fbank_features(samples, num_mel_bins=64, stack_stride=3)
    assert ours.shape == (num_frames(8160) // 3, 192)
    # For stride 3 the reference's mask only looks at the middle frame of each row, so it is not
    # a reliable count; its leading num_frames // 3 rows are the ones built from real frames.
    out = other(samples, sampling_rate=16000, return_tensors="np")
    assert_matches(ours, np.asarray(out["input_features"][0, : ours.shape[0]], dtype=np.float32))


@pytest.mark.parametrize(
    ("length", "frames"),
    [(560, 2), (719, 2), (720, 3), (16000, 98), (16161, 99), (27200, 168), (160000, 998)],
)
def test_frame_count(extractor: Any, length: int, frames: int) -> None:
    assert num_frames(length) == frames == 1 + (length - FBANK_WINDOW) // FBANK_HOP
    samples = noise(length, seed=1)
    ours = fbank_features(samples)
    assert ours.shape == (frames // 2, 160)
    assert reference(extractor, samples).shape == ours.shape


@pytest.mark.parametrize("length", [0, 1, 200, 399, 400, 559])
def test_short_input_is_empty(length: int) -> None:
    ours = fbank_features(noise(length))
    assert ours.shape == (0, 160) and ours.dtype == np.float32
    assert fbank_features(noise(length), num_mel_bins=40, stack_stride=4).shape == (0, 160)


def test_single_frame_without_stacking() -> None:
    samples = noise(FBANK_WINDOW)
    assert fbank_features(samples, stack_stride=1).shape == (1, 80)
    # ddof=1 variance of one frame is undefined; the normalised frame is all zeros, not NaN.
    assert not fbank_features(samples, stack_stride=1).any()
    assert fbank_features(samples, stack_stride=1, normalize=False).all()


def test_silence_is_finite() -> None:
    ours = fbank_features(np.zeros(16000, dtype=np.float32))
    assert ours.shape == (49, 160)
    assert np.abs(ours).max() < 1e-6  # constant log-mel normalises to (about) zero
    raw = fbank_features(np.zeros(16000, dtype=np.float32), normalize=False)
    assert np.allclose(raw, np.log(np.float32(1.192092955078125e-07)))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="1-D"):
        fbank_features(np.zeros((2, 16000), dtype=np.float32))
    with pytest.raises(ValueError, match="1-D"):
        fbank_features(np.zeros((), dtype=np.float32))
    with pytest.raises(ValueError, match=">= 1"):
        fbank_features(noise(16000), stack_stride=0)
    with pytest.raises(ValueError, match=">= 1"):
        fbank_features(noise(16000), num_mel_bins=0)


def test_serving_import_has_no_torch() -> None:
    code = (
        "import sys, streamasr.server.engine.features\n"
        "loaded = {'torch', 'transformers'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
