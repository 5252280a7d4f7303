"""Per-stream settings (:class:`StreamOptions`) and their defaults, checked against their ranges.

Plain Python: the protocol layer builds them from client messages without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from streamasr.server.options.decoding import DecodingOptions
from streamasr.server.options.gate import AnyGateConfig, GateConfig, VadGateConfig
from streamasr.server.options.presets import WINDOW_FIELDS
from streamasr.server.options.ranges import check_range

DEFAULT_LEFT_S = 0.32


DEFAULT_HOP_S = 1.0


DEFAULT_LOOKAHEAD_S = 0.32
"""Window defaults, chosen from the latency/accuracy curve (see README, "Streaming")."""


DEFAULT_ENDPOINT_MS = 800


DEFAULT_MAX_SEGMENT_S = 30.0
"""Segmentation defaults (``--endpoint-ms``, ``--max-segment-s``)."""


@dataclass(frozen=True)
class StreamOptions:
    """Per-stream settings, each checked against its allowed range."""

    left_s: float = DEFAULT_LEFT_S
    """Left context of each window (0 to 8 s, whole 20 ms frames)."""
    hop_s: float = DEFAULT_HOP_S
    """Frames committed per window (0.16 to 4 s): how often partials come."""
    lookahead_s: float = DEFAULT_LOOKAHEAD_S
    """Right context of each window (0 to 2 s): shown as the provisional tail."""
    endpoint_ms: int = DEFAULT_ENDPOINT_MS
    """Trailing non-speech after speech that ends a segment (100 to 10,000 ms)."""
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S
    """Longest segment (2 to 120 s); the cut waits up to 1 s for a word boundary."""
    gate: AnyGateConfig = field(default_factory=GateConfig)
    """Gate letting windows without speech skip inference: energy (:class:`GateConfig`), Silero
    VAD (:class:`~.gate.VadGateConfig`), or None (every window runs)."""
    preset: str | None = None
    """A preset of the model's manifest (``fast``, ``balanced``, ``accurate``): its windows
    replace the three above when the stream opens (an unknown name: ``invalid_field``)."""
    from_model: frozenset[str] = frozenset()
    """Window fields nobody chose (``left_s``, ``hop_s``, ``lookahead_s``): the manifest's
    defaults replace them when the stream opens. :meth:`model_defaults` sets all three."""
    max_inflight: int = 4
    """Most windows of this stream waiting in the scheduler at once (1 to 64)."""
    lag_report_s: float = 2.0
    """Report :class:`Lagging` when the audio received falls this far behind the wall clock."""
    decoding: DecodingOptions | None = None
    """A session's beam search overrides and hotwords (:mod:`.decoding`); None: the server's."""
    punctuate: bool | None = None
    """Captions with case and punctuation (``Partial.caption``, ``Segment.caption``); None: when
    the engine has a punctuation model; True without one: ``invalid_field``."""

    def __post_init__(self) -> None:
        check_range("left_s", self.left_s, 0.0, 8.0)
        check_range("hop_s", self.hop_s, 0.16, 4.0)
        check_range("lookahead_s", self.lookahead_s, 0.0, 2.0)
        check_range("endpoint_ms", self.endpoint_ms, 100, 10_000)
        check_range("max_segment_s", self.max_segment_s, 2.0, 120.0)
        check_range("max_inflight", self.max_inflight, 1, 64)
        check_range("lag_report_s", self.lag_report_s, 0.1, 3600.0)

    @classmethod
    def model_defaults(cls, **kw: Any) -> StreamOptions:
        """Options whose windows are the model's (its manifest's ``streaming`` defaults) and,
        unless ``gate`` is given, the server's default gate (``auto``: Silero if exported)."""
        kw.setdefault("gate", VadGateConfig(fallback_energy=True))
        return replace(cls(**kw), from_model=frozenset(WINDOW_FIELDS))
