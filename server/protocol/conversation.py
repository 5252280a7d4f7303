"""A session's conversation without sockets: client messages in, actions out.

In the manner of python-websockets' ``Protocol``, a :class:`Conversation` does no I/O. The
session driver hands it each client message (:meth:`~Conversation.receive`), what the engine
produced for a :class:`Feed` (:meth:`~Conversation.stream_events`) or a :class:`Flush`
(:meth:`~Conversation.flushed`), the passing of time (:meth:`~Conversation.expire`, by
:meth:`~Conversation.deadline`), a server shutdown and unexpected failures; each call returns the
actions to carry out, in order. A :class:`Feed` or :class:`Flush` is always the last action of a
list, and the driver reports its result before it hands in anything else.

The ordering rules (start first, nothing after stop), the idle timeout, the minimum audio rate,
the session's audio limit and the flush of finals before a limit's error all live here, timed by
an injected clock, so they are unit-tested without a server (tests/test_conversation.py). The
dialects (protocol v1 and Vosk) are the subclasses in :mod:`.dialects`.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from streamasr.server.errors import (
    AsrError,
    IdleTimeoutError,
    ProtocolError,
    ServerShuttingDownError,
    SessionTooLongError,
    TooSlowError,
)
from streamasr.server.events import Event, Final, Partial
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.clientjson import JsonObject
from streamasr.server.protocol.v1 import check_frame, client_message, error_message, error_spec

if TYPE_CHECKING:
    from streamasr.server.service.config import ServerConfig

Log: TypeAlias = "logging.Logger | logging.LoggerAdapter[logging.Logger]"
Message: TypeAlias = str | bytes
Clock: TypeAlias = Callable[[], float]

AUDIO_REPORT_S = 1.0
"""Audio a conversation collects before it reports it to the metrics (it also reports with
each reply to the engine's events and at the end): one metrics call, which takes a lock, per
second of audio instead of one per frame."""


class State(enum.Enum):
    AWAITING_START = "awaiting_start"
    """v1: before ``start``; Vosk: before the first audio (a ``config`` may come)."""
    STREAMING = "streaming"
    """The engine stream is open and takes audio."""
    FLUSHING = "flushing"
    """A :class:`Flush` is out: the last finals are being decoded."""
    CLOSED = "closed"
    """The last actions (``end`` or ``error``, then :class:`Close`) are out."""


# -- actions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """Open the engine stream."""

    format: AudioFormat
    options: StreamOptions


@dataclass(frozen=True)
class Feed:
    """Feed audio to the stream; report its events to :meth:`Conversation.stream_events`."""

    data: bytes


@dataclass(frozen=True)
class Flush:
    """End the stream; report its last events to :meth:`Conversation.flushed`."""


@dataclass(frozen=True)
class Send:
    """Send a JSON message (a text frame)."""

    message: JsonObject


@dataclass(frozen=True)
class Close:
    """Close the connection with this code and reason."""

    code: int
    reason: str = ""


Action: TypeAlias = Open | Feed | Flush | Send | Close


class SessionMetrics(Protocol):
    """The part of :class:`~.metrics.ServiceMetrics` a conversation reports to."""

    def audio_received(self, seconds: float) -> None: ...
    def partial_sent(self, latency_s: float) -> None: ...
    def final_sent(self, latency_s: float) -> None: ...
    def lagged(self) -> None: ...
    def session_error(self, code: str) -> None: ...


@dataclass(frozen=True)
class Limits:
    """What a session may take: the ``ServerConfig`` fields of the same names."""

    idle_timeout_s: float
    """Longest wait for a client message."""
    min_audio_s: float
    """Audio due in every ``min_audio_window_s`` of wall time after the first message (0: no
    check); time the server spends decoding does not count."""
    min_audio_window_s: float
    max_session_s: float
    """Longest audio of one session (seconds of audio)."""

    @classmethod
    def of(cls, config: ServerConfig) -> Limits:
        return cls(
            config.idle_timeout_s,
            config.min_audio_s,
            config.min_audio_window_s,
            config.max_session_s,
        )


class AudioBudget:
    """Counts a session's audio and cuts it at the longest a session may stream."""

    def __init__(self, fmt: AudioFormat, max_seconds: float) -> None:
        self.format = fmt
        self.frame_bytes = fmt.frame_bytes
        self.max_frames = int(max_seconds * fmt.sample_rate)
        self.frames = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.format.sample_rate

    def take(self, data: bytes) -> tuple[bytes, bool]:
        """The part of ``data`` within the limit, and whether the limit was passed."""
        size = self.frame_bytes
        count = len(data) // size
        if len(data) % size:
            return data, False  # not whole samples: the intake raises its error
        if self.frames + count <= self.max_frames:
            self.frames += count
            return data, False
        keep = self.max_frames - self.frames
        self.frames = self.max_frames
        return data[: keep * size], True


class Conversation:
    """One session's conversation; the dialects fill in the ``_`` hooks below."""

    protocol = ""
    """The metrics label of the dialect."""
    joins_audio = False
    """Whether binary messages that come one after another may be handed in as one (the
    dialect replies to the audio's events, not to each message)."""

    def __init__(
        self,
        limits: Limits,
        options: StreamOptions,
        *,
        clock: Clock,
        metrics: SessionMetrics,
        log: Log,
    ) -> None:
        self.limits = limits
        self.options = options
        """The server's stream options (a v1 ``start`` may override some)."""
        self.clock = clock
        self.metrics = metrics
        self.log = log
        self.state = State.AWAITING_START
        self.budget: AudioBudget | None = None
        """Set when the stream opens."""
        now = clock()
        self._listening_since = now
        self._window_end: float | None = None
        self._window_audio = 0.0
        self._received = now
        self._over = False
        self._ending: AsrError | None = None
        """Why the session ends after the flush (None: the client's stop/eof)."""
        self._late: AsrError | None = None
        self._unreported_audio = 0.0

    @property
    def audio_seconds(self) -> float:
        return self.budget.seconds if self.budget is not None else 0.0

    # -- what the driver hands in -------------------------------------------------------------

    def greeting(self) -> list[Action]:
        """What the server says as soon as the session opens (the realtime dialect's
        ``session.created``; nothing in the others)."""
        return []

    def receive(self, message: Message, at: float | None = None) -> list[Action]:
        """A client message, received ``at`` on the clock (None: now)."""
        if self.state is State.CLOSED:
            return []
        if self.state is State.FLUSHING:
            self._late = self._late or self._after_end(message)
            return []
        now = self.clock() if at is None else at
        self._received = self._listening_since = now
        if self._window_end is None and self.limits.min_audio_s > 0:
            self._window_end = now + self.limits.min_audio_window_s
        try:
            if isinstance(message, bytes):
                return self._audio(message)
            return self._text(message)
        except AsrError as exc:
            return self._error(exc)

    def stream_events(self, events: Sequence[Event]) -> list[Action]:
        """What the stream produced for the last :class:`Feed`."""
        now = self.clock()
        if self._window_end is not None:
            self._window_end += now - self._listening_since  # decoding time does not count
        self._listening_since = now
        actions = self._replies(events)
        if events:
            self._observe(events, now)
            self.report_audio()
        if self._over:
            return actions + self._end(SessionTooLongError(self.limits.max_session_s))
        return actions

    def flushed(self, events: Sequence[Event]) -> list[Action]:
        """What the stream produced for the :class:`Flush`: the last finals, then the end."""
        actions = self._last_replies(events)
        self._observe(events, self.clock())
        self.report_audio()
        error = self._late or self._ending
        if error is not None:
            return actions + self._error(error)
        self.state = State.CLOSED
        self.log.info("%s session done: %.2f s of audio", self.protocol, self.audio_seconds)
        return actions + self._done() + [Close(1000)]

    def deadline(self) -> float:
        """When :meth:`expire` must be called if no message came before (inf: never)."""
        if self.state in (State.FLUSHING, State.CLOSED):
            return math.inf
        idle = self._listening_since + self.limits.idle_timeout_s
        return idle if self._window_end is None else min(idle, self._window_end)

    def expire(self, now: float) -> list[Action]:
        """Time has passed: past the idle timeout or a too slow window, the session ends (the
        finals of the audio received first)."""
        if now < self.deadline():
            return []
        error: AsrError
        if now >= self._listening_since + self.limits.idle_timeout_s:
            error = IdleTimeoutError(self.limits.idle_timeout_s)
        elif self._window_audio >= self.limits.min_audio_s:
            self._window_end = now + self.limits.min_audio_window_s
            self._window_audio = 0.0
            return []
        else:
            error = TooSlowError(self.limits.min_audio_s, self.limits.min_audio_window_s)
        self._received = now
        return self._end(error)

    def shutdown(self) -> list[Action]:
        """The server is stopping: flush, then ``shutting_down``."""
        if self.state in (State.FLUSHING, State.CLOSED):
            return []
        self._received = self.clock()
        return self._end(ServerShuttingDownError())

    def fail(self, exc: Exception) -> list[Action]:
        """The engine (or the driver) failed: the error and its close code, no flush."""
        if self.state is State.CLOSED:
            return []
        return self._error(exc)

    # -- shared steps ---------------------------------------------------------------------------

    def report_audio(self) -> None:
        """Report the audio received and not reported yet (the driver calls it once more when
        the connection ends)."""
        if self._unreported_audio:
            self.metrics.audio_received(self._unreported_audio)
            self._unreported_audio = 0.0

    def _audio(self, data: bytes) -> list[Action]:
        check_frame(data)
        actions: list[Action] = []
        budget = self.budget
        if budget is None:
            actions.append(self._open(self._audio_format(), self.options))
            budget = self._opened()
        frames = budget.frames
        data, self._over = budget.take(data)
        seconds = (budget.frames - frames) / budget.format.sample_rate
        self._window_audio += seconds
        self._unreported_audio += seconds
        if self._unreported_audio >= AUDIO_REPORT_S:
            self.report_audio()
        if data:
            actions.append(Feed(data))
            return actions
        return actions + self.stream_events([])

    def _open(self, fmt: AudioFormat, options: StreamOptions) -> Open:
        self.budget = AudioBudget(fmt, self.limits.max_session_s)
        self.state = State.STREAMING
        return Open(fmt, options)

    def _opened(self) -> AudioBudget:
        if self.budget is None:  # pragma: no cover - _open sets it
            raise AsrError("the stream is not open")
        return self.budget

    def _end(self, error: AsrError | None) -> list[Action]:
        """Flush (when a stream is open), then end: with ``error``, or normally (None)."""
        if self.budget is None:  # nothing to flush
            return self._error(error or AsrError("the session ended before its stream opened"))
        self.state = State.FLUSHING
        self._ending = error
        return [Flush()]

    def _error(self, exc: BaseException) -> list[Action]:
        spec = error_spec(exc)
        self.report_audio()
        self.metrics.session_error(spec.code)
        if isinstance(exc, ProtocolError | IdleTimeoutError | TooSlowError | SessionTooLongError):
            self.log.info("closing %d %s: %s", spec.close, spec.code, exc)
        elif isinstance(exc, AsrError):
            self.log.warning("closing %d %s: %s", spec.close, spec.code, exc)
        else:
            self.log.error("closing %d: unexpected error", spec.close, exc_info=exc)
        self.state = State.CLOSED
        return [Send(error_message(spec.code, client_message(exc))), Close(spec.close, spec.code)]

    def _observe(self, events: Sequence[Event], now: float) -> None:
        elapsed = now - self._received
        for event in events:
            if isinstance(event, Final):
                self.metrics.final_sent(elapsed)
            elif isinstance(event, Partial):
                self.metrics.partial_sent(elapsed)
            else:
                self.metrics.lagged()

    # -- the dialect's hooks --------------------------------------------------------------------

    def _text(self, text: str) -> list[Action]:
        raise NotImplementedError

    def _audio_format(self) -> AudioFormat:
        """The format of audio that comes before the stream is open (or raise)."""
        raise NotImplementedError

    def _replies(self, events: Sequence[Event]) -> list[Action]:
        """Messages for the events of one :class:`Feed`."""
        raise NotImplementedError

    def _last_replies(self, events: Sequence[Event]) -> list[Action]:
        """Messages for the events of the :class:`Flush`."""
        raise NotImplementedError

    def _done(self) -> list[Action]:
        """Messages after the last replies of a normal end, before the close."""
        raise NotImplementedError

    def _after_end(self, message: Message) -> AsrError | None:
        """The error of a message that came during the flush (None: ignored)."""
        raise NotImplementedError
