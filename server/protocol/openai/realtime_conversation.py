"""OpenAI realtime transcription as a third dialect of the :class:`~.conversation.Conversation`.

Audio comes base64 in ``input_audio_buffer.append`` events (:mod:`.realtime`), decoded (G.711
expanded) and fed to the stream as 16-bit PCM; the base class keeps the limits, the idle and
too-slow timeouts and the flush before a fatal error. What differs:

* The session greets (``session.created``) and lives until the client closes: client mistakes get
  an ``error`` event and the session goes on; only the base class's limits, a shutdown or an
  engine failure end it (an ``error`` event, then the close code of docs/protocol.md).
* With ``server_vad`` the stream's endpointing is the turn detection: the first words of a
  segment are ``speech_started``, its committed words go out as ``...transcription.delta``
  events (only words the decoder will not revise, so the deltas add up exactly to the
  transcript), its final is ``speech_stopped``, ``committed`` and ``...transcription.completed``.
* ``input_audio_buffer.commit`` flushes the stream (every word so far becomes final) and
  ``clear`` flushes it and drops what it said; either way the next append opens a new stream,
  and the session's audio budget carries over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from streamasr.server.errors import (
    AsrError,
    IdleTimeoutError,
    ProtocolError,
    StreamConfigError,
    TooSlowError,
)
from streamasr.server.events import Event, Final, Partial, Segment
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.decoding import DecodingOptions
from streamasr.server.options.gate import GateConfig, VadGateConfig
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.conversation import (
    Action,
    Clock,
    Conversation,
    Flush,
    Limits,
    Log,
    Message,
    Open,
    Send,
    SessionMetrics,
    State,
)
from streamasr.server.protocol.openai.g711 import decode_g711
from streamasr.server.protocol.openai.realtime import (
    Append,
    Clear,
    Commit,
    RealtimeRequestError,
    SessionUpdate,
    TranscriptionSettings,
    TurnDetection,
    parse_client_event,
)
from streamasr.server.protocol.openai.replies import RealtimeWire
from streamasr.server.protocol.openai.session_settings import apply_update

NO_TURN_ENDPOINT_MS = 10_000
"""``turn_detection: null``: the longest endpoint a stream takes (the client commits)."""


def initial_settings(options: StreamOptions) -> TranscriptionSettings:
    """The settings a session starts with: the server's stream options, as OpenAI fields."""
    gate = options.gate
    pad_ms = round(gate.pad_s * 1000) if gate is not None else 0
    threshold = gate.threshold if isinstance(gate, VadGateConfig) else 0.5
    return TranscriptionSettings(TurnDetection(options.endpoint_ms, pad_ms, threshold))


def stream_options(base: StreamOptions, settings: TranscriptionSettings) -> StreamOptions:
    """The server's options with a session's turn detection and hotwords."""
    turn = settings.turn_detection
    options = base
    if turn is None:
        options = replace(options, endpoint_ms=NO_TURN_ENDPOINT_MS)
    else:
        gate = options.gate
        pad_s = turn.prefix_padding_ms / 1000
        if isinstance(gate, VadGateConfig):
            gate = replace(gate, threshold=turn.threshold, pad_s=pad_s)
        elif isinstance(gate, GateConfig):
            gate = replace(gate, pad_s=pad_s)
        options = replace(options, endpoint_ms=turn.silence_duration_ms, gate=gate)
    hotwords = settings.hotwords
    if hotwords:
        decoding = replace(options.decoding or DecodingOptions(), hotwords=hotwords)
        options = replace(options, decoding=decoding)
    return options


