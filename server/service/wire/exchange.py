"""One HTTP/1.1 request with a body, served over h11 on a connection websockets accepted.

websockets parses only bodiless requests (``Request.parse`` refuses a Content-Length), so the
connection class (server/service/wire/transport.py) hands a POST over before websockets' parser:
its bytes come here through :meth:`HttpExchange.feed`, h11 (the sans-I/O HTTP/1.1 library
httpx is built on) parses the head and the body (Content-Length or chunked, ``Expect:
100-continue``), and answers go out through the same transport, TLS included. One request per
connection (``Connection: close``). Bounded: at most :data:`READ_BUFFER_BYTES` of unparsed input
(then reading pauses), a head of at most :data:`MAX_HEAD_BYTES`, a body of at most the caller's
limit (413), and :attr:`idle_timeout_s` between two reads.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Final, Protocol

import h11

from streamasr.server.protocol.openai.transcription import ApiError, too_large

log = logging.getLogger(__name__)

READ_BUFFER_BYTES: Final = 256 * 1024
"""Unparsed input held before the transport stops reading."""
MAX_HEAD_BYTES: Final = 16 * 1024
"""Request line and headers (h11's ``max_incomplete_event_size``): past it, 431."""
WRITE_PIECE_BYTES: Final = 64 * 1024
"""Body bytes written before waiting for the peer to read (the guard bounds the buffer)."""
SECURITY_HEADERS: Final = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


class Wire(Protocol):
    """What the exchange needs of the connection it runs on."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None:
        """Wait until the peer has read enough of what was written (bounded by the guard)."""
        ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def can_write_eof(self) -> bool: ...

    def write_eof(self) -> None: ...

    def close(self) -> None: ...


class PeerGoneError(ConnectionError):
    """The peer closed or went silent for longer than the idle timeout."""


class HttpExchange:
    """Feed it the connection's bytes; a task reads the request and writes the answer."""

    def __init__(self, wire: Wire, idle_timeout_s: float, server_header: str) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.server_header = server_header
        self._wire = wire
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._eof = False
        self.lost = False
        self._wake = asyncio.Event()
        self.answered: int | None = None
        """The status sent (None: nothing yet)."""

    # -- input, from the protocol's callbacks ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > READ_BUFFER_BYTES and not self._paused:
            self._paused = True
            self._wire.pause_reading()
        self._wake.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake.set()

    def connection_lost(self) -> None:
        self.lost = True
        self._eof = True
        self._wake.set()

    async def _receive(self) -> None:
        """Give h11 the next bytes (or the end of input)."""
        while not self._chunks and not self._eof:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_timeout_s)
            except TimeoutError:
                raise PeerGoneError(f"nothing received for {self.idle_timeout_s:g} s") from None
        if self._chunks:
            data = self._chunks.popleft()
            self._buffered -= len(data)
            if self._paused and self._buffered < READ_BUFFER_BYTES // 2:
                self._paused = False
                self._wire.resume_reading()
            self._h11.receive_data(data)
        else:
            self._h11.receive_data(b"")

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint
                raise ApiError(status, f"Bad HTTP request: {exc}", code="bad_request") from None
            if event is h11.NEED_DATA:
                if self.lost:
                    raise PeerGoneError("the peer closed the connection")
                await self._receive()
                continue
            if isinstance(event, h11.ConnectionClosed):
                raise PeerGoneError("the peer closed the connection")
            return event

    # -- the request ----------------------------------------------------------------------------

    async def request(self) -> h11.Request:
        """The request line and headers."""
        event = await self._next_event()
        if not isinstance(event, h11.Request):
            raise ApiError(400, "Bad HTTP request", code="bad_request")
        return event

    async def body(self, limit: int) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; 413 past ``limit`` bytes."""
        if self._h11.they_are_waiting_for_100_continue:
            self._send(h11.InformationalResponse(status_code=100, headers=[]))
        received = 0
        while True:
            event = await self._next_event()
            if isinstance(event, h11.EndOfMessage):
                return
            if isinstance(event, h11.Data):
                received += len(event.data)
                if received > limit:
                    raise too_large(limit)
                yield bytes(event.data)

    # -- the answer -----------------------------------------------------------------------------

    async def respond(
        self, status: int, content_type: str, body: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A complete answer."""
        self.start(status, content_type, [("Content-Length", str(len(body))), *headers])
        await self.send(body)
        await self.end()

    async def respond_error(self, error: ApiError) -> None:
        await self.respond(error.status, "application/json", error.body(), error.headers())

    def start(self, status: int, content_type: str, headers: Sequence[tuple[str, str]]) -> None:
        """The status line and headers (no Content-Length among ``headers``: chunked)."""
        self.answered = status
        fields = [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Server", self.server_header),
            ("Connection", "close"),
            ("Content-Type", content_type),
            *SECURITY_HEADERS,
            *headers,
        ]
        reason = http.HTTPStatus(status).phrase.encode()
        self._send(h11.Response(status_code=status, headers=fields, reason=reason))

    async def send(self, data: bytes) -> None:
        """Part of the body; waits while the peer is not reading."""
        if self.lost:
            raise PeerGoneError("the peer closed the connection")
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE_BYTES):
            self._send(h11.Data(data=bytes(view[start : start + WRITE_PIECE_BYTES])))
            await self._wire.drain()

    async def end(self) -> None:
        self._send(h11.EndOfMessage())
        await self._wire.drain()

    @property
    def started(self) -> bool:
        return self.answered is not None

    def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._wire.write(data)

    async def close(self) -> None:
        """Half-close, read (and drop) what the peer still sends for a moment, then close.

        A peer still sending a body we refused would otherwise get a reset that can destroy
        the answer in flight; reading to its EOF lets it read the answer first.
        """
        if self.lost:
            return
        if self._wire.can_write_eof():
            self._wire.write_eof()
            try:
                async with asyncio.timeout(self.idle_timeout_s):
                    while not self._eof:
                        self._chunks.clear()
                        self._buffered = 0
                        if self._paused:
                            self._paused = False
                            self._wire.resume_reading()
                        self._wake.clear()
                        await self._wake.wait()
            except TimeoutError:
                log.debug("the peer did not close within %g s", self.idle_timeout_s)
        self._wire.close()
