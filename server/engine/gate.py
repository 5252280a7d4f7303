"""Voice-activity gates: the frames a window commits decide whether, and on what, the model runs.

Two gates share one interface (:class:`Gate`): the energy gate below, and Silero VAD
(:class:`VadGateConfig`, run by :mod:`.vad`). ``--gate`` / the ``start`` field ``gate`` name one
of :data:`GATE_KINDS`; :func:`gate_config` turns the name into the stream's gate setting.

**The rule.** A gate marks each output frame of a window that may hold speech, widened by
``pad_s`` on both sides (the onset and offset margin). Only the frames a window *commits* (its
hop) decide: a window none of whose hop frames is marked is skipped, whatever its left context
and lookahead hold, and its frames decode as blanks. Otherwise the model runs on the marked
stretches that reach into the hop (a stretch runs on into the context while it stays marked, so
speech that continues across the hop's edges keeps its context), joined across unmarked gaps
shorter than :data:`SPLIT_GAP_FRAMES` and spliced at stride boundaries into one input. Where
the windows of several streams run as one batch, its length is rounded up to
:data:`RUN_QUANTUM_FRAMES` (few input shapes, so streams still batch); where each window runs
alone (int8 on CPU, Triton's int8 model) it is not rounded, which saves about 1.4 pt more input
(docs/streaming.md).
Frames outside the run decode as blanks; lookahead frames outside it show nothing (the
provisional tail may be shorter or empty). Every frame is still decided exactly once, by the
window that commits it (:func:`window_run`, :class:`GateRuns`).

The energy gate is cheap but fooled by noise (see docs/streaming.md, "Gates under noise"): a
frame is marked when its energy is at least ``margin_db`` above the stream's noise floor and
above ``silence_db``. The noise floor is a low percentile of the frame energies of the stream's
last few seconds, so it follows the background level without a fixed threshold.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from streamasr.server.arrays import Logits
from streamasr.server.engine.windows import Samples, Window
from streamasr.server.manifest import InputSpec
from streamasr.server.options.gate import RUN_QUANTUM_FRAMES, GateConfig

_POWER_FLOOR = 1e-10
"""Power floor of the frame energies (-100 dBFS), so digital silence stays finite."""
BLANK_MARGIN = 30.0
"""Logit margin of the blank in frames no model run decided (softmax probability ~1)."""
SPLIT_GAP_FRAMES = 25
"""Unmarked frames (0.5 s, margins excluded) that split a window's speech into two stretches."""


Mask = NDArray[np.bool_]
"""One flag per output frame of a window: the frame may hold speech (margins included)."""


@dataclass(frozen=True)
class Run:
    """What the model runs on for one window: stretches ``[first, stop)`` of its local output
    frames, in order, their samples spliced at stride boundaries into one input."""

    stretches: tuple[tuple[int, int], ...]

    @property
    def frames(self) -> int:
        return sum(stop - first for first, stop in self.stretches)

    def whole(self, num_frames: int) -> bool:
        return self.stretches == ((0, num_frames),)


class Gate(Protocol):
    """A per-stream voice-activity decision over windows, called on every window in order."""

    prepares: bool
    """Whether :meth:`prepare` does real work (a model run) that belongs off the event loop."""

    def accept(self, samples: Samples, windows: list[Window]) -> None:
        """The stream's next samples, as they arrive, and the windows they completed (a gate
        that runs a model can start on the audio before its windows are judged); cheap, on the
        stream's thread."""
        ...

    def prepare(self, windows: list[Window]) -> None:
        """Get ready to judge ``windows`` (the next ones, in order); blocking."""
        ...

    def speech_frames(self, window: Window) -> Mask:
        """Which of the window's ``num_frames`` output frames may hold speech."""
        ...


class JudgesInline:
    """For gates that judge each window as it comes (nothing to :meth:`~Gate.prepare`)."""

    prepares = False

    def accept(self, samples: Samples, windows: list[Window]) -> None:
        """Nothing to do ahead: the window holds what the gate reads."""

    def prepare(self, windows: list[Window]) -> None:
        """Nothing to prepare."""


