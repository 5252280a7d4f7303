"""Constants of protocol v1 that the server and the clients share (see docs/protocol.md).

Plain Python with no imports beyond ``typing``: ``streamasr.client`` imports it without pulling in
numpy, soxr or onnxruntime.
"""

from __future__ import annotations

from typing import Final, Literal

PROTOCOL_VERSION: Final = 1
"""The version a ``start`` message may name and ``ready`` reports."""
V1_PATH: Final = "/v1/stream"
REALTIME_PATH: Final = "/v1/realtime"
"""OpenAI's realtime transcription sessions (:mod:`.realtime`)."""
"""The websocket path of protocol v1."""
DEFAULT_PORT: Final = 2700
"""vosk-server's port, so that Vosk clients find us where they look."""

Encoding = Literal["s16le", "f32le"]
"""Little-endian signed 16-bit integers or little-endian 32-bit floats, channels interleaved."""
ENCODINGS: Final[tuple[Encoding, ...]] = ("s16le", "f32le")

MAX_CHANNELS: Final = 2
"""Interleaved channels a client may send (the server averages them to mono)."""


SAMPLE_RATE = 16000
"""Every served model takes 16 kHz mono audio."""
