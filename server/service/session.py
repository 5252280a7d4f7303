"""One websocket connection: the I/O of a protocol v1 or Vosk conversation.

A :class:`Session` runs in the connection's handler task and only moves bytes: it waits for the
next message until the conversation's deadline (or a server shutdown), hands it to the
:class:`~.conversation.Conversation` (:mod:`.dialects`), and carries out the actions that come
back: open the engine stream, feed it, flush it, send, close. Every rule of the protocol (order,
limits, timeouts, what is flushed before an error) is the conversation's.

It reads one message at a time and awaits the engine before reading the next, so a client that
sends faster than the server decodes is held back by websockets' bounded receive queue and TCP,
not buffered here.

Protocol v1's audio frames mostly skip the task: while the task waits for a message with
nothing queued, the connection hands each whole binary message straight to
:meth:`Session.take_audio`, in the socket's data callback (:mod:`.direct`). What that leads to
that must be awaited (windows to decode, a message to send, a close) is handed over to the task
(:attr:`Session._handover`), which is woken for it, and no frame is taken until it waits again;
frames gathered and not yet handed in go first whenever the task acts. Order and back-pressure
stay those of the task: it is the one reader whenever there is something to await.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from streamasr.server.engine.engine import Engine
from streamasr.server.engine.stream import Stream
from streamasr.server.errors import MessageTooBigError
from streamasr.server.protocol.admission import Mode, first_dialect
from streamasr.server.protocol.clientjson import is_v1_message
from streamasr.server.protocol.conversation import (
    Action,
    Close,
    Conversation,
    Feed,
    Flush,
    Limits,
    Message,
    Open,
    Send,
    State,
)
from streamasr.server.protocol.dialects import V1Conversation, VoskConversation
from streamasr.server.protocol.openai.realtime_conversation import RealtimeConversation
from streamasr.server.protocol.v1 import CloseCode, encode, error_spec
from streamasr.server.service.config import ServerConfig
from streamasr.server.service.direct import Decode, DirectAudio, Step
from streamasr.server.service.metrics import ServiceMetrics
from streamasr.server.service.wire.transport import GuardedConnection

log = logging.getLogger(__name__)

"""``auto`` (the root path): v1 when the first message is a JSON object with a ``type``."""


@dataclass
class SessionContext:
    """What the sessions of one server share."""

    engine: Engine
    config: ServerConfig
    metrics: ServiceMetrics
    stopping: asyncio.Event
    """Set on shutdown: sessions flush their finals and close 1001."""
    clock: Callable[[], float] = field(default=time.monotonic)
    """The conversations' clock (timeouts, latencies)."""


if TYPE_CHECKING:
    _Adapter = logging.LoggerAdapter[logging.Logger]
else:
    _Adapter = logging.LoggerAdapter  # subscriptable only from Python 3.11


class _SessionLog(_Adapter):
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"[{extra.get('session')}] {msg}", kwargs


