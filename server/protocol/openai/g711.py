"""G.711 (ITU-T) mu-law and A-law: 8-bit companded samples to 16-bit linear PCM.

The realtime dialect's ``audio/pcmu`` and ``audio/pcma`` formats (telephony, 8 kHz) arrive as
one byte per sample; :func:`decode_g711` expands them through a 256-entry table into the
``s16le`` bytes the stream's intake takes. Plain Python (the protocol layer imports no numpy):
each byte maps to its two output bytes with one join, about 1 ms per second of 8 kHz audio.
"""

from __future__ import annotations

from typing import Literal

Law = Literal["pcmu", "pcma"]


def _ulaw_table() -> list[int]:
    table = [0] * 256
    for byte in range(256):
        u = ~byte & 0xFF
        exponent = (u >> 4) & 0x07
        magnitude = (((u & 0x0F) << 3) + 0x84) << exponent
        table[byte] = -(magnitude - 0x84) if u & 0x80 else magnitude - 0x84
    return table


def _alaw_table() -> list[int]:
    table = [0] * 256
    for byte in range(256):
        a = byte ^ 0x55
        exponent = (a >> 4) & 0x07
        mantissa = a & 0x0F
        shifted = ((mantissa << 4) + 0x108) << (exponent - 1) if exponent else 0
        magnitude = shifted if exponent else (mantissa << 4) + 8
        table[byte] = magnitude if a & 0x80 else -magnitude
    return table


def _pcm_bytes(table: list[int]) -> tuple[bytes, ...]:
    return tuple(value.to_bytes(2, "little", signed=True) for value in table)


_TABLES: dict[Law, tuple[bytes, ...]] = {
    "pcmu": _pcm_bytes(_ulaw_table()),
    "pcma": _pcm_bytes(_alaw_table()),
}


def decode_g711(data: bytes, law: Law) -> bytes:
    """``data`` (one companded byte per sample) as little-endian 16-bit PCM."""
    return b"".join(map(_TABLES[law].__getitem__, data))
