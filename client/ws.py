"""An asyncio client for protocol v1 over ``websockets``.

    async with open_session(ConnectOptions(url, token), StartSettings(48000)) as session:
        end = await session.run(chunks, on_result)  # chunks: async iterable of PCM bytes

:func:`open_session` connects, sends ``start`` and waits for ``ready``; :meth:`Session.run` sends
the audio while it receives results, then ``stop``, and returns the server's ``end``. A server
``error`` message raises :class:`~.messages.ServerError`; a connection that closes without
``end`` raises :class:`ConnectionLostError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from streamasr.server.constants import DEFAULT_PORT, V1_PATH

from .messages import (
    STOP_MESSAGE,
    ClientError,
    End,
    FinalResult,
    Lagging,
    PartialResult,
    Ready,
    ServerMessageError,
    StartSettings,
    Unknown,
    parse_message,
    start_message,
)

log = logging.getLogger(__name__)

DEFAULT_URL = f"ws://localhost:{DEFAULT_PORT}{V1_PATH}"

Result = PartialResult | FinalResult
"""What a session reports while audio flows."""


class ConnectError(ClientError):
    """The websocket could not be opened (refused, bad URL, handshake rejected)."""


class ConnectionLostError(ClientError):
    """The connection closed before the server sent ``end``."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed before the end of the stream (code {code} {reason})")
        self.code = code
        self.reason = reason

    @classmethod
    def of(cls, closed: ConnectionClosed) -> ConnectionLostError:
        """The error for a websocket that closed with the server's close frame ``closed.rcvd``."""
        frame = closed.rcvd
        if frame is None:
            return cls(None, "")
        return cls(frame.code, frame.reason)


@dataclass(frozen=True)
class ConnectOptions:
    """Where and how to connect."""

    url: str = DEFAULT_URL
    """``ws://`` or ``wss://`` URL of the stream endpoint."""
    token: str | None = None
    """Bearer token sent in the ``Authorization`` header."""
    insecure: bool = False
    """For ``wss://``: accept any certificate (self-signed servers)."""
    open_timeout: float = 10.0
    """Seconds to wait for the connection and for ``ready``."""
    close_timeout: float = 10.0
    """Seconds to wait for the closing handshake."""

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in ("ws", "wss"):
            raise ValueError(f"URL must start with ws:// or wss://, got {self.url!r}")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``wss://`` (None lets websockets use the default one)."""
        if not self.url.startswith("wss://") or not self.insecure:
            return None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context


class Session:
    """One recognition stream on an open connection, after ``ready``."""

    def __init__(self, connection: ClientConnection, ready: Ready) -> None:
        self._connection = connection
        self.ready = ready
        self._stopped = False

    async def send_audio(self, data: bytes) -> None:
        """Send one binary frame of PCM (waits while the server is behind: backpressure)."""
        if self._stopped:
            raise ClientError("audio after stop")
        await self._connection.send(data)

    async def stop(self) -> None:
        """Tell the server the audio is over (once); results and ``end`` follow."""
        if not self._stopped:
            self._stopped = True
            await self._connection.send(STOP_MESSAGE)

    async def results(self) -> AsyncIterator[Result | End]:
        """Partials and finals as they come, then ``end`` (last).

        ``lagging`` is logged as a warning; message types this client does not know are skipped.
        """
        while True:
            try:
                frame = await self._connection.recv()
            except ConnectionClosed as exc:
                raise ConnectionLostError.of(exc) from exc
            message = parse_message(frame)
            if isinstance(message, Ready):
                raise ServerMessageError("second ready message")
            if isinstance(message, Unknown):
                log.debug("ignoring a %r message", message.type)
                continue
            if isinstance(message, Lagging):
                log.warning("the server is %.1f s behind the audio", message.lag_s)
                continue
            yield message
            if isinstance(message, End):
                return

    async def run(self, chunks: AsyncIterable[bytes], on_result: Callable[[Result], None]) -> End:
        """Send ``chunks`` then ``stop`` while passing each result to ``on_result``; the ``end``.

        If the audio source fails, the error propagates (the connection is closed by the
        caller's ``open_session``); if the server fails, its error does.
        """
        sender = asyncio.create_task(self._send_all(chunks), name="asr-send")
        receiver = asyncio.create_task(self._receive_all(on_result), name="asr-receive")
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                error = sender.exception()
                if error is not None and not isinstance(error, ConnectionClosed):
                    raise error
                # The connection closed under the sender: the receiver says why.
            return await receiver
        finally:
            for task in (sender, receiver):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _send_all(self, chunks: AsyncIterable[bytes]) -> None:
        async for chunk in chunks:
            if chunk:
                await self.send_audio(chunk)
        await self.stop()

    async def _receive_all(self, on_result: Callable[[Result], None]) -> End:
        async for message in self.results():
            if isinstance(message, End):
                return message
            on_result(message)
        raise ServerMessageError("results ended without an end message")  # pragma: no cover


@contextlib.asynccontextmanager
async def open_session(options: ConnectOptions, settings: StartSettings) -> AsyncIterator[Session]:
    """Connect, send ``start`` and wait for ``ready``; the connection closes on exit."""
    headers = {"Authorization": f"Bearer {options.token}"} if options.token else None
    context = options.ssl_context()
    # No ``ssl`` argument keeps websockets' defaults: plain ws, or wss with verification.
    tls: dict[str, Any] = {} if context is None else {"ssl": context}
    try:
        connection = await connect(
            options.url,
            additional_headers=headers,
            open_timeout=options.open_timeout,
            close_timeout=options.close_timeout,
            compression=None,
            **tls,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        body = exc.response.body.decode("utf-8", "replace").strip() if exc.response.body else ""
        raise ConnectError(f"{options.url} refused the connection: HTTP {status} {body}") from exc
    except (InvalidURI, InvalidHandshake, OSError, TimeoutError) as exc:
        raise ConnectError(f"cannot connect to {options.url}: {exc}") from exc
    try:
        await connection.send(start_message(settings))
        ready = await asyncio.wait_for(_first_message(connection), options.open_timeout)
        log.info(
            "session %s: model %s (%s), protocol %d",
            ready.session,
            ready.model,
            ready.precision,
            ready.protocol,
        )
        yield Session(connection, ready)
    finally:
        await connection.close()


async def _first_message(connection: ClientConnection) -> Ready:
    try:
        frame = await connection.recv()
    except ConnectionClosed as exc:
        raise ConnectionLostError.of(exc) from exc
    message = parse_message(frame)
    if not isinstance(message, Ready):
        raise ServerMessageError(f"expected ready, got {type(message).__name__}")
    return message
