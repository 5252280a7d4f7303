"""Voice-activity gates: windows whose new audio holds no speech skip inference.

Two gates share one interface (:class:`Gate`): the energy gate below, and Silero VAD
(:class:`VadGateConfig`, run by :mod:`.vad`). ``--gate`` / the ``start`` field ``gate`` name one
of :data:`GATE_KINDS`; :func:`gate_config` turns the name into the stream's gate setting.

The energy gate is cheap but fooled by noise (see docs/streaming.md, "Gates under noise").

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
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from .errors import StreamConfigError
from .windows import Samples, Window

_POWER_FLOOR = 1e-10
"""Power floor of the frame energies (-100 dBFS), so digital silence stays finite."""


GateKind = Literal["none", "energy", "silero", "auto"]
GATE_KINDS: tuple[GateKind, ...] = ("none", "energy", "silero", "auto")
"""``auto``: Silero when the export has its VAD file, else the energy gate."""


class Gate(Protocol):
    """A per-stream voice-activity decision over windows, called on every window in order."""

    def is_silent(self, window: Window) -> bool:
        """True when the audio ``window`` adds (kept and lookahead part) holds no speech."""
        ...


@dataclass(frozen=True)
class VadGateConfig:
    """Silero VAD gate settings (see :mod:`.vad`)."""

    threshold: float = 0.5
    """Speech probability from which a 32 ms VAD frame counts as speech (Silero's default)."""
    pad_s: float = 0.3
    """A window is speech too when speech was seen this long before its new audio, so the
    trailing edge of a word is decoded, not blanked."""
    fallback_energy: bool = False
    """``auto``: use the energy gate when the export has no VAD file, instead of failing."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise StreamConfigError("threshold", self.threshold, "0 < threshold < 1")
        if not 0.0 <= self.pad_s <= 2.0:
            raise StreamConfigError("pad_s", self.pad_s, "0 to 2 seconds")


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


AnyGateConfig = GateConfig | VadGateConfig | None
"""A stream's gate: energy, Silero, or None (every window runs)."""


def gate_config(kind: str) -> AnyGateConfig:
    """The gate setting of a ``--gate`` / ``start.gate`` name (StreamConfigError otherwise)."""
    if kind == "none":
        return None
    if kind == "energy":
        return GateConfig()
    if kind == "silero":
        return VadGateConfig()
    if kind == "auto":
        return VadGateConfig(fallback_energy=True)
    raise StreamConfigError("gate", kind, "one of " + ", ".join(GATE_KINDS))


def gate_kind(config: AnyGateConfig) -> GateKind:
    """The name of a gate setting (inverse of :func:`gate_config`)."""
    if config is None:
        return "none"
    if isinstance(config, GateConfig):
        return "energy"
    return "auto" if config.fallback_energy else "silero"
