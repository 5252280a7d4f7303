"""A cheap energy gate: windows whose new audio is silence skip inference.

For each window the gate measures the energy of every 20 ms frame of the audio the window adds
(its kept and lookahead part, not the left context) and calls the window silent when the loudest
of those frames stays within ``margin_db`` of the stream's noise floor, or below ``silence_db``
outright. The noise floor is a low percentile of the frame energies of the stream's last few
seconds, so it follows the background level without a fixed threshold. A silent window's frames
are decoded as blanks.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import StreamConfigError
from .windows import Samples, Window

_POWER_FLOOR = 1e-10
"""Power floor of the frame energies (-100 dBFS), so digital silence stays finite."""


@dataclass(frozen=True)
class GateConfig:
    """Energy gate settings."""

    margin_db: float = 12.0
    """A window is silent when its loudest frame is less than this far above the noise floor."""
    silence_db: float = -60.0
    """Frames quieter than this (dB relative to full scale) are silent whatever the floor."""
    floor_percentile: float = 10.0
    """Percentile of recent frame energies taken as the noise floor."""
    history_s: float = 6.0
    """Seconds of recent audio the floor is computed over."""

    def __post_init__(self) -> None:
        if not 0.0 < self.margin_db <= 60.0:
            raise StreamConfigError("margin_db", self.margin_db, "0 < margin_db <= 60")
        if not 0.0 <= self.floor_percentile <= 50.0:
            raise StreamConfigError("floor_percentile", self.floor_percentile, "0 to 50")
        if not 1.0 <= self.history_s <= 60.0:
            raise StreamConfigError("history_s", self.history_s, "1 to 60 seconds")


def frame_energies_db(samples: Samples, frame: int) -> NDArray[np.float64]:
    """Mean-square energy in dBFS of each whole ``frame``-sample frame."""
    n = samples.shape[0] // frame
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    blocks = samples[: n * frame].reshape(n, frame).astype(np.float64)
    power = np.mean(blocks * blocks, axis=1)
    return np.asarray(10.0 * np.log10(power + _POWER_FLOOR), dtype=np.float64)


class EnergyGate:
    """Per-stream silence detector over windows (see the module docstring)."""

    def __init__(self, config: GateConfig, stride: int, sample_rate: int) -> None:
        self.config = config
        self.stride = stride
        self._history: deque[float] = deque(
            maxlen=max(1, round(config.history_s * sample_rate / stride))
        )

    def is_silent(self, window: Window) -> bool:
        """Measure the audio ``window`` adds; True when inference can be skipped."""
        offset = window.keep_start * self.stride
        energies = frame_energies_db(window.samples[offset:], self.stride)
        self._history.extend(energies[: window.kept_frames].tolist())
        if energies.size == 0:
            return False
        loudest = float(energies.max())
        floor = float(
            np.percentile(
                np.fromiter(self._history, dtype=np.float64), self.config.floor_percentile
            )
        )
        return loudest < self.config.silence_db or loudest < floor + self.config.margin_db
