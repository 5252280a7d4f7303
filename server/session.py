"""One websocket connection: protocol v1 or the Vosk dialect over one engine stream.

A :class:`Session` runs in the connection's handler task. It reads one message at a time and
awaits the engine before reading the next, so a client that sends faster than the server decodes
is held back by websockets' bounded receive queue and TCP, not buffered here. Every way a session
ends goes through :meth:`Session.run`: a clean ``stop``/``eof`` closes 1000; an error sends
``{"type": "error", ...}`` and closes with the code of :data:`~.protocol.ERROR_TABLE`; an idle
timeout, a session past its audio limit and a server shutdown first flush the finals of the audio
already received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .audio import AudioFormat
from .config import ServerConfig
from .engine import Engine
from .errors import (
    AsrError,
    AudioAfterStopError,
    AudioBeforeStartError,
    DuplicateStartError,
    IdleTimeoutError,
    MessageAfterStopError,
    MessageTooBigError,
    ProtocolError,
    ServerShuttingDownError,
    SessionTooLongError,
    StopBeforeStartError,
)
from .events import Event, Final, Lagging, Partial
from .metrics import ServiceMetrics
from .protocol import (
    Close,
    JsonObject,
    StartMessage,
    StopMessage,
    check_frame,
    client_message,
    encode,
    end_message,
    error_message,
    error_spec,
    final_message,
    is_v1_message,
    lagging_message,
    parse_text,
    partial_message,
    ready_message,
)
from .stream import Stream
from .vosk import DEFAULT_SAMPLE_RATE, VoskConfig, VoskReplies, parse_vosk_text

log = logging.getLogger(__name__)

Mode = Literal["v1", "vosk", "auto"]
"""``auto`` (the root path): v1 when the first message is a JSON object with a ``type``."""
Message = str | bytes


@dataclass
class SessionContext:
    """What the sessions of one server share."""

    engine: Engine
    config: ServerConfig
    metrics: ServiceMetrics
    stopping: asyncio.Event
    """Set on shutdown: sessions flush their finals and close 1001."""


if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter  # subscriptable only from Python 3.11


class _SessionLog(_Adapter):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra.get('session')}] {msg}", kwargs


class AudioBudget:
    """Counts a session's audio and cuts it at the longest a session may stream."""

    def __init__(self, fmt: AudioFormat, max_seconds: float) -> None:
        self.format = fmt
        self.max_frames = int(max_seconds * fmt.sample_rate)
        self.frames = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.format.sample_rate

    def take(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` within the limit, and whether the limit was passed."""
        size = self.format.frame_bytes
        count = len(data) // size
        if len(data) % size:
            return data, False  # not whole samples: the intake raises its error
        if self.frames + count <= self.max_frames:
            self.frames += count
            return data, False
        keep = self.max_frames - self.frames
        self.frames = self.max_frames
        return data[: keep * size], True


class Session:
    """One connection's conversation with the engine."""

    def __init__(self, ws: ServerConnection, context: SessionContext, mode: Mode) -> None:
        self.ws = ws
        self.context = context
        self.mode: Mode = mode
        self.id = uuid.uuid4().hex[:12]
        self.log = _SessionLog(log, {"session": self.id})
        self._budget: AudioBudget | None = None
        self._stop_wait: asyncio.Future[Any] | None = None
        self._segment_start = 0.0
        self._counted: str | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._stop_wait = asyncio.ensure_future(self.context.stopping.wait())
        try:
            await self._converse()
        except ConnectionClosed as exc:
            self._peer_closed(exc)
        except Exception as exc:
            await self._fail(exc)
        finally:
            self._stop_wait.cancel()
            if self._counted is not None:
                self.context.metrics.session_closed(self._counted)

    async def _converse(self) -> None:
        first: Message | None = None
        if self.mode == "auto":
            first = await self._receive()
            self.mode = "v1" if is_v1_message(first) else "vosk"
        self._count(self.mode)
        self.log.info("%s session from %s", self.mode, self.ws.remote_address)
        if self.mode == "v1":
            await self._run_v1(first)
        else:
            await self._run_vosk(first)

    def _count(self, protocol: str) -> None:
        self._counted = protocol
        self.context.metrics.session_opened(protocol)

    async def _receive(self) -> Message:
        """The next message; raises on idle timeout and on shutdown."""
        stop = self._stop_wait
        if stop is None or stop.done():
            raise ServerShuttingDownError()
        recv = asyncio.ensure_future(self.ws.recv())
        timeout = self.context.config.idle_timeout_s
        try:
            done, _ = await asyncio.wait(
                {recv, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            if not recv.done():
                recv.cancel()
        if recv in done:
            return recv.result()
        if stop in done:
            raise ServerShuttingDownError()
        raise IdleTimeoutError(timeout)

    async def _send(self, message: JsonObject) -> None:
        await self.ws.send(encode(message))

    async def _fail(self, exc: Exception) -> None:
        spec = error_spec(exc)
        self.context.metrics.session_error(spec.code)
        if isinstance(exc, ProtocolError | IdleTimeoutError | SessionTooLongError):
            self.log.info("closing %d %s: %s", spec.close, spec.code, exc)
        elif isinstance(exc, AsrError):
            self.log.warning("closing %d %s: %s", spec.close, spec.code, exc)
        else:
            self.log.error("closing %d: unexpected error", spec.close, exc_info=exc)
        with contextlib.suppress(ConnectionClosed):
            await self._send(error_message(spec.code, client_message(exc)))
            await self._close(spec.close, spec.code)

    async def _close(self, code: int, reason: str = "") -> None:
        """Close, discarding what the client still sends: websockets stops reading the socket
        while its queue is full, and the client's close frame waits behind that audio."""
        drain = asyncio.ensure_future(self._discard_incoming())
        try:
            await self.ws.close(code, reason)
        finally:
            drain.cancel()

    async def _discard_incoming(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await self.ws.recv()

    def _peer_closed(self, exc: ConnectionClosed) -> None:
        if exc.sent is not None and exc.sent.code == Close.MESSAGE_TOO_BIG:
            error = MessageTooBigError(self.context.config.max_message_bytes)
            self.context.metrics.session_error(error_spec(error).code)
            self.log.info("closed 1009: %s (%s)", error, exc.sent.reason)
            return
        self.log.info("connection closed by the client (%s)", exc.rcvd or "no close frame")

    # -- shared audio steps ---------------------------------------------------------------------

    def _open(self, fmt: AudioFormat, start: StartMessage | None = None) -> Stream:
        options = self.context.config.stream_options
        if start is not None:
            options = start.stream_options(options)
        self._budget = AudioBudget(fmt, self.context.config.max_session_s)
        return self.context.engine.stream(fmt, options)

    async def _feed(self, stream: Stream, data: bytes) -> tuple[list[Event], bool]:
        """Feed one frame; the events, and whether the session just passed its audio limit."""
        check_frame(data)
        budget = self._budget
        if budget is None:
            raise AudioBeforeStartError()
        before = budget.seconds
        data, over = budget.take(data)
        events = await stream.feed_async(data) if data else []
        self.context.metrics.audio_received(budget.seconds - before)
        return events, over

    async def _flush(self, stream: Stream) -> list[Event]:
        """End the stream: the events of its last windows (empty if it already ended)."""
        if stream.finished:
            return []
        return await stream.finish_async()

    def _observe(self, events: list[Event], received: float) -> None:
        elapsed = time.monotonic() - received
        metrics = self.context.metrics
        for event in events:
            if isinstance(event, Final):
                metrics.final_sent(elapsed)
            elif isinstance(event, Partial):
                metrics.partial_sent(elapsed)
            else:
                metrics.lagged()

    # -- protocol v1 ----------------------------------------------------------------------------

    async def _run_v1(self, first: Message | None) -> None:
        message = first if first is not None else await self._receive()
        if isinstance(message, bytes):
            raise AudioBeforeStartError()
        start = parse_text(message)
        if isinstance(start, StopMessage):
            raise StopBeforeStartError()
        stream = self._open(start.audio_format(), start)
        engine = self.context.engine
        await self._send(ready_message(self.id, engine.manifest.name, engine.runner.precision))
        received = time.monotonic()
        while True:
            try:
                message = await self._receive()
            except (IdleTimeoutError, ServerShuttingDownError):
                await self._send_v1(await self._flush(stream), start, time.monotonic())
                raise
            received = time.monotonic()
            if isinstance(message, str):
                if isinstance(parse_text(message), StartMessage):
                    raise DuplicateStartError()
                break
            events, over = await self._feed(stream, message)
            await self._send_v1(events, start, received)
            if over:
                await self._send_v1(await self._flush(stream), start, received)
                raise SessionTooLongError(self.context.config.max_session_s)
        await self._finish_v1(stream, start, received)

    async def _finish_v1(self, stream: Stream, start: StartMessage, received: float) -> None:
        """After ``stop``: flush, then ``end`` and close 1000; anything the client sends after
        ``stop`` (already waiting when the flush is done) is an error instead."""
        late = asyncio.ensure_future(self.ws.recv())
        try:
            await self._send_v1(await self._flush(stream), start, received)
            await asyncio.sleep(0)
            if late.done():
                extra = late.result()
                raise AudioAfterStopError() if isinstance(extra, bytes) else MessageAfterStopError()
        finally:
            if not late.done():
                late.cancel()
        seconds = self._budget.seconds if self._budget is not None else 0.0
        await self._send(end_message(seconds))
        self.log.info("v1 session done: %.2f s of audio", seconds)
        await self._close(Close.NORMAL)

    async def _send_v1(self, events: list[Event], start: StartMessage, received: float) -> None:
        for event in events:
            if isinstance(event, Partial):
                if start.partials:
                    await self._send(partial_message(event, self._segment_start))
            elif isinstance(event, Final):
                self._segment_start = event.segment.end
                await self._send(final_message(event.segment, start.words))
            elif isinstance(event, Lagging):
                await self._send(lagging_message(event))
        self._observe(events, received)

    # -- Vosk -----------------------------------------------------------------------------------

    async def _run_vosk(self, first: Message | None) -> None:
        rate, words = DEFAULT_SAMPLE_RATE, True
        stream: Stream | None = None
        replies = VoskReplies(words)
        message = first
        while True:
            if message is None:
                try:
                    message = await self._receive()
                except (IdleTimeoutError, ServerShuttingDownError):
                    if stream is not None:
                        await self._send(replies.final(await self._flush(stream)))
                    raise
            received = time.monotonic()
            if isinstance(message, bytes):
                if stream is None:
                    stream = self._open(AudioFormat("s16le", rate, 1))
                    replies = VoskReplies(words)
                events, over = await self._feed(stream, message)
                self._observe(events, received)
                await self._send(replies.reply(events))
                if over:
                    await self._send(replies.final(await self._flush(stream)))
                    raise SessionTooLongError(self.context.config.max_session_s)
            else:
                parsed = parse_vosk_text(message)
                if isinstance(parsed, VoskConfig):
                    if stream is not None:
                        self.log.info("ignoring a config after the audio started")
                    else:
                        rate = parsed.sample_rate or rate
                        words = words if parsed.words is None else parsed.words
                else:
                    if stream is None:
                        stream = self._open(AudioFormat("s16le", rate, 1))
                        replies = VoskReplies(words)
                    events = await self._flush(stream)
                    self._observe(events, received)
                    await self._send(replies.final(events))
                    seconds = self._budget.seconds if self._budget is not None else 0.0
                    self.log.info("vosk session done: %.2f s of audio", seconds)
                    await self._close(Close.NORMAL)
                    return
            message = None
