"""What a client's audio is: encoding, sample rate and channels (plain Python, no numpy)."""

from __future__ import annotations

from dataclasses import dataclass

from streamasr.server.constants import MAX_CHANNELS, SAMPLE_RATE, Encoding
from streamasr.server.errors import AudioFormatError

MIN_RATE = 8_000


MAX_RATE = 192_000


_SAMPLE_BYTES: dict[str, int] = {"s16le": 2, "f32le": 4}


@dataclass(frozen=True)
class AudioFormat:
    """What a client sends: encoding, sample rate and channel count."""

    encoding: Encoding = "s16le"
    sample_rate: int = SAMPLE_RATE
    channels: int = 1

    def __post_init__(self) -> None:
        if self.encoding not in _SAMPLE_BYTES:
            raise AudioFormatError(f"encoding {self.encoding!r} (use s16le or f32le)")
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int):
            raise AudioFormatError(f"sample rate {self.sample_rate!r} is not an integer")
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise AudioFormatError(
                f"sample rate {self.sample_rate} Hz (allowed: {MIN_RATE} to {MAX_RATE} Hz)"
            )
        if self.channels not in range(1, MAX_CHANNELS + 1):
            raise AudioFormatError(f"{self.channels} channels (allowed: 1 or {MAX_CHANNELS})")

    @property
    def frame_bytes(self) -> int:
        """Bytes per sample frame (one sample of every channel)."""
        return _SAMPLE_BYTES[self.encoding] * self.channels
