"""Audio intake of one stream: raw frames in the client's format -> 16 kHz mono float32.

A frame may hold any number of whole samples (one sample to many seconds). Stereo is downmixed
by averaging the two channels. Any rate from 8 kHz to 192 kHz is resampled to the model rate with
soxr's streaming resampler, whose state carries over from frame to frame and which is flushed at
the end of the stream, so the concatenated output equals one-shot ``soxr.resample`` of the whole
recording.
"""

from __future__ import annotations

import numpy as np
import soxr
from numpy.typing import NDArray

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.errors import AudioDataError
from streamasr.server.options.audio import AudioFormat

AudioFrame = NDArray[np.float32]
"""Mono float samples, nominally in [-1, 1]."""

HOLD_SAMPLES = 1600
"""At most this many model-rate samples (100 ms) of plain frames wait in
:meth:`AudioIntake.hold`."""
RESAMPLE_QUALITY = "HQ"
"""soxr quality preset (the default of both ``soxr.resample`` and ``soxr.ResampleStream``)."""

_DTYPES: dict[str, str] = {"s16le": "<i2", "f32le": "<f4"}
_INT16_SCALE = np.float32(1.0 / 32768.0)
_S16 = np.dtype("<i2")


def decode(data: bytes | bytearray | memoryview, fmt: AudioFormat) -> AudioFrame:
    """Raw interleaved bytes -> mono float32 at ``fmt.sample_rate``.

    Raises:
        AudioDataError: the byte count is not a whole number of sample frames, or a float
            sample is NaN or infinite.
    """
    size = len(data)
    if size % fmt.frame_bytes:
        raise AudioDataError(
            f"{size} bytes is not a whole number of {fmt.encoding} x {fmt.channels}-channel "
            f"samples ({fmt.frame_bytes} bytes each)"
        )
    raw = np.frombuffer(data, dtype=_DTYPES[fmt.encoding])
    samples: AudioFrame
    if fmt.encoding == "s16le":
        samples = np.multiply(raw, _INT16_SCALE, dtype=np.float32)  # one float32 array, no temp
    else:
        samples = raw.astype(np.float32)
        _check_finite(samples)
    if fmt.channels == 1:
        return samples  # already a new contiguous array
    return _downmix(samples.reshape(-1, fmt.channels))


def from_array(samples: NDArray[np.floating], fmt: AudioFormat) -> AudioFrame:
    """Float samples, shape (n,) or (n, channels), -> mono float32 at ``fmt.sample_rate``.

    Raises:
        AudioDataError: wrong shape for the declared channel count, or NaN/Inf samples.
    """
    array = np.asarray(samples)
    if not np.issubdtype(array.dtype, np.floating):
        raise AudioDataError(f"expected float samples, got dtype {array.dtype}")
    if array.ndim == 1 and fmt.channels == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[1] != fmt.channels:
        raise AudioDataError(
            f"array of shape {array.shape} does not hold {fmt.channels}-channel audio"
        )
    out = array.astype(np.float32, copy=False)
    _check_finite(out)
    return _downmix(out)


def _check_finite(samples: NDArray[np.float32]) -> None:
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioDataError(f"{bad} sample(s) are NaN or infinite")


def _downmix(frames: NDArray[np.float32]) -> AudioFrame:
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    # (left + right) * 0.5 equals mean(axis=1) bit for bit, about five times faster on 20 ms
    # frames: numpy's reduction over a length-2 axis pays its setup per row.
    mono = frames[:, 0] + frames[:, 1]
    mono *= np.float32(0.5)
    return mono


class Resampler:
    """Streaming mono resampler to ``out_rate`` (identity when the rates are equal)."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream: soxr.ResampleStream | None = None
        if in_rate != out_rate:
            self._stream = soxr.ResampleStream(
                in_rate, out_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY
            )

    def process(self, samples: AudioFrame) -> AudioFrame:
        """Resample the next piece; the output lags the input by the filter's delay."""
        if self._stream is None:
            return samples
        out = self._stream.resample_chunk(samples)
        return np.asarray(out, dtype=np.float32)

    def flush(self) -> AudioFrame:
        """The samples still held in the filter; call once, at the end of the stream."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        out = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return np.asarray(out, dtype=np.float32)


class AudioIntake:
    """Decode, downmix and resample one stream's frames to 16 kHz mono float32."""

    def __init__(self, fmt: AudioFormat, out_rate: int = SAMPLE_RATE) -> None:
        self.format = fmt
        self._resampler = Resampler(fmt.sample_rate, out_rate)
        self._plain = fmt.encoding == "s16le" and fmt.channels == 1 and fmt.sample_rate == out_rate
        """16-bit mono at the model rate (the common case): decoded inline, nothing resampled."""
        self.received_samples = 0
        """Input sample frames accepted so far (at the client's rate), held ones included."""
        self._held = bytearray()
        """Plain frames accepted by :meth:`hold` and not decoded yet."""

    @property
    def received_seconds(self) -> float:
        return self.received_samples / self.format.sample_rate

    def push(self, data: bytes | bytearray | memoryview | NDArray[np.floating]) -> AudioFrame:
        """One frame of client audio -> the model-rate samples it completes."""
        if isinstance(data, np.ndarray):
            samples = from_array(data, self.format)
        elif self._plain and not len(data) & 1:  # what decode() does, without its checks
            samples = np.multiply(np.frombuffer(data, dtype=_S16), _INT16_SCALE, dtype=np.float32)
            self.received_samples += samples.shape[0]
            return samples
        else:
            samples = decode(data, self.format)
        self.received_samples += samples.shape[0]
        return self._resampler.process(samples)

    def hold(
        self, data: bytes | bytearray | memoryview | NDArray[np.floating], due: int
    ) -> AudioFrame | None:
        """:meth:`push`, except that plain frames (16-bit mono at the model rate) wait until
        ``due`` samples (what completes the caller's next window) or :data:`HOLD_SAMPLES` are
        there; None while they wait. One decode of many frames costs less than one per frame,
        and the next window is complete exactly when it would have been. A bad frame raises as
        in :meth:`push`, and the frames held before it stay held."""
        if isinstance(data, np.ndarray) or not self._plain or len(data) & 1:
            samples = self.push(data)
            return np.concatenate([self._release(), samples]) if self._held else samples
        self._held += data
        self.received_samples += len(data) >> 1
        if len(self._held) >> 1 < min(due, HOLD_SAMPLES):
            return None
        return self._release()

    def hold_room(self, due: int) -> int:
        """Bytes of plain frames :meth:`hold` would keep waiting (given the same ``due``):
        frames adding up to fewer are held, the one that reaches it releases them all. 0
        when frames are not plain (each is decoded as it comes)."""
        if not self._plain:
            return 0
        return max(0, min(due, HOLD_SAMPLES) - (len(self._held) >> 1)) << 1

    def _release(self) -> AudioFrame:
        """The held frames, decoded (already counted as received)."""
        samples = np.multiply(np.frombuffer(self._held, dtype=_S16), _INT16_SCALE, dtype=np.float32)
        self._held = bytearray()
        return samples

    def flush(self) -> AudioFrame:
        """End of stream: the held frames and the resampler's remaining output."""
        if self._held:
            return np.concatenate([self._release(), self._resampler.flush()])
        return self._resampler.flush()
