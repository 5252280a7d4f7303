"""The frontend benchmark's clients: real-time paced websocket clients with pre-built frames."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from ..stream.sim import RATE
from . import clients as service_clients

OPEN_CONCURRENCY = 16
"""Handshakes the clients run at once (the server bounds handshakes in flight)."""


def binary_frame(payload: bytes) -> bytes:
    """A client binary frame (FIN, opcode 2) masked with the key 0, which leaves the payload
    as it is (RFC 6455 section 5.3)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x82, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x82, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class PacedClient(service_clients.Client):
    """The service benchmark's client with a frame size of its own and pre-built frames."""

    def __init__(self, url: str, samples: NDArray[np.float32], frame_ms: int) -> None:
        super().__init__(url, samples)
        step = 2 * RATE * frame_ms // 1000
        self._frames = [(binary_frame(c), end) for c, end in service_clients.paced(self.pcm, step)]

    def frames(self) -> list[tuple[bytes, float]]:
        return self._frames

    async def send_frame(self, frame: bytes) -> None:
        """Write the pre-built frame to the transport: the client's own CPU stays small."""
        self._ws.transport.write(frame)


async def play_all(
    url: str,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    frame_ms: int,
    connected: Callable[[], None],
) -> list[service_clients.ClientRun]:
    """Connect every paced client, call ``connected``, then start them together at staggered
    phases within a hop (``service_clients.play_clients`` with this bench's clients)."""
    return await service_clients.play_clients(
        url,
        pieces,
        hop_s,
        make_client=lambda target, piece: PacedClient(target, piece, frame_ms),
        connected=connected,
        lead_s=0.5,
    )