class RealtimeConversation(Conversation):
    """A realtime transcription session (``/v1/realtime?intent=transcription``)."""

    protocol = "realtime"

    def __init__(
        self,
        limits: Limits,
        options: StreamOptions,
        *,
        session: str,
        beta: bool,
        clock: Clock,
        metrics: SessionMetrics,
        log: Log,
    ) -> None:
        super().__init__(limits, options, clock=clock, metrics=metrics, log=log)
        self.wire = RealtimeWire(session)
        self.beta = beta
        """Greet with ``transcription_session.created`` (the client sent ``OpenAI-Beta``)."""
        self.base_options = options
        self.settings = initial_settings(options)
        self._carried = 0.0
        """Seconds of audio of the streams committed or cleared before the current one."""
        self._buffered = 0
        """Bytes appended since the last commit or clear."""
        self._purpose: Literal["commit", "clear"] | None = None
        self._stashed: Message | None = None
        """A message that came during a commit's flush: handled after it."""
        self._item: str | None = None
        """The segment under way (``speech_started`` sent), until its ``completed``."""
        self._previous: str | None = None
        self._sent = ""
        """What the deltas of the current item said."""
        self._segment_start = 0.0

    @property
    def audio_seconds(self) -> float:
        return self.budget.seconds if self.budget is not None else self._carried

    def greeting(self) -> list[Action]:
        return [Send(self.wire.session("created", self.settings, self.beta))]

    # -- messages -------------------------------------------------------------------------------

    def receive(self, message: Message, at: float | None = None) -> list[Action]:
        if self.state is State.FLUSHING and self._purpose is not None:
            self._stashed = message
            return []
        if isinstance(message, bytes) and self.state is not State.CLOSED:
            return self._refuse(
                RealtimeRequestError(
                    "binary_not_supported", "send audio as input_audio_buffer.append events"
                )
            )
        return super().receive(message, at)

    def _text(self, text: str) -> list[Action]:
        try:
            event = parse_client_event(text)
        except RealtimeRequestError as exc:
            return self._refuse(exc)
        try:
            if isinstance(event, SessionUpdate):
                return self._update(event)
            if isinstance(event, Append):
                return self._append(event)
            if self.budget is None and isinstance(event, Clear):
                return [Send(self.wire.cleared())]
            if self.budget is None or not self._buffered:
                raise RealtimeRequestError(
                    "input_audio_buffer_commit_empty", "the audio buffer is empty"
                )
        except RealtimeRequestError as exc:
            exc.event_id = event.event_id
            return self._refuse(exc)
        self._purpose = "commit" if isinstance(event, Commit) else "clear"
        self.state = State.FLUSHING
        return [Flush()]

    def _update(self, event: SessionUpdate) -> list[Action]:
        settings = apply_update(self.settings, event)
        if self.budget is not None and settings.encoding != self.settings.encoding:
            raise RealtimeRequestError(
                "invalid_value",
                "commit or clear the audio buffer before changing its format",
                "session.audio.input.format",
            )
        try:
            options = stream_options(self.base_options, settings)
        except StreamConfigError as exc:
            raise RealtimeRequestError("invalid_value", str(exc), exc.option) from None
        self.settings, self.options, self.beta = settings, options, event.beta
        return [Send(self.wire.session("updated", settings, event.beta))]

    def _append(self, event: Append) -> list[Action]:
        audio = event.audio
        if self.settings.encoding != "pcm16":
            audio = decode_g711(audio, self.settings.encoding)
        elif len(audio) % 2:
            raise RealtimeRequestError("invalid_audio", "pcm16 audio of an odd byte count", "audio")
        self._buffered += len(audio)
        return self._audio(audio)

    def _refuse(self, exc: RealtimeRequestError) -> list[Action]:
        self.log.info("refused an event: %s %s", exc.code, exc)
        self.metrics.session_error(exc.code)
        error = self.wire.error(exc.code, str(exc), param=exc.param, event_id=exc.event_id)
        return [Send(error)]

    def _audio_format(self) -> AudioFormat:
        return AudioFormat("s16le", self.settings.sample_rate, 1)

    def _open(self, fmt: AudioFormat, options: StreamOptions) -> Open:
        action = super()._open(fmt, options)
        budget = self._opened()
        budget.frames = round(self._carried * fmt.sample_rate)
        self._segment_start = 0.0
        return action

    # -- the engine's events --------------------------------------------------------------------

    def _ms(self, stream_s: float) -> int:
        return round((self._carried + stream_s) * 1000)

    def _replies(self, events: Sequence[Event]) -> list[Action]:
        actions: list[Action] = []
        for event in events:
            if isinstance(event, Partial):
                actions += self._partial(event)
            elif isinstance(event, Final):
                actions += self._final(event.segment)
        return actions

    def _start_item(self) -> list[Action]:
        if self._item is not None:
            return []
        self._item, self._sent = self.wire.new_item(), ""
        return [Send(self.wire.speech_started(self._item, self._ms(self._segment_start)))]

    def _partial(self, event: Partial) -> list[Action]:
        committed = event.hypothesis.committed
        if not event.hypothesis.text.strip():
            return []
        actions = self._start_item()
        settled = committed[: committed.rfind(" ")] if " " in committed else ""
        if event.caption is not None:  # punctuated: the stable words are the settled ones
            settled = event.caption.stable_text
        grown = len(settled) > len(self._sent) and settled.startswith(self._sent)
        if self._item is not None and grown:
            actions.append(Send(self.wire.delta(self._item, settled[len(self._sent) :])))
            self._sent = settled
        return actions

    def _final(self, segment: Segment) -> list[Action]:
        self._segment_start = segment.start
        actions = self._start_item()
        self._segment_start = segment.end
        seconds = segment.end - segment.start
        return actions + self._complete(segment.shown_text, segment.end, seconds)

    def _complete(self, transcript: str, end_s: float, seconds: float) -> list[Action]:
        """Close the current item: stopped, committed, the last delta, completed."""
        item = self._item or self.wire.new_item()
        actions: list[Action] = [
            Send(self.wire.speech_stopped(item, self._ms(end_s))),
            Send(self.wire.committed(item, self._previous)),
        ]
        if transcript.startswith(self._sent):
            rest = transcript[len(self._sent) :]
            if rest:
                actions.append(Send(self.wire.delta(item, rest)))
        else:  # pragma: no cover - the decoders never revise committed words
            self.log.warning("a transcript does not extend its deltas (%r)", self._sent)
        actions.append(Send(self.wire.completed(item, transcript, seconds)))
        self._item, self._previous, self._sent = None, item, ""
        return actions

    def _last_replies(self, events: Sequence[Event]) -> list[Action]:
        actions = self._replies(events)
        if self._item is not None:  # speech started, but its words came to nothing
            actions += self._complete("", self.budget.seconds if self.budget else 0.0, 0.0)
        return actions

    def flushed(self, events: Sequence[Event]) -> list[Action]:
        """After a commit or clear: its events, then the session goes on with no stream."""
        purpose, self._purpose = self._purpose, None
        if purpose is None:
            return super().flushed(events)
        end_s = self.budget.seconds - self._carried if self.budget is not None else 0.0
        if purpose == "commit":
            actions = self._last_replies(events)
            if not any(isinstance(e, Final) for e in events) and self._previous_is_stale(actions):
                self._item = self.wire.new_item()
                actions += self._complete("", end_s, 0.0)
        else:
            self._item, self._sent = None, ""
            actions = [Send(self.wire.cleared())]
        self._observe(events, self.clock())
        self.report_audio()
        self._carried = self.audio_seconds
        self.budget, self._buffered = None, 0
        self.state = State.AWAITING_START
        stashed, self._stashed = self._stashed, None
        return actions + (self.receive(stashed) if stashed is not None else [])

    @staticmethod
    def _previous_is_stale(actions: list[Action]) -> bool:
        """No ``committed`` went out for this commit (so it gets an empty item of its own)."""
        return not any(
            isinstance(a, Send) and a.message.get("type") == "input_audio_buffer.committed"
            for a in actions
        )

    def _done(self) -> list[Action]:
        return []

    def _after_end(self, message: Message) -> AsrError | None:
        return None

    def _error(self, exc: BaseException) -> list[Action]:
        """A fatal error: the base class's close, with the error event in OpenAI's shape."""
        actions = super()._error(exc)
        client = isinstance(exc, ProtocolError | IdleTimeoutError | TooSlowError)
        kind = "invalid_request_error" if client else "server_error"
        return [self._reshaped(a, kind) if isinstance(a, Send) else a for a in actions]

    def _reshaped(self, send: Send, kind: str) -> Send:
        """The base class's ``error`` message as OpenAI's error event."""
        code, message = str(send.message.get("code")), str(send.message.get("message"))
        return Send(self.wire.error(code, message, kind=kind))
