"""The two conversations a session can hold: protocol v1 and the Vosk dialect.

Both are :class:`~.conversation.Conversation` state machines (no sockets); they differ only in how
they read text messages, what they reply to the engine's events and how a normal end looks. The
flush before an end, the limits and the error handling are the base class's, written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from streamasr.server.errors import (
    AsrError,
    AudioAfterStopError,
    AudioBeforeStartError,
    DuplicateStartError,
    MessageAfterStopError,
    StopBeforeStartError,
)
from streamasr.server.events import Event, Final, Partial
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DecodingOptions
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.conversation import (
    Action,
    Clock,
    Conversation,
    Limits,
    Log,
    Open,
    Send,
    SessionMetrics,
    State,
)
from streamasr.server.protocol.v1 import (
    StartMessage,
    StopMessage,
    end_message,
    final_message,
    lagging_message,
    parse_text,
    partial_message,
    ready_message,
)
from streamasr.server.protocol.vosk import (
    DEFAULT_SAMPLE_RATE,
    VoskConfig,
    VoskReplies,
    parse_vosk_text,
)


class V1Conversation(Conversation):
    """Protocol v1: ``start``, binary frames, ``stop``; ``ready`` first, ``end`` last."""

    protocol = "v1"
    joins_audio = True

    def __init__(
        self,
        limits: Limits,
        options: StreamOptions,
        *,
        session: str,
        model: str,
        precision: str,
        clock: Clock,
        metrics: SessionMetrics,
        log: Log,
    ) -> None:
        super().__init__(limits, options, clock=clock, metrics=metrics, log=log)
        self.ready = ready_message(session, model, precision)
        self.partials = True
        self.words = True
        self._segment_start = 0.0
        """Where the current segment began as far as the client knows (the last final's end)."""

    def _text(self, text: str) -> list[Action]:
        message = parse_text(text)
        if self.state is State.AWAITING_START:
            if isinstance(message, StopMessage):
                raise StopBeforeStartError()
            options = message.stream_options(self.options)
            self.partials, self.words = message.partials, message.words
            return [self._open(message.audio_format(), options), Send(self.ready)]
        if isinstance(message, StartMessage):
            raise DuplicateStartError()
        return self._end(None)

    def _audio_format(self) -> AudioFormat:
        raise AudioBeforeStartError()

    def _replies(self, events: Sequence[Event]) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            if isinstance(event, Partial):
                if self.partials:
                    actions.append(Send(partial_message(event, self._segment_start)))
            elif isinstance(event, Final):
                self._segment_start = event.segment.end
                actions.append(Send(final_message(event.segment, self.words)))
            else:
                actions.append(Send(lagging_message(event)))
        return actions

    def _last_replies(self, events: Sequence[Event]) -> list[Action]:
        return self._replies(events)

    def _done(self) -> list[Action]:
        return [Send(end_message(self.audio_seconds))]

    def _after_end(self, message: str | bytes) -> AsrError | None:
        if self._ending is not None:
            return None  # the session already ends with its own error
        return AudioAfterStopError() if isinstance(message, bytes) else MessageAfterStopError()


class VoskConversation(Conversation):
    """The Vosk dialect: optional ``config``, frames, ``eof``; one reply per frame and ``eof``."""

    protocol = "vosk"

    def __init__(
        self,
        limits: Limits,
        options: StreamOptions,
        *,
        clock: Clock,
        metrics: SessionMetrics,
        log: Log,
    ) -> None:
        super().__init__(limits, options, clock=clock, metrics=metrics, log=log)
        self.sample_rate = DEFAULT_SAMPLE_RATE
        self.words = True
        self.alternatives = 0
        self.replies = VoskReplies(self.words)

    def _text(self, text: str) -> list[Action]:
        message = parse_vosk_text(text)
        if isinstance(message, VoskConfig):
            if self.state is not State.AWAITING_START:
                self.log.info("ignoring a config after the audio started")
            else:
                self.sample_rate = message.sample_rate or self.sample_rate
                self.words = self.words if message.words is None else message.words
                if message.max_alternatives is not None:
                    self.alternatives = message.max_alternatives
                if message.phrase_list is not None:  # boosted, not a grammar (docs/lm.md)
                    hotwords = DecodingOptions(hotwords=message.phrase_list)
                    self.options = replace(self.options, decoding=hotwords)
            return []
        actions: list[Action] = []
        if self.budget is None:  # eof before any audio: its reply is an empty result
            actions.append(self._open(self._audio_format(), self.options))
        return actions + self._end(None)

    def _audio_format(self) -> AudioFormat:
        return AudioFormat("s16le", self.sample_rate, 1)

    def _open(self, fmt: AudioFormat, options: StreamOptions) -> Open:
        self.replies = VoskReplies(self.words, self.alternatives)
        if self.alternatives > 1:  # the beam search keeps its n-best (greedy ignores it)
            decoding = replace(
                options.decoding or DecodingOptions(), alternatives=self.alternatives
            )
            options = replace(options, decoding=decoding)
        return super()._open(fmt, options)

    def _replies(self, events: Sequence[Event]) -> list[Action]:
        return [Send(self.replies.reply(events))]

    def _last_replies(self, events: Sequence[Event]) -> list[Action]:
        return [Send(self.replies.final(events))]

    def _done(self) -> list[Action]:
        return []

    def _after_end(self, message: str | bytes) -> AsrError | None:
        return None  # after eof the connection closes; what still comes is discarded