def is_silent(gate: Gate, window: Window) -> bool:
    """True when no frame ``window`` commits may hold speech: the window is skipped."""
    return not bool(gate.speech_frames(window)[window.keep_start : window.keep_stop].any())


def frame_energies_db(samples: Samples, frame: int) -> NDArray[np.float64]:
    """Mean-square energy in dBFS of each whole ``frame``-sample frame."""
    n = samples.shape[0] // frame
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    blocks = samples[: n * frame].reshape(n, frame).astype(np.float64)
    power = np.mean(blocks * blocks, axis=1)
    return np.asarray(10.0 * np.log10(power + _POWER_FLOOR), dtype=np.float64)


def speech_mask(window: Window, spans: Iterable[tuple[int, int]], pad: int, stride: int) -> Mask:
    """Frames of ``window`` (``[stride g, stride (g + 1))`` for global frame ``g``) within ``pad``
    samples of a speech span (stream sample indices ``[start, end)``)."""
    starts = (window.first_frame + np.arange(window.num_frames)) * stride
    mask = np.zeros(window.num_frames, dtype=np.bool_)
    merged: list[list[int]] = []  # the padded spans' union: one array pass per stretch
    for start, end in sorted(spans):
        if merged and start - pad <= merged[-1][1] + pad:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in merged:
        mask |= (starts < end + pad) & (starts + stride > start - pad)
    return mask


class EnergyGate(JudgesInline):
    """Per-stream energy gate over windows (see the module docstring)."""

    def __init__(self, config: GateConfig, stride: int, sample_rate: int) -> None:
        self.config = config
        self.stride = stride
        self._pad = round(config.pad_s * sample_rate)
        self._reach = (stride + self._pad - 1) // stride
        """Frames within ``pad`` samples of a frame are at most this many frames from it."""
        self._history = np.zeros(max(1, round(config.history_s * sample_rate / stride)))
        """A ring of the energies of the last committed frames (their order does not matter)."""
        self._filled = 0
        self._at = 0
        self._speech_end: int | None = None
        """Stream index just past the last speech frame seen (its offset margin may reach on)."""

    def speech_frames(self, window: Window) -> Mask:
        """Mark the window's loud frames; the floor learns from the frames it commits.

        The same marks as :func:`speech_mask` over one span per loud frame (and the last
        speech frame seen), computed as a dilation by ``pad`` in whole frames."""
        energies = frame_energies_db(window.samples, self.stride)[: window.num_frames]
        self._remember(energies[window.keep_start : window.keep_stop])
        history = self._history[: self._filled]
        floor = low_percentile(history, self.config.floor_percentile) if history.size else 0.0
        loud = (energies >= self.config.silence_db) & (energies >= floor + self.config.margin_db)
        found = np.flatnonzero(loud)
        if found.size:
            end = (window.first_frame + int(found[-1]) + 1) * self.stride
            self._speech_end = max(self._speech_end or 0, end)
        n, reach = window.num_frames, self._reach
        counts = np.zeros(n + 1, dtype=np.int64)  # counts[j]: loud frames before frame j
        counts[1 : loud.shape[0] + 1] = np.cumsum(loud)
        counts[loud.shape[0] + 1 :] = counts[loud.shape[0]]
        frames = np.arange(n)
        mask = counts[np.minimum(frames + reach + 1, n)] > counts[np.maximum(frames - reach, 0)]
        if self._speech_end is not None:
            last = self._speech_end // self.stride - 1 - window.first_frame
            mask[max(0, last - reach) : max(0, last + reach + 1)] = True
        return mask

    def _remember(self, energies: NDArray[np.float64]) -> None:
        """Add committed frames' energies to the ring, dropping the oldest."""
        ring = self._history
        new = energies[-ring.shape[0] :]
        first = min(new.shape[0], ring.shape[0] - self._at)
        ring[self._at : self._at + first] = new[:first]
        ring[: new.shape[0] - first] = new[first:]
        self._at = (self._at + new.shape[0]) % ring.shape[0]
        self._filled = min(ring.shape[0], self._filled + new.shape[0])


