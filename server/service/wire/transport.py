"""The connection class the service gives websockets: every per-connection buffer bounded.

websockets bounds incoming messages (``max_size``, ``max_queue``) and makes ``send`` wait above
``write_limit``, but it writes its automatic replies (pongs, the close frame) without waiting and
waits for a reader without a deadline. :class:`GuardedConnection` closes those gaps:

* a peer whose transport write buffer passes ``max_write_buffer_bytes`` (it does not read; a ping
  flood) is aborted at once, whatever filled the buffer;
* a ``send`` that waits for the peer to read waits at most :data:`WRITE_STALL_S`, or until the
  close deadline once closing, then the connection is aborted;
* at most ``max_handshakes`` connections may be in their opening handshake: a new one past it
  aborts the oldest (an idle socket, most likely, while a real client finishes its handshake in
  one round trip), and ``handshake_timeout_s`` bounds how long each may take;
* a request whose method is not GET or HEAD is answered 405 from its request line, before
  websockets' parser (which does not answer requests with a body), except a POST under
  ``/v1/`` when the guard has an HTTP API (``serve_http``): the connection then stops feeding
  websockets and hands its bytes to an :class:`~.exchange.HttpExchange` (h11) that the
  handshake task serves instead of the handshake, without its deadline (the exchange has its own
  idle timeout). This is why the handshake deadline is kept here (``handshake_timeout_s``) and not
  in websockets' ``open_timeout``, which would cut a long transcription.

Each drop is counted through ``on_drop(reason)`` and logged once per connection.

Once open, a connection splits what it receives into frames itself (:mod:`.framing`) and offers
each whole binary message to :attr:`GuardedConnection.take_audio`, the session's synchronous
intake, which the session sets only while it waits for a message; what it does not take, and
every other frame, goes to websockets' parser unchanged. A connection whose request was not
received cleanly (bytes after it before the handshake's answer) leaves all framing to websockets.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import CONNECTING, OPEN

from streamasr.server.service.wire.exchange import HttpExchange
from streamasr.server.service.wire.framing import FrameSplitter, whole_audio

log = logging.getLogger(__name__)

WRITE_STALL_S = 10.0
"""Longest a send may wait for the peer to read (outside the closing handshake)."""
CLOSE_TIMEOUT_S = 0.5
"""Longest the closing handshake may wait for the peer's close frame before the TCP connection is
aborted (websockets' ``close_timeout``)."""
REQUEST_LINE_BYTES = 8192
"""Bytes of a request line examined for its method (websockets' own line limit)."""
ALLOWED_METHODS = ("GET", "HEAD")
HTTP_API_PREFIX = b"/v1/"
"""A POST under this path goes to the HTTP API (``guard.serve_http``); elsewhere it is a 405."""


@dataclass
class TransportGuard:
    """Limits shared by the connections of one server, and the connections in their handshake."""

    max_write_buffer_bytes: int
    max_handshakes: int
    on_drop: Callable[[str], None] = lambda reason: None
    """Called with a fixed word (``write_buffer``, ``write_stall``, ``handshakes``,
    ``handshake_timeout``, ``method``) for each connection the guard ends."""
    handshaking: dict[GuardedConnection, None] = field(default_factory=dict)
    """The connections in their opening handshake, oldest first."""
    handshake_timeout_s: float | None = None
    """Longest opening handshake (None: unbounded); not applied to an HTTP exchange."""
    serve_http: Callable[[HttpExchange], Awaitable[None]] | None = None
    """Serves a POST request (the OpenAI API); None: POST is answered 405."""
    http_idle_s: float = 30.0
    """Longest silence of a peer while its HTTP request is read."""
    server_header: str = "streamasr"
    exchanges: set[GuardedConnection] = field(default_factory=set)
    """The connections serving an HTTP exchange."""

    def drop(self, connection: GuardedConnection, reason: str, detail: str) -> None:
        """Abort ``connection`` (once), count and log it."""
        if connection.dropped is not None:
            return
        connection.dropped = reason
        self.on_drop(reason)
        log.warning("dropping %s: %s", _peer(connection), detail)
        connection.transport.abort()

    def abort_handshaking(self) -> int:
        """Abort every connection still in its handshake (shutdown); how many."""
        late = [c for c in [*self.handshaking, *self.exchanges] if not c.transport.is_closing()]
        for connection in late:
            connection.transport.abort()
        self.handshaking.clear()
        self.exchanges.clear()
        return len(late)


class GuardedConnection(ServerConnection):
    """A websockets server connection with bounded output, handshake cap and method check.

    Bind a guard with :func:`connection_class`; websockets instantiates the class it is given.
    """

    guard: TransportGuard

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dropped: str | None = None
        """Why the guard aborted this connection (None: it did not)."""
        self._request_line = bytearray()
        self._method_checked = False
        self.exchange: HttpExchange | None = None
        """The HTTP exchange this connection serves instead of a handshake (a POST)."""
        self._exchange_started: asyncio.Future[None] = self.loop.create_future()
        self.take_audio: Callable[[bytes], bool] | None = None
        """Takes a whole binary message now (True) or leaves it to websockets' queue (False);
        set by the session while it waits in ``recv()`` with nothing queued, cleared by the
        connection as soon as it queues a data frame (messages stay in order)."""
        self._splitter: FrameSplitter | None = None
        self._may_split = False
        """The request ended a received chunk exactly: the next bytes start a frame."""

    # -- the handshake ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        guard = self.guard
        while len(guard.handshaking) >= guard.max_handshakes:
            oldest = next(iter(guard.handshaking))
            del guard.handshaking[oldest]
            detail = f"the oldest of {guard.max_handshakes} open handshakes, for a new one"
            guard.drop(oldest, "handshakes", detail)
        guard.handshaking[self] = None

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        try:
            async with asyncio.timeout(self.guard.handshake_timeout_s) as deadline:
                await asyncio.wait(
                    [self.request_rcvd, self.connection_lost_waiter, self._exchange_started],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self.exchange is not None and self.guard.serve_http is not None:
                    deadline.reschedule(None)
                    await self._serve_http(self.exchange, self.guard.serve_http)
                elif self.dropped is None:
                    await super().handshake(*args, **kwargs)
                elif self.dropped == "method":  # let the 405 reach the peer (before the deadline)
                    await asyncio.shield(self.connection_lost_waiter)
        except (asyncio.CancelledError, TimeoutError):  # the deadline (or the server closing)
            if self.protocol.state is CONNECTING and self.dropped is None and self.exchange is None:
                self.dropped = "handshake_timeout"
                self.guard.on_drop("handshake_timeout")
            raise
        finally:
            self.guard.handshaking.pop(self, None)

    async def _serve_http(
        self, exchange: HttpExchange, serve: Callable[[HttpExchange], Awaitable[None]]
    ) -> None:
        """Serve the exchange, then wait (bounded) for the answer to be flushed and the
        transport closed: websockets aborts the transport of a handshake that did not open."""
        try:
            await serve(exchange)
            await asyncio.wait_for(asyncio.shield(self.connection_lost_waiter), WRITE_STALL_S)
        except TimeoutError:
            log.debug("%s: the HTTP answer was not flushed in time", _peer(self))
        finally:
            self.guard.exchanges.discard(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.handshaking.pop(self, None)
        if self.exchange is not None:
            self.exchange.connection_lost()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio's signature
        if self.exchange is None:
            super().eof_received()
            return None
        self.exchange.feed_eof()
        return self.transport.get_extra_info("sslcontext") is None  # keep writing the answer

    def data_received(self, data: bytes) -> None:
        if self.exchange is not None:
            self.exchange.feed(data)
            return
        if self.dropped is not None:
            return  # answered or aborted: discard the rest of the request
        if not self._method_checked and self._refuse_method(data):
            return
        splitter = self._splitter
        if splitter is not None:
            take = self.take_audio
            if take is not None and not splitter.held and self.protocol.state is OPEN:
                payload = whole_audio(data, splitter.max_size)
                if payload is not None:  # one whole binary message: most reads
                    if not take(payload):
                        self.take_audio = None
                        super().data_received(data)
                    return
            self._split(data)
            return
        if self._may_split and self.protocol.state is OPEN:
            self._splitter = FrameSplitter(self._max_size())
            self._split(data)
            return
        requested = self.request_rcvd.done()
        super().data_received(data)
        self._may_split = (
            not requested
            and self.request_rcvd.done()
            and data.endswith(b"\r\n\r\n")
            and not self.protocol.reader.buffer
        )

    def _split(self, data: bytes) -> None:
        """Offer each whole binary message to :attr:`take_audio`; the rest to websockets."""
        splitter = self._splitter
        if splitter is None:  # pragma: no cover - only called while splitting
            super().data_received(data)
            return
        for frame in splitter.split(data):
            if frame.oversized:  # websockets closes 1009; it reads everything from here on
                self._splitter = None
                self.take_audio = None
                super().data_received(bytes(frame.raw))
                return
            take = self.take_audio
            offered = take is not None and frame.audio and self.protocol.state is OPEN
            if offered and take is not None and take(frame.payload()):
                continue
            if frame.first & 0x08 == 0:  # a data frame: queued behind it, nothing is taken
                self.take_audio = None
            super().data_received(bytes(frame.raw))

    def _max_size(self) -> int | None:
        sizes = [self.protocol.max_message_size, self.protocol.max_fragment_size]
        limits = [size for size in sizes if size is not None]
        return min(limits) if limits else None

    def _refuse_method(self, data: bytes) -> bool:
        """Answer 405 to a method other than GET and HEAD (True when it did)."""
        self._request_line += data[: REQUEST_LINE_BYTES - len(self._request_line)]
        end = self._request_line.find(b"\r\n")
        if end < 0 and len(self._request_line) < REQUEST_LINE_BYTES:
            return False  # the request line is not complete yet: websockets buffers it too
        self._method_checked = True
        method, _, rest = bytes(self._request_line[: max(end, 0)]).partition(b" ")
        del self._request_line[:]
        if method.decode("ascii", "replace") in ALLOWED_METHODS or end < 0:
            return False  # websockets' parser answers (or drops) the rest
        if method == b"POST" and rest.startswith(HTTP_API_PREFIX) and self.guard.serve_http:
            self._start_exchange(data)
            return True
        self.dropped = "method"
        self.guard.on_drop("method")
        self.transport.write(method_not_allowed())
        if self.transport.can_write_eof():
            self.transport.write_eof()  # keep reading (and discarding) the body until EOF
        else:
            self.transport.close()
        return True

    def _start_exchange(self, data: bytes) -> None:
        """Serve this connection as one HTTP request (its bytes so far: ``data``)."""
        self.guard.handshaking.pop(self, None)
        self.guard.exchanges.add(self)
        self.exchange = HttpExchange(_Wire(self), self.guard.http_idle_s, self.guard.server_header)
        self.exchange.feed(data)
        self._exchange_started.set_result(None)

    # -- output -----------------------------------------------------------------------------------

    def send_data(self) -> None:
        super().send_data()
        if not self._check_buffer():
            raise ConnectionAbortedError("the peer does not read")

    def _check_buffer(self) -> bool:
        """Abort the connection when its write buffer is past the bound (False then)."""
        if self.dropped is not None:
            return False
        size = self.transport.get_write_buffer_size()
        limit = self.guard.max_write_buffer_bytes
        if size <= limit:
            return True
        self.guard.drop(self, "write_buffer", f"{size} bytes unread, over the {limit}-byte bound")
        return False

    async def drain(self) -> None:
        deadline = self.close_deadline
        if deadline is None:
            deadline = self.loop.time() + WRITE_STALL_S
        try:
            async with asyncio.timeout_at(deadline):
                await super().drain()
        except TimeoutError:
            what = "during the closing handshake" if self.close_deadline else f"{WRITE_STALL_S:g} s"
            self.guard.drop(self, "write_stall", f"it read nothing for {what}")
            raise ConnectionAbortedError("the peer does not read") from None


class _Wire:
    """The transport of a connection as an exchange's :class:`~.exchange.Wire`: writes
    bounded by the guard's write buffer, drains bounded by :data:`WRITE_STALL_S`."""

    def __init__(self, connection: GuardedConnection) -> None:
        self._connection = connection
        self._transport = connection.transport

    def write(self, data: bytes) -> None:
        self._transport.write(data)
        if not self._connection._check_buffer():
            raise ConnectionAbortedError("the peer does not read")

    async def drain(self) -> None:
        await self._connection.drain()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def can_write_eof(self) -> bool:
        return bool(self._transport.can_write_eof())

    def write_eof(self) -> None:
        self._transport.write_eof()

    def close(self) -> None:
        self._transport.close()


def connection_class(guard: TransportGuard) -> type[GuardedConnection]:
    """A :class:`GuardedConnection` subclass bound to ``guard`` (``serve(create_connection=)``)."""

    class BoundConnection(GuardedConnection):
        pass

    BoundConnection.guard = guard
    return BoundConnection


def method_not_allowed() -> bytes:
    """The complete 405 response (written before websockets has parsed the request)."""
    body = b"method not allowed: this port answers GET and HEAD\n"
    head = (
        "HTTP/1.1 405 Method Not Allowed\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        f"Allow: {', '.join(ALLOWED_METHODS)}\r\n"
        "Connection: close\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def _peer(connection: ServerConnection) -> str:
    try:
        address = connection.transport.get_extra_info("peername")
    except Exception:  # the transport may be gone already
        address = None
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "a peer"
