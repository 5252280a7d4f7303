"""Cut a stream into model windows: left context + hop + lookahead, aligned on output frames.

Frame geometry: the model's output frame ``i`` (global, counted from the stream's first sample)
sees samples ``[stride * i, stride * i + receptive_field)``; ``stride`` is the manifest's
``frame_stride`` (320 samples, 20 ms at 16 kHz, unless an adapter downsamples further). A window
that starts at sample ``s`` (a multiple of the stride) and holds ``k * stride + overhang``
samples, where ``overhang = receptive_field - stride``, yields exactly ``k`` frames, global frames
``s / stride`` to ``s / stride + k - 1``.

A steady window keeps the ``hop`` frames after its left context and shows the ``lookahead``
frames after them as provisional. The first windows have less (or no) left context, because
the stream has no earlier audio, exactly like the offline run. At the end of the stream one last
window runs from the left context to the last sample, so that the frames kept over the whole
stream are those of one whole-utterance run: ``InputSpec.num_frames(total samples)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from streamasr.server.errors import ModelGeometryError, StreamConfigError
from streamasr.server.manifest import InputSpec

Samples = NDArray[np.float32]
"""16 kHz mono float samples."""


@dataclass(frozen=True)
class WindowPlan:
    """Left context, hop and lookahead of a stream's windows, in samples (stride multiples)."""

    left: int
    hop: int
    lookahead: int
    stride: int = 320

    def __post_init__(self) -> None:
        for name, value in (("left", self.left), ("hop", self.hop), ("lookahead", self.lookahead)):
            if value < 0 or value % self.stride:
                raise StreamConfigError(
                    name, value, f"a non-negative multiple of {self.stride} samples"
                )
        if self.hop == 0:
            raise StreamConfigError("hop", self.hop, "at least one frame")

    @classmethod
    def from_seconds(
        cls, left_s: float, hop_s: float, lookahead_s: float, spec: InputSpec
    ) -> WindowPlan:
        """Plan from seconds; each value must be a whole number of output frames."""
        values = []
        frame_ms = 1000 * spec.frame_stride / spec.sample_rate
        for name, seconds in (("left_s", left_s), ("hop_s", hop_s), ("lookahead_s", lookahead_s)):
            frames = seconds * spec.sample_rate / spec.frame_stride
            if abs(frames - round(frames)) > 1e-6:
                raise StreamConfigError(name, seconds, f"a multiple of {frame_ms:g} ms")
            values.append(round(frames) * spec.frame_stride)
        return cls(values[0], values[1], values[2], spec.frame_stride)

    @property
    def hop_frames(self) -> int:
        return self.hop // self.stride

    @property
    def lookahead_frames(self) -> int:
        return self.lookahead // self.stride


@dataclass(frozen=True)
class Window:
    """One model run's audio and which of its output frames to keep."""

    index: int
    """Position of the window in its stream (0, 1, ...)."""
    samples: Samples
    start: int
    """Stream sample index of ``samples[0]`` (a multiple of the stride)."""
    first_frame: int
    """Global index of the window's first output frame (``start // stride``)."""
    num_frames: int
    """Output frames the model produces for this window."""
    keep_start: int
    keep_stop: int
    """Local frames ``[keep_start, keep_stop)`` are committed; ``[keep_stop, num_frames)`` are
    lookahead, shown only as a provisional tail."""
    final: bool
    """The stream's last window."""

    @property
    def end(self) -> int:
        """Stream sample index just past the window: the audio it waits for."""
        return self.start + int(self.samples.shape[0])

    @property
    def kept_frames(self) -> int:
        return self.keep_stop - self.keep_start


class Windower(Protocol):
    """Turns a stream's samples into windows, in order."""

    def push(self, samples: Samples) -> list[Window]:
        """Append samples; return the windows they complete."""
        ...

    def due(self) -> int:
        """Samples still to come before the next window is complete."""
        ...

    def finish(self) -> list[Window]:
        """End of stream: the last window(s), covering every remaining frame."""
        ...