def low_percentile(values: NDArray[np.float64], percentile: float) -> float:
    """``np.percentile(values, percentile)`` (linear), the same float, from a partial sort of
    the two order statistics it interpolates (numpy's virtual index and ``_lerp``)."""
    n = int(values.shape[0])
    q = percentile / 100
    index = (n - 1) * q
    if index >= n - 1:
        return float(values.max())
    below = int(index)
    pair = np.partition(values, (below, below + 1))
    a, b = float(pair[below]), float(pair[below + 1])
    t = index - below
    return b - (b - a) * (1.0 - t) if t >= 0.5 else a + (b - a) * t


def stretches(mask: Mask, gap: int) -> list[list[int]]:
    """Maximal stretches ``[first, stop)`` of marked frames, joined across gaps under ``gap``."""
    out: list[list[int]] = []
    for i in np.flatnonzero(mask).tolist():
        if out and i - out[-1][1] < gap:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return out


def window_run(
    gate: Gate | None, window: Window, spec: InputSpec, quantum: int = RUN_QUANTUM_FRAMES
) -> Run | None:
    """What the model runs on for ``window`` (see the module docstring): None skips it; a
    trimmed run's length is a multiple of ``quantum`` frames (1: any length)."""
    whole = Run(((0, window.num_frames),))
    if gate is None:
        return whole
    found = stretches(gate.speech_frames(window), SPLIT_GAP_FRAMES)
    found = [s for s in found if s[1] > window.keep_start and s[0] < window.keep_stop]
    if not found:
        return None
    short = -sum(stop - first for first, stop in found) % quantum
    left = min(short, found[0][0])
    found[0][0] -= left
    found[-1][1] += short - left
    run = Run(tuple((first, stop) for first, stop in found))
    if found[-1][1] > window.num_frames or run.whole(window.num_frames):
        return whole
    overhang = spec.receptive_field - spec.frame_stride
    if spec.num_frames(run.frames * spec.frame_stride + overhang) != run.frames:
        return whole  # a front end whose frames do not map onto shorter runs
    return run


class GateRuns:
    """One stream's gate decisions: what the model runs on for each window (:meth:`plan`) and
    the window's logits once it ran (:meth:`logits`). ``quantum``: as :func:`window_run`'s."""

    def __init__(
        self,
        gate: Gate | None,
        spec: InputSpec,
        vocab_size: int,
        blank: int,
        quantum: int = RUN_QUANTUM_FRAMES,
    ) -> None:
        if quantum < 1:
            raise ValueError(f"quantum {quantum}: 1 or more frames")
        self.gate = gate
        self.quantum = quantum
        self.spec = spec
        self.vocab_size = vocab_size
        self.blank = blank

    def plan(self, window: Window) -> tuple[Run, Samples] | None:
        """The run of ``window`` and its model input samples; None: the window is skipped."""
        run = window_run(self.gate, window, self.spec, self.quantum)
        if run is None:
            return None
        if run.whole(window.num_frames):
            return run, window.samples
        stride = self.spec.frame_stride
        pieces = [window.samples[first * stride : stop * stride] for first, stop in run.stretches]
        stop = run.stretches[-1][1] * stride
        pieces.append(window.samples[stop : stop + self.spec.receptive_field - stride])
        return run, np.concatenate(pieces)

    def logits(self, logits: Logits | None, run: Run | None, num_frames: int) -> Logits:
        """A window's ``num_frames`` logits: the run's, blanks elsewhere (all if skipped)."""
        if logits is not None and run is not None and run.whole(num_frames):
            return logits
        full = np.full((num_frames, self.vocab_size), -BLANK_MARGIN, dtype=np.float32)
        full[:, self.blank] = 0.0
        if logits is not None and run is not None:
            at = 0
            for first, stop in run.stretches:
                full[first:stop] = logits[at : at + stop - first]
                at += stop - first
        return full
