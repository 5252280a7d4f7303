"""Client frames split out of the byte stream ahead of websockets, so audio can skip its parser.

A streaming client sends 50 binary frames per second. Through websockets each one costs its
generator-based parser, its message queue and a wake-up of the session's task; that per-frame
work was the largest part of the frontend's CPU (docs/scaling.md, "The audio frame fast
path"). :class:`FrameSplitter` finds frame boundaries in the bytes a connection receives (RFC
6455 section 5.2, nothing more): it yields each complete frame with its header read, and keeps
an incomplete one until the rest comes. Its caller decides, frame by frame, whether to take the
payload of a complete unfragmented binary frame itself or to pass the frame's bytes on to
websockets unchanged, which then parses them as it would have (control frames, text, fragments,
everything this module does not judge).

The splitter holds at most one incomplete frame, of at most ``max_size`` payload bytes (the
same bound websockets applies); a frame that announces more is :attr:`SplitFrame.oversized`,
and the caller passes it, and all that follows, to websockets, which closes with 1009.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

try:  # websockets' C speedup, as websockets.frames does
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - a build without its C extension
    from websockets.utils import apply_mask

FIN_BINARY = 0x82
"""First header byte of a final binary frame with no RSV bits (no extension touched it)."""
MASK_BIT = 0x80


@dataclass(frozen=True, slots=True)
class SplitFrame:
    """One frame as received."""

    raw: bytes | memoryview
    """The whole frame (header and payload), as websockets would have received it."""
    first: int
    """The first header byte (FIN, RSV, opcode)."""
    payload_at: int
    """Where the payload starts in ``raw``."""
    mask: bytes
    """The client's masking key (empty when unmasked, which websockets refuses)."""
    oversized: bool = False
    """The frame announces more than ``max_size`` bytes: ``raw`` is the rest of the stream."""

    @property
    def audio(self) -> bool:
        """A final binary frame, masked, with no RSV bits: a whole binary message."""
        return self.first == FIN_BINARY and bool(self.mask)

    def payload(self) -> bytes:
        """The unmasked payload."""
        return apply_mask(self.raw[self.payload_at :], self.mask)


def whole_audio(data: bytes, max_size: int | None) -> bytes | None:
    """The unmasked payload when ``data`` is exactly one whole binary message (a final, masked
    binary frame with no RSV bits and a 7- or 16-bit length, within ``max_size``); else None.
    Most reads of a live client are one such frame: this is the splitter's common case,
    without its bookkeeping."""
    size = len(data)
    if size < 6 or data[0] != FIN_BINARY or data[1] < MASK_BIT:
        return None
    length, head = data[1] & 0x7F, 6
    if length == 126 and size >= 8:
        length, head = (data[2] << 8) | data[3], 8
    elif length >= 126:
        return None
    if head + length != size or (max_size is not None and length > max_size):
        return None
    return apply_mask(data[head:], data[head - 4 : head])


class FrameSplitter:
    """Splits a client's byte stream into frames (see the module)."""

    def __init__(self, max_size: int | None) -> None:
        self.max_size = max_size
        self._held = bytearray()
        """The start of an incomplete frame."""

    @property
    def held(self) -> int:
        """Bytes of an incomplete frame waiting for the rest."""
        return len(self._held)

    def split(self, data: bytes) -> Iterator[SplitFrame]:
        """The frames ``data`` completes, in order; an oversized frame ends the iteration."""
        if self._held:
            self._held += data
            view = memoryview(bytes(self._held))
            self._held.clear()
        else:
            view = memoryview(data)
        at, end = 0, len(view)
        while end - at >= 2:
            first, second = view[at], view[at + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if end - at < 4:
                    break
                length, head = int.from_bytes(view[at + 2 : at + 4], "big"), 4
            elif length == 127:
                if end - at < 10:
                    break
                length, head = int.from_bytes(view[at + 2 : at + 10], "big"), 10
            if self.max_size is not None and length > self.max_size:
                yield SplitFrame(view[at:], first, head, b"", oversized=True)
                return
            mask = b""
            if second & MASK_BIT:
                mask = bytes(view[at + head : at + head + 4])
                head += 4
            stop = at + head + length
            if stop > end:
                break
            yield SplitFrame(view[at:stop], first, head, mask)
            at = stop
        if at < end:
            self._held += view[at:]