class SampleBuffer:
    """Growable buffer addressed by stream sample index; drops its head cheaply.

    Appends are amortised O(1) per sample, so one-sample frames cost no more than long ones.
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._data = np.zeros(max(capacity, 1), dtype=np.float32)
        self._offset = 0
        """Stream index of ``_data[0]``."""
        self._size = 0

    @property
    def start(self) -> int:
        return self._offset

    @property
    def end(self) -> int:
        """Stream index just past the last sample received."""
        return self._offset + self._size

    def append(self, samples: Samples) -> None:
        n = samples.shape[0]
        if self._size + n > self._data.shape[0]:
            grown = np.zeros(max(2 * self._data.shape[0], self._size + n), dtype=np.float32)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : self._size + n] = samples
        self._size += n

    def read(self, start: int, stop: int) -> Samples:
        """A copy of stream samples ``[start, stop)``; both must lie in the buffer."""
        if start < self._offset or stop > self.end or start > stop:
            raise IndexError(
                f"[{start}, {stop}) is outside the buffer [{self._offset}, {self.end})"
            )
        return self._data[start - self._offset : stop - self._offset].copy()

    def drop_before(self, index: int) -> None:
        """Forget the samples before stream index ``index``."""
        cut = min(max(index - self._offset, 0), self._size)
        if cut == 0:
            return
        self._data[: self._size - cut] = self._data[cut : self._size]
        self._size -= cut
        self._offset += cut


def check_geometry(spec: InputSpec, plan: WindowPlan, model: str = "model") -> int:
    """The window overhang (samples past the last frame's stride) after checking the frame rule.

    Raises:
        ModelGeometryError: the model's frame count is not ``k`` for ``k * stride + overhang``
            samples (for instance an adapter that pads), so windows cannot map onto global frames.
    """
    if plan.stride != spec.frame_stride:
        raise ModelGeometryError(
            model, f"plan stride {plan.stride} differs from the frame stride {spec.frame_stride}"
        )
    overhang = spec.receptive_field - spec.frame_stride
    frames = {1, 2, plan.hop_frames, plan.hop_frames + plan.lookahead_frames}
    frames.add((plan.left + plan.hop + plan.lookahead) // plan.stride)
    for k in sorted(frames):
        got = spec.num_frames(k * spec.frame_stride + overhang)
        if got != k:
            raise ModelGeometryError(
                model,
                f"{k * spec.frame_stride + overhang} samples give {got} frames, not {k}: "
                "windows cannot be aligned on output frames",
            )
    return overhang


class SlidingWindower:
    """Streaming windows of ``plan`` over one stream (see the module docstring)."""

    def __init__(self, plan: WindowPlan, spec: InputSpec, model: str = "model") -> None:
        self.plan = plan
        self.spec = spec
        self._overhang = check_geometry(spec, plan, model)
        self._buffer = SampleBuffer(plan.left + plan.hop + plan.lookahead + self._overhang)
        self._next_frame = 0
        """Global index of the first frame not yet kept."""
        self._count = 0
        self._finished = False

    def push(self, samples: Samples) -> list[Window]:
        self._buffer.append(samples)
        windows: list[Window] = []
        while (end := self._next_end()) <= self._buffer.end:
            windows.append(self._cut(end, self._next_frame + self.plan.hop_frames, final=False))
        return windows

    def due(self) -> int:
        return max(0, self._next_end() - self._buffer.end)

    def _next_end(self) -> int:
        """Stream index just past the next window's last sample."""
        stop_frame = self._next_frame + self.plan.hop_frames
        return stop_frame * self.plan.stride + self._overhang + self.plan.lookahead

    def finish(self) -> list[Window]:
        if self._finished:
            return []
        self._finished = True
        end = self._buffer.end
        total = self.spec.num_frames(end)
        if total <= self._next_frame:
            return []
        return [self._cut(end, total, final=True)]

    def _cut(self, end: int, stop_frame: int, *, final: bool) -> Window:
        stride = self.plan.stride
        start = max(0, self._next_frame * stride - self.plan.left)
        first = start // stride
        window = Window(
            index=self._count,
            samples=self._buffer.read(start, end),
            start=start,
            first_frame=first,
            num_frames=self.spec.num_frames(end - start),
            keep_start=self._next_frame - first,
            keep_stop=stop_frame - first,
            final=final,
        )
        self._count += 1
        self._next_frame = stop_frame
        self._buffer.drop_before(self._next_frame * stride - self.plan.left)
        return window


class WholeWindower:
    """The offline reference: the whole stream as one window, every frame kept."""

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self._buffer = SampleBuffer()
        self._finished = False

    def push(self, samples: Samples) -> list[Window]:
        self._buffer.append(samples)
        return []

    def due(self) -> int:
        return 1 << 62  # the one window comes at the end

    def finish(self) -> list[Window]:
        if self._finished:
            return []
        self._finished = True
        total = self.spec.num_frames(self._buffer.end)
        if total == 0:
            return []
        samples = self._buffer.read(0, self._buffer.end)
        self._buffer.drop_before(self._buffer.end)
        return [Window(0, samples, 0, 0, total, 0, total, final=True)]
