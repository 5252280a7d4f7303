"""Real-time clients of the websocket server's protocol v1 (``/v1/stream``) for the benchmarks:
each sends its audio as 16 kHz s16le in 20 ms frames, every frame when its last sample is due,
and records when each ``partial``, ``final`` and ``end`` arrived; :func:`play_clients` connects
many and starts them together at staggered phases within a hop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect

from streamasr.server.protocol import messages

from ..stream.sim import FRAME, RATE, start_offsets

OPEN_CONCURRENCY = 16
"""Handshakes the clients run at once (as ``bench.service.frontend``)."""


@dataclass
class ClientRun:
    """What one client sent and received (times in seconds from its stream's start)."""

    samples: int
    partials: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, audio extent in seconds: the message's ``audio_end``) of every partial."""
    finals: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, segment end) of every final."""
    end_arrival: float | None = None
    late_s: list[float] = field(default_factory=list)
    """How late each frame was sent after its last sample was due."""
    close_code: int | None = None
    error: str | None = None

    def partial_latencies(self) -> list[float]:
        return [t - end for t, end in self.partials]

    def final_latencies(self) -> list[float]:
        return [t - end for t, end in self.finals]


def audio_extent(message: dict[str, Any]) -> float:
    """Seconds of stream audio a ``partial`` message's window needed (its ``audio_end``, the
    engine's ``Partial.audio_end``)."""
    value = message.get("audio_end")
    if not isinstance(value, int | float):
        raise ValueError(f"partial without a numeric audio_end: {message}")
    return float(value)


def paced(pcm: bytes, step: int) -> list[tuple[bytes, float]]:
    """``pcm`` (16-bit samples at ``RATE``) in chunks of ``step`` bytes, each with the time its
    last sample is due, in seconds from the start."""
    starts = range(0, len(pcm), step)
    return [(pcm[i : i + step], min(i + step, len(pcm)) / 2 / RATE) for i in starts]


class Client:
    """One real-time client of protocol v1: opens, streams 20 ms s16le frames, stops."""

    def __init__(self, url: str, samples: NDArray[np.float32]) -> None:
        self.url = url.rstrip("/") + "/v1/stream"
        pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
        self.pcm = pcm.tobytes()
        self.run = ClientRun(samples.size)
        self._connection: ClientConnection | None = None

    @property
    def _ws(self) -> ClientConnection:
        if self._connection is None:
            raise RuntimeError("the client is not connected")
        return self._connection

    async def open(self) -> None:
        """Connect, send ``start`` and wait for ``ready`` (closing again on failure)."""
        self._connection = await connect(
            self.url, open_timeout=60, close_timeout=30, max_size=2**22
        )
        try:
            await self._ws.send(messages.encode(messages.Start(RATE, "s16le").to_dict()))
            text = await asyncio.wait_for(self._ws.recv(), 60)
            reply = json.loads(text)
            if not isinstance(messages.server_message(reply), messages.Ready):
                raise RuntimeError(f"expected 'ready', got {reply}")
        except BaseException:
            await self._ws.close()
            raise

    def frames(self) -> list[tuple[bytes, float]]:
        """What :meth:`play` sends: (payload, when its last sample is due in seconds from the
        start), one ``FRAME`` of samples each."""
        return paced(self.pcm, 2 * FRAME)

    async def send_frame(self, frame: bytes) -> None:
        """Send one of :meth:`frames` (a websocket binary message)."""
        await self._ws.send(frame)

    async def play(self, start_at: float) -> ClientRun:
        """Send every frame when its last sample is due (``start_at`` on the loop's clock),
        then ``stop``; receive until the server closes."""
        loop = asyncio.get_running_loop()
        receiver = asyncio.create_task(self._receive(start_at))
        try:
            for frame, end_s in self.frames():
                due = start_at + end_s
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the speaker's pace
                self.run.late_s.append(max(0.0, loop.time() - due))
                await self.send_frame(frame)
            await self._ws.send(messages.encode(messages.STOP))
            await receiver
        except Exception as exc:  # a failed stream is a figure, not a crash of the benchmark
            self.run.error = f"{type(exc).__name__}: {exc}"
            receiver.cancel()
        finally:
            await self._ws.close()
            self.run.close_code = self._ws.close_code
        return self.run

    async def _receive(self, start_at: float) -> None:
        loop = asyncio.get_running_loop()
        async for message in self._ws:
            arrival = loop.time() - start_at
            if not isinstance(message, str):
                continue
            event = json.loads(message)
            kind = messages.server_message(event)
            if isinstance(kind, messages.PartialResult):
                self.run.partials.append((arrival, audio_extent(event)))
            elif isinstance(kind, messages.FinalResult):
                self.run.finals.append((arrival, kind.end))
            elif isinstance(kind, messages.End):
                self.run.end_arrival = arrival
            elif isinstance(kind, messages.ErrorReport):
                self.run.error = f"server error: {event}"


async def play_clients(
    url: str,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    *,
    make_client: Callable[[str, NDArray[np.float32]], Client] | None = None,
    connected: Callable[[], None] | None = None,
    lead_s: float = 0.2,
) -> list[ClientRun]:
    """All clients connected first (a few handshakes at a time: the server aborts the oldest
    handshake past ``--max-handshakes``, 32 by default), then ``connected`` is called, then they
    start together ``lead_s`` later at staggered phases within a hop. ``make_client``: another
    :class:`Client` kind (the frontend bench's paced frames)."""
    clients = [(make_client or Client)(url, p) for p in pieces]
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(client: Client) -> None:
        async with gate:
            await client.open()

    opened = await asyncio.gather(*(open_one(c) for c in clients), return_exceptions=True)
    if connected is not None:
        connected()
    start = asyncio.get_running_loop().time() + lead_s
    plays = []
    offsets = start_offsets(len(pieces), hop_s)
    for client, result, offset in zip(clients, opened, offsets, strict=True):
        if isinstance(result, BaseException):
            client.run.error = f"open: {type(result).__name__}: {result}"
        else:
            plays.append(client.play(start + float(offset)))
    await asyncio.gather(*plays)
    return [c.run for c in clients]
