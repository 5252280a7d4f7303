"""Which voice-activity gate a stream runs, as settings.

The gates themselves are in :mod:`streamasr.server.engine.gate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from streamasr.server.errors import StreamConfigError

RUN_QUANTUM_FRAMES = 8
"""On a batching backend, a trimmed run's length is a multiple of this many frames (0.16 s), or
the whole window."""


GateKind = Literal["none", "energy", "silero", "auto"]


@dataclass(frozen=True)
class VadGateConfig:
    """Silero VAD gate settings (see :mod:`.vad`)."""

    threshold: float = 0.5
    """Speech probability from which a 32 ms VAD frame counts as speech (Silero's default)."""
    pad_s: float = 0.1
    """Onset and offset margin: frames this close to a speech frame count as speech, so the
    edges of words are decoded, not blanked (tuned on the noisy set, docs/streaming.md)."""
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
    """A frame is speech when it is at least this far above the noise floor."""
    silence_db: float = -60.0
    """Frames quieter than this (dB relative to full scale) are silent whatever the floor."""
    floor_percentile: float = 10.0
    """Percentile of recent frame energies taken as the noise floor."""
    history_s: float = 6.0
    """Seconds of recent audio the floor is computed over."""
    pad_s: float = 0.1
    """Onset and offset margin, as :attr:`VadGateConfig.pad_s`."""

    def __post_init__(self) -> None:
        if not 0.0 < self.margin_db <= 60.0:
            raise StreamConfigError("margin_db", self.margin_db, "0 < margin_db <= 60")
        if not 0.0 <= self.floor_percentile <= 50.0:
            raise StreamConfigError("floor_percentile", self.floor_percentile, "0 to 50")
        if not 1.0 <= self.history_s <= 60.0:
            raise StreamConfigError("history_s", self.history_s, "1 to 60 seconds")
        if not 0.0 <= self.pad_s <= 2.0:
            raise StreamConfigError("pad_s", self.pad_s, "0 to 2 seconds")


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


GATE_KINDS: tuple[GateKind, ...] = ("none", "energy", "silero", "auto")
"""``auto``: Silero when the export has its VAD file, else the energy gate."""
