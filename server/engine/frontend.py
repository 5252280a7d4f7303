"""Turn 16 kHz samples into what a graph takes: normalised waveform or filter banks."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.features import fbank_features
from streamasr.server.manifest import InputSpec

Samples = NDArray[np.float32]
"""16 kHz mono float samples in [-1, 1]."""

NORM_EPS = 1e-7
"""Variance floor of the per-window normalisation (as Wav2Vec2FeatureExtractor)."""


def model_input(samples: Samples, spec: InputSpec) -> NDArray[np.float32]:
    """One window's graph input without the batch axis: (samples,) or (frames, features)."""
    if spec.kind == "fbank":
        return fbank_features(
            samples,
            num_mel_bins=spec.num_mel_bins,
            stack_stride=spec.stack_stride,
            normalize=spec.normalize,
        )
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if not spec.normalize:
        return x
    mean = float(x.mean(dtype=np.float64))
    scale = 1.0 / float(np.sqrt(float(x.var(dtype=np.float64)) + NORM_EPS))
    out = x - np.float32(mean)  # a new float32 array: the window's samples stay as they are
    out *= np.float32(scale)
    return out