class Session:
    """One connection's conversation with the engine."""

    def __init__(self, ws: ServerConnection, context: SessionContext, mode: Mode) -> None:
        self.ws = ws
        self.context = context
        self.mode: Mode = mode
        self.id = uuid.uuid4().hex[:12]
        self.log = _SessionLog(log, {"session": self.id})
        self.conversation = self._conversation(first_dialect(mode))
        self._stream: Stream | None = None
        self._task: asyncio.Task[Any] | None = None
        self._receiving = False
        """Whether the task waits in ``recv()`` (where :meth:`_interrupt` may cancel it)."""
        self._interrupted = False
        self._due = math.inf
        """Loop time at which the ``recv()`` in progress gives up."""
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = math.inf
        self._counted: str | None = None
        self._handover: list[Step] = []
        self._held_message: Message | None = None
        """A message received while frames taken before it still had steps to carry out."""
        """Actions of taken audio that the task carries out before anything else."""
        self._wire = ws if isinstance(ws, GuardedConnection) else None
        """The connection that offers binary messages to :meth:`take_audio` (None: it cannot)."""
        self._direct = DirectAudio(lambda: self.conversation, lambda: self._stream, context.clock)

    def _conversation(self, dialect: Literal["v1", "vosk", "realtime"]) -> Conversation:
        config = self.context.config
        limits, options = Limits.of(config), config.stream_options
        clock, metrics = self.context.clock, self.context.metrics
        if dialect == "vosk":  # punctuated only when the server was told to (--punctuation)
            vosk = replace(options, punctuate=config.punctuation is not None)
            return VoskConversation(limits, vosk, clock=clock, metrics=metrics, log=self.log)
        if dialect == "realtime":
            request = self.ws.request
            beta = request is not None and "realtime=v1" in request.headers.get("OpenAI-Beta", "")
            return RealtimeConversation(
                limits,
                options,
                session=self.id,
                beta=beta,
                clock=clock,
                metrics=metrics,
                log=self.log,
            )
        engine = self.context.engine
        return V1Conversation(
            limits,
            options,
            session=self.id,
            model=engine.manifest.name,
            precision=engine.scheduler.precision,
            clock=clock,
            metrics=metrics,
            log=self.log,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        if self.mode != "auto":
            self._opened(self.mode)
        try:
            await self._execute(self.conversation.greeting())
            while (
                self.conversation.state is not State.CLOSED
                or self._handover
                or self._held_message is not None
            ):
                await self._execute(await self._next())
        except ConnectionClosed as exc:
            self._peer_closed(exc)
        finally:
            if self._alarm is not None:
                self._alarm.cancel()
            self._direct.hand_in()  # the last frames gathered count as received (not decoded)
            self.conversation.report_audio()
            if self._counted is not None:
                self.context.metrics.session_closed(self._counted)

    def wake(self) -> None:
        """Stop waiting for the client's next message (the server is stopping): the session's
        next turn sees ``stopping`` set. Call from the event loop."""
        if self._receiving:
            self._interrupt()

    def _opened(self, dialect: str) -> None:
        self._counted = dialect
        self.context.metrics.session_opened(dialect)
        self.log.info("%s session from %s", dialect, self.ws.remote_address)

    async def _next(self) -> Sequence[Step]:
        """What the conversation does next: with a message, on its deadline, or on shutdown."""
        steps, self._handover = self._handover or self._direct.hand_in(), []
        if steps:
            return steps
        conversation = self.conversation
        try:
            message, self._held_message = self._held_message, None
            if message is None:
                if self.context.stopping.is_set():
                    return conversation.shutdown()
                now = self.context.clock()
                deadline = conversation.deadline()
                if now >= deadline:
                    return conversation.expire(now)
                message = await self._receive(deadline - now)
                if message is None:
                    return []  # the deadline or a shutdown: the next turn acts on it
                steps = self._direct.hand_in()  # frames taken before this message come first
                if steps:
                    self._held_message = message
                    return steps
            if self.mode == "auto":
                self.mode = "v1" if is_v1_message(message) else "vosk"
                self.conversation = self._conversation(self.mode)
                self._opened(self.mode)
            return self.conversation.receive(message)
        except ConnectionClosed:
            raise
        except Exception as exc:
            return self.conversation.fail(exc)

    async def _receive(self, timeout: float) -> Message | None:
        """The next message, or None after ``timeout`` seconds or when :meth:`wake` is called.

        A plain ``recv()``, interrupted by cancelling it, which is safe (websockets keeps the
        message for the next call). The session's one alarm is set for the deadline only when
        that comes earlier than the alarm; ringing early (messages came and moved the deadline
        on), it sets itself for the new one: no timer per message."""
        loop = asyncio.get_running_loop()
        self._due = due = loop.time() + timeout
        if self._alarm_at > due:
            self._set_alarm(due)
        self._receiving = True
        if self._wire is not None and self.conversation.joins_audio and self.mode != "auto":
            self._wire.take_audio = self.take_audio
        try:
            return await self.ws.recv()
        except asyncio.CancelledError:
            task = self._task
            if not self._interrupted or task is None or task.uncancel() > 0:
                raise  # cancelled by someone else as well
            return None
        finally:
            self._receiving = self._interrupted = False
            if self._wire is not None:
                self._wire.take_audio = None

    def take_audio(self, data: bytes) -> bool:
        """A binary message, taken now, in the connection's data callback, while the task waits
        in ``recv()`` with nothing queued (False: not taken, websockets queues it for the task):
        :class:`~.direct.DirectAudio`. What must be awaited is handed over to the task
        (:attr:`_handover`), which is woken for it, and nothing more is taken until then."""
        if self._handover or not self._receiving or self.context.stopping.is_set():
            return False
        taken, steps = self._direct.take(data)
        if steps:
            self._handover = steps
            if self._wire is not None:
                self._wire.take_audio = None
            self._interrupt()
        return taken

    def _set_alarm(self, when: float) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
        loop = asyncio.get_running_loop()
        self._alarm = None if when == math.inf else loop.call_at(when, self._ring)
        self._alarm_at = when

    def _ring(self) -> None:
        self._alarm, self._alarm_at = None, math.inf
        if not self._receiving:
            return  # the next _receive sets the alarm again
        if asyncio.get_running_loop().time() >= self._due:
            self._interrupt()
        else:
            self._set_alarm(self._due)

    def _interrupt(self) -> None:
        """Cancel the waiting ``recv()`` (called only while it waits: callbacks run while the
        task is suspended there)."""
        if not self._interrupted and self._task is not None:
            self._interrupted = True
            self._task.cancel()

    async def _waiting_message(self) -> Message | None:
        """A message websockets already holds, without waiting for one: recv() returns at its
        first step when a message is queued, so one step of the task tells."""
        recv = asyncio.ensure_future(self.ws.recv())
        await asyncio.sleep(0)
        if not recv.done():
            recv.cancel()
            await asyncio.wait({recv})
        if recv.cancelled() or recv.exception() is not None:
            return None
        return recv.result()

    # -- actions --------------------------------------------------------------------------------

    async def _execute(self, actions: Sequence[Step]) -> None:
        pending: deque[Step] = deque(actions)
        while pending:
            action = pending.popleft()
            try:
                more = await self._act(action)
            except ConnectionClosed:
                raise
            except Exception as exc:
                pending = deque(self.conversation.fail(exc))
                continue
            pending.extend(more)

    async def _act(self, action: Step) -> list[Action]:
        conversation = self.conversation
        if isinstance(action, Feed):  # most actions: first
            return conversation.stream_events(await self._opened_stream().feed_async(action.data))
        if isinstance(action, Decode):
            return conversation.stream_events(await self._opened_stream().decode_async(action.fed))
        if isinstance(action, Send):
            await self.ws.send(encode(action.message))
        elif isinstance(action, Open):
            self._stream = self.context.engine.stream(action.format, action.options)
        elif isinstance(action, Flush):
            events = await self._opened_stream().finish_async()
            late = await self._waiting_message()
            before = conversation.receive(late) if late is not None else []
            return before + conversation.flushed(events)
        elif isinstance(action, Close):
            await self._close(action.code, action.reason)
        return []

    def _opened_stream(self) -> Stream:
        if self._stream is None:  # pragma: no cover - a conversation opens before it feeds
            raise RuntimeError("the conversation fed a stream it did not open")
        return self._stream

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
        if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
            error = MessageTooBigError(self.context.config.max_message_bytes)
            self.context.metrics.session_error(error_spec(error).code)
            self.log.info("closed 1009: %s (%s)", error, exc.sent.reason)
            return
        self.log.info("connection closed by the client (%s)", exc.rcvd or "no close frame")
