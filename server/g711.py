"""G.711 (ITU-T) mu-law and A-law: 8-bit companded samples to 16-bit linear PCM.

The realtime dialect's ``audio/pcmu`` and ``audio/pcma`` formats (telephony, 8 kHz) arrive as
one byte per sample; :func:`decode_g711` expands them through a 256-entry table into the
``s16le`` bytes the stream's intake takes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

Law = Literal["pcmu", "pcma"]


def _ulaw_table() -> NDArray[np.int16]:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        u = ~byte & 0xFF
        exponent = (u >> 4) & 0x07
        magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
        table[byte] = -(magnitude - 0x84) if u & 0x80 else magnitude - 0x84
    return table


def _alaw_table() -> NDArray[np.int16]:
    table = np.zeros(256, dtype=np.int16)
    for byte in range(256):
        a = byte ^ 0x55
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        shifted = ((mantissa << 4) + 0x108) << (exponent - 1) if exponent else 0
        magnitude = shifted if exponent else (mantissa << 4) + 8
        table[byte] = magnitude if a & 0x80 else -magnitude
    return table


_TABLES: dict[Law, NDArray[np.int16]] = {"pcmu": _ulaw_table(), "pcma": _alaw_table()}


def decode_g711(data: bytes, law: Law) -> bytes:
    """``data`` (one companded byte per sample) as little-endian 16-bit PCM."""
    samples = _TABLES[law][np.frombuffer(data, dtype=np.uint8)]
    return samples.astype("<i2", copy=False).tobytes()
