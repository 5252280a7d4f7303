"""Kaldi-style log-mel filter-bank features for Wav2Vec2-BERT (w2v-bert-2.0) models, numpy only.

Reproduces transformers' ``SeamlessM4TFeatureExtractor`` (to within 1e-4) without importing torch
or transformers, so it can run in the serving process:

1. scale the [-1, 1] samples to the 16-bit integer range (Kaldi convention);
2. cut 25 ms frames every 10 ms (400 / 160 samples at 16 kHz, no centre padding);
3. per frame: remove the DC offset, pre-emphasise (0.97, first sample scaled by 0.03), apply the
   symmetric Povey window (Hann ** 0.85);
4. power spectrum of a 512-point real FFT, an 80-bin Kaldi mel filter bank (20 Hz to Nyquist,
   triangles built on the mel axis), floored at float32 epsilon, natural log;
5. optionally normalise each mel bin to zero mean / unit variance over time (ddof=1, epsilon 1e-7);
6. stack ``stack_stride`` consecutive frames into one feature vector, dropping the remainder.

Everything runs in float64 and is rounded to float32 at the end. One deliberate difference: for an
odd frame count the reference pads one zero frame so the last stacked row is half padding (and
masked out by its attention mask); here that row is simply not produced.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.manifest import FBANK_HOP, FBANK_WINDOW

FbankArray = NDArray[np.float32]
"""(frames, num_mel_bins * stack_stride) features of one utterance."""

FFT_LENGTH = 512
"""FFT size; each frame is zero-padded to it."""

_NUM_FFT_BINS = FFT_LENGTH // 2 + 1
_INT16_SCALE = 2.0**15
_PREEMPHASIS = 0.97
_MEL_LOW_HZ = 20.0
_MEL_FLOOR = 1.192092955078125e-07  # float32 machine epsilon
_NORM_EPSILON = 1e-7
_BLOCK_FRAMES = 128  # frames per FFT block (1.28 s), keeps buffers cache-sized


def num_frames(num_samples: int) -> int:
    """Number of 10 ms analysis frames (before stacking) for ``num_samples`` samples."""
    if num_samples < FBANK_WINDOW:
        return 0
    return 1 + (num_samples - FBANK_WINDOW) // FBANK_HOP


def _readonly(array: NDArray[np.float64]) -> NDArray[np.float64]:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=1)
def _povey_window() -> NDArray[np.float64]:
    """Symmetric Hann window raised to the power 0.85 (Kaldi's "povey"), shape (FBANK_WINDOW,)."""
    n = np.arange(FBANK_WINDOW, dtype=np.float64)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / (FBANK_WINDOW - 1))
    return _readonly(np.power(hann, 0.85))


def _kaldi_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    return 1127.0 * np.log1p(hz / 700.0)


@functools.lru_cache(maxsize=8)
def _mel_filters(num_mel_bins: int) -> NDArray[np.float64]:
    """Triangular Kaldi mel filters, shape (FFT_LENGTH // 2 + 1, num_mel_bins).

    The triangles are linear on the mel axis: filter ``j`` rises from mel edge ``j`` to ``j + 1``
    and falls to ``j + 2``, with the ``num_mel_bins + 2`` edges spaced evenly in mel between
    20 Hz and the Nyquist frequency.
    """
    edges_hz = np.array([_MEL_LOW_HZ, SAMPLE_RATE / 2], dtype=np.float64)
    low, high = _kaldi_mel(edges_hz)
    edges = np.linspace(low, high, num_mel_bins + 2)
    bin_hz = np.arange(_NUM_FFT_BINS, dtype=np.float64) * (SAMPLE_RATE / FFT_LENGTH)
    bin_mel = _kaldi_mel(bin_hz)[:, None]
    left, centre, right = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    return _readonly(np.maximum(0.0, np.minimum(rising, falling)))


def _log_mel(waveform: NDArray[np.generic], total: int, num_mel_bins: int) -> NDArray[np.float64]:
    """Log-mel energies of the first ``total`` frames, shape (total, num_mel_bins), float64.

    Frames are processed in blocks of ``_BLOCK_FRAMES`` through a few buffers allocated once per
    call: whole-utterance temporaries (several MB for 10 s) made this about three times slower,
    most of it spent page-faulting freshly allocated memory.
    """
    scaled = waveform.astype(np.float64)
    scaled *= _INT16_SCALE
    frames = sliding_window_view(scaled, FBANK_WINDOW)[::FBANK_HOP][:total]  # a strided view
    means = frames.mean(axis=1, keepdims=True)
    window = _povey_window()
    filters = _mel_filters(num_mel_bins)

    logmel = np.empty((total, num_mel_bins), dtype=np.float64)
    block = min(_BLOCK_FRAMES, total)
    padded = np.zeros((block, FFT_LENGTH), dtype=np.float64)  # columns >= FBANK_WINDOW stay 0
    shifted = np.empty((block, FBANK_WINDOW - 1), dtype=np.float64)
    power = np.empty((block, _NUM_FFT_BINS), dtype=np.float64)
    imag_sq = np.empty((block, _NUM_FFT_BINS), dtype=np.float64)
    for start in range(0, total, block):
        stop = min(start + block, total)
        n = stop - start
        frame = padded[:n, :FBANK_WINDOW]
        np.subtract(frames[start:stop], means[start:stop], out=frame)  # remove DC offset
        np.multiply(frame[:, :-1], _PREEMPHASIS, out=shifted[:n])
        frame[:, 1:] -= shifted[:n]
        frame[:, 0] *= 1.0 - _PREEMPHASIS
        frame *= window
        spectrum = np.fft.rfft(padded[:n], axis=1)
        np.square(spectrum.real, out=power[:n])
        np.square(spectrum.imag, out=imag_sq[:n])
        power[:n] += imag_sq[:n]
        np.matmul(power[:n], filters, out=logmel[start:stop])
    np.maximum(logmel, _MEL_FLOOR, out=logmel)
    np.log(logmel, out=logmel)
    return logmel


def fbank_features(
    samples: NDArray[np.float32],
    *,
    num_mel_bins: int = 80,
    stack_stride: int = 2,
    normalize: bool = True,
) -> FbankArray:
    """16 kHz mono float samples in [-1, 1] -> (frames, num_mel_bins*stack_stride) float32.

    Args:
        samples: 1-D waveform at 16 kHz, values in [-1, 1].
        num_mel_bins: mel filters per 10 ms frame.
        stack_stride: consecutive 10 ms frames concatenated into one output row; trailing frames
            that do not fill a whole row are dropped, so there are ``num_frames(len) //
            stack_stride`` rows.
        normalize: normalise every mel bin to zero mean and unit variance over the utterance
            (sample variance, ddof=1; computed over all frames, including dropped trailing ones).

    Returns:
        float32 array of shape ``(num_frames(len(samples)) // stack_stride,
        num_mel_bins * stack_stride)``; zero rows when the input holds fewer than
        ``stack_stride`` frames (for instance anything shorter than 400 samples).

    Raises:
        ValueError: if ``samples`` is not one-dimensional or a size argument is below 1.
    """
    waveform = np.asarray(samples)
    if waveform.ndim != 1:
        raise ValueError(
            f"fbank_features expects 1-D mono samples, got an array of shape {waveform.shape}"
        )
    if num_mel_bins < 1 or stack_stride < 1:
        raise ValueError(
            f"num_mel_bins and stack_stride must be >= 1, got {num_mel_bins} and {stack_stride}"
        )
    width = num_mel_bins * stack_stride
    total = num_frames(waveform.shape[0])
    if total < stack_stride:
        return np.zeros((0, width), dtype=np.float32)

    logmel = _log_mel(waveform, total, num_mel_bins)
    if normalize:
        logmel -= logmel.mean(axis=0)
        # ddof=1 is undefined for a single frame (the reference yields NaN); treat it as 0.
        var = logmel.var(axis=0, ddof=1) if total > 1 else np.zeros(num_mel_bins)
        logmel /= np.sqrt(var + _NORM_EPSILON)

    rows = total // stack_stride
    stacked = logmel[: rows * stack_stride].reshape(rows, width)
    return stacked.astype(np.float32)
