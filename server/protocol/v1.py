"""Protocol v1 without sockets: client messages in, server messages out, errors to close codes.

A session at ``/v1/stream`` is one ``start`` text message, binary PCM frames in the declared
format, then ``stop``. :func:`parse_text` turns a client text message into a
:class:`StartMessage` or a :class:`StopMessage`, raising a :class:`~.errors.ProtocolError`
subclass for anything else; the ``*_message`` functions build the server's JSON objects; and
:func:`error_spec` maps any exception to its documented error code and close code through the one
table, :data:`ERROR_TABLE`. docs/protocol.md is the reference for every message and code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, TypeAlias, cast

from streamasr.server.constants import ENCODINGS, PROTOCOL_VERSION, Encoding
from streamasr.server.errors import (
    AsrError,
    AudioAfterStopError,
    AudioBeforeStartError,
    AudioDataError,
    AudioFormatError,
    DuplicateStartError,
    EmptyFrameError,
    IdleTimeoutError,
    InferenceError,
    InferenceUnavailableError,
    InvalidFieldError,
    InvalidJsonError,
    MessageAfterStopError,
    MessageTooBigError,
    ModelGeometryError,
    SchedulerClosedError,
    SchedulerOverloadedError,
    ServerShuttingDownError,
    SessionTooLongError,
    StopBeforeStartError,
    StreamConfigError,
    TooSlowError,
    UnknownMessageError,
    UnsupportedRateError,
    echo,
)
from streamasr.server.events import Lagging, Partial, Segment
from streamasr.server.options.audio import MAX_RATE, MIN_RATE, AudioFormat
from streamasr.server.options.decoding import DECODING_FIELDS, DecodingOptions
from streamasr.server.options.gate import GATE_KINDS, gate_config
from streamasr.server.options.presets import PRESET_NAMES
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol import messages
from streamasr.server.protocol.clientjson import JsonObject, parse_json_object
from streamasr.server.protocol.fields import parse_decoding


class CloseCode:
    """Websocket close codes the service uses (RFC 6455, section 7.4.1)."""

    NORMAL: Final = 1000
    GOING_AWAY: Final = 1001
    UNSUPPORTED_DATA: Final = 1003
    INVALID_PAYLOAD: Final = 1007
    POLICY_VIOLATION: Final = 1008
    MESSAGE_TOO_BIG: Final = 1009
    INTERNAL_ERROR: Final = 1011
    TRY_AGAIN_LATER: Final = 1013


@dataclass(frozen=True)
class ErrorSpec:
    """What a client is told about an error: the ``code`` string and the close code."""

    code: str
    close: int


INTERNAL = ErrorSpec("internal", CloseCode.INTERNAL_ERROR)

ERROR_TABLE: Mapping[type[BaseException], ErrorSpec] = {
    InvalidJsonError: ErrorSpec("invalid_json", CloseCode.INVALID_PAYLOAD),
    UnknownMessageError: ErrorSpec("unknown_type", CloseCode.UNSUPPORTED_DATA),
    InvalidFieldError: ErrorSpec("invalid_field", CloseCode.INVALID_PAYLOAD),
    StreamConfigError: ErrorSpec("invalid_field", CloseCode.INVALID_PAYLOAD),
    UnsupportedRateError: ErrorSpec("unsupported_rate", CloseCode.UNSUPPORTED_DATA),
    AudioFormatError: ErrorSpec("unsupported_format", CloseCode.UNSUPPORTED_DATA),
    AudioBeforeStartError: ErrorSpec("audio_before_start", CloseCode.UNSUPPORTED_DATA),
    StopBeforeStartError: ErrorSpec("stop_before_start", CloseCode.UNSUPPORTED_DATA),
    DuplicateStartError: ErrorSpec("duplicate_start", CloseCode.UNSUPPORTED_DATA),
    AudioAfterStopError: ErrorSpec("audio_after_stop", CloseCode.UNSUPPORTED_DATA),
    MessageAfterStopError: ErrorSpec("message_after_stop", CloseCode.UNSUPPORTED_DATA),
    EmptyFrameError: ErrorSpec("empty_frame", CloseCode.INVALID_PAYLOAD),
    AudioDataError: ErrorSpec("bad_audio", CloseCode.INVALID_PAYLOAD),
    MessageTooBigError: ErrorSpec("message_too_big", CloseCode.MESSAGE_TOO_BIG),
    IdleTimeoutError: ErrorSpec("idle_timeout", CloseCode.GOING_AWAY),
    TooSlowError: ErrorSpec("too_slow", CloseCode.GOING_AWAY),
    ServerShuttingDownError: ErrorSpec("shutting_down", CloseCode.GOING_AWAY),
    SchedulerClosedError: ErrorSpec("shutting_down", CloseCode.GOING_AWAY),
    SessionTooLongError: ErrorSpec("session_too_long", CloseCode.POLICY_VIOLATION),
    SchedulerOverloadedError: ErrorSpec("overloaded", CloseCode.TRY_AGAIN_LATER),
    InferenceUnavailableError: ErrorSpec("inference_unavailable", CloseCode.TRY_AGAIN_LATER),
    InferenceError: INTERNAL,
    ModelGeometryError: INTERNAL,
    AsrError: INTERNAL,
}
"""Domain error class -> (code, close code); a class not listed takes its nearest listed base,
and anything that is not an :class:`~.errors.AsrError` is ``internal`` (1011)."""


def error_spec(exc: BaseException) -> ErrorSpec:
    """The code and close code of an exception (its class or nearest listed base class)."""
    for cls in type(exc).__mro__:
        spec = ERROR_TABLE.get(cls)
        if spec is not None:
            return spec
    return INTERNAL


def client_message(exc: BaseException) -> str:
    """What the ``error`` message says: the domain error's text, never a stack trace."""
    if isinstance(exc, AsrError):
        return str(exc)
    return "internal server error"


# -- client messages ------------------------------------------------------------------------------

START_FIELDS: Final = frozenset(
    {
        "type",
        "protocol",
        "sample_rate",
        "encoding",
        "channels",
        "partials",
        "words",
        "endpoint_ms",
        "max_segment_s",
        "preset",
        "gate",
        "punctuate",
        *DECODING_FIELDS,
    }
)
"""Fields a ``start`` message may carry; any other field is an ``invalid_field`` error."""


@dataclass(frozen=True)
class StartMessage(messages.Start):
    """A ``start`` the server has read and checked (:func:`parse_text`): the shared schema's
    :class:`~streamasr.server.protocol.messages.Start` (its fields are the wire's) and what the
    session makes of it."""

    @property
    def decoding(self) -> DecodingOptions | None:
        """Hotwords and beam search overrides (``hotwords``, ``hotword_weight``,
        ``beam_width``, ``lm_weight``, ``word_score``); None: the server's."""
        if not any(name in self.to_dict() for name in DECODING_FIELDS):
            return None
        return DecodingOptions(
            beam_width=self.beam_width,
            lm_weight=self.lm_weight,
            word_score=self.word_score,
            hotwords=self.hotwords,
            hotword_weight=self.hotword_weight,
        )

    def audio_format(self) -> AudioFormat:
        return AudioFormat(self.encoding, self.sample_rate, self.channels)

    def stream_options(self, base: StreamOptions) -> StreamOptions:
        """The server's options with this stream's overrides (raises StreamConfigError)."""
        options = base
        if self.endpoint_ms is not None:
            options = replace(options, endpoint_ms=self.endpoint_ms)
        if self.max_segment_s is not None:
            options = replace(options, max_segment_s=self.max_segment_s)
        if self.preset is not None:
            options = replace(options, preset=self.preset)
        if self.gate is not None:
            options = replace(options, gate=gate_config(self.gate))
        if self.decoding is not None:
            options = replace(options, decoding=self.decoding)
        if self.punctuate is not None:
            options = replace(options, punctuate=self.punctuate)
        return options


@dataclass(frozen=True)
class StopMessage:
    """``{"type": "stop"}``: no more audio; flush, send the last finals and ``end``."""


ClientMessage: TypeAlias = StartMessage | StopMessage


def parse_text(text: str) -> ClientMessage:
    """A client text message of protocol v1, checked field by field."""
    data = parse_json_object(text)
    kind = data.get("type")
    if kind == "start":
        return _parse_start(data)
    if kind == "stop":
        extra = sorted(set(data) - {"type"})
        if extra:
            raise InvalidFieldError(extra[0], "stop takes no fields")
        return StopMessage()
    if "type" not in data:
        raise InvalidFieldError("type", "missing (expected 'start' or 'stop')")
    raise UnknownMessageError(kind)


def _parse_start(data: JsonObject) -> StartMessage:
    unknown = sorted(set(data) - START_FIELDS)
    if unknown:
        raise InvalidFieldError(unknown[0], "unknown field of start")
    if "protocol" in data and (
        not _is_int(data["protocol"]) or data["protocol"] != PROTOCOL_VERSION
    ):
        raise InvalidFieldError("protocol", f"this server speaks protocol {PROTOCOL_VERSION}")
    if "sample_rate" not in data:
        raise InvalidFieldError("sample_rate", "required")
    encoding = data.get("encoding", "s16le")
    if encoding not in ENCODINGS:
        raise InvalidFieldError("encoding", f"{echo(encoding)} is not 's16le' or 'f32le'")
    channels = data.get("channels", 1)
    if not _is_int(channels) or channels not in (1, 2):
        raise InvalidFieldError("channels", f"{echo(channels)} is not 1 or 2")
    endpoint_ms = data.get("endpoint_ms")
    if endpoint_ms is not None and not _is_int(endpoint_ms):
        raise InvalidFieldError("endpoint_ms", f"{echo(endpoint_ms)} is not an integer")
    max_segment_s = data.get("max_segment_s")
    if max_segment_s is not None and not _is_number(max_segment_s):
        raise InvalidFieldError("max_segment_s", f"{echo(max_segment_s)} is not a number")
    decoding = parse_decoding(data) or DecodingOptions()  # checked here; .decoding rebuilds it
    return StartMessage(
        preset=_choice(data, "preset", PRESET_NAMES),
        gate=_choice(data, "gate", GATE_KINDS),
        hotwords=decoding.hotwords,
        hotword_weight=decoding.hotword_weight,
        beam_width=decoding.beam_width,
        lm_weight=decoding.lm_weight,
        word_score=decoding.word_score,
        sample_rate=parse_sample_rate(data["sample_rate"]),
        encoding=cast(Encoding, encoding),
        channels=int(channels),
        partials=_flag(data, "partials"),
        punctuate=_flag(data, "punctuate") if "punctuate" in data else None,
        words=_flag(data, "words"),
        endpoint_ms=None if endpoint_ms is None else int(endpoint_ms),
        max_segment_s=None if max_segment_s is None else float(max_segment_s),
    )


def _choice(data: JsonObject, name: str, allowed: Sequence[str]) -> str | None:
    """``preset`` or ``gate``, when given: a name from its list (a preset the model lacks is
    refused when the stream opens, also as ``invalid_field``)."""
    value = data.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise InvalidFieldError(name, f"{echo(value)} is not one of {', '.join(allowed)}")
    return str(value)


def parse_sample_rate(value: object, name: str = "sample_rate") -> int:
    """A whole number of Hz (``48000`` or ``48000.0``) within what the intake resamples."""
    if not _is_number(value):
        raise InvalidFieldError(name, f"{echo(value)} is not a number")
    number = float(cast(float, value))
    if not number.is_integer():
        raise InvalidFieldError(name, f"{echo(value)} is not a whole number of Hz")
    if not MIN_RATE <= number <= MAX_RATE:
        raise UnsupportedRateError(value, MIN_RATE, MAX_RATE)
    return int(number)


def _flag(data: JsonObject, name: str) -> bool:
    value = data.get(name, True)
    if not isinstance(value, bool):
        raise InvalidFieldError(name, f"{echo(value)} is not true or false")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_frame(data: bytes) -> None:
    """A binary frame must hold bytes (the format check is the intake's)."""
    if not data:
        raise EmptyFrameError()


# -- server messages ------------------------------------------------------------------------------


def ready_message(session: str, model: str, precision: str) -> JsonObject:
    return messages.Ready(session, model, precision).to_dict()


def partial_message(event: Partial, start: float) -> JsonObject:
    """``start``: where the segment began as far as the session knows (the previous final's end)."""
    hypothesis, caption = event.hypothesis, event.caption
    committed, text = hypothesis.committed, hypothesis.text
    if caption is not None:  # the stable caption words are what never changes
        committed, text = caption.stable_text, caption.text
    return messages.PartialResult(event.segment, committed, text, start, event.audio_end).to_dict()


def final_message(segment: Segment, words: bool) -> JsonObject:
    caption = segment.caption
    shown = caption.stable if caption is not None else ()
    if len(shown) != len(segment.words):
        shown = ()  # words and text disagree (not seen): the words keep their spelling alone
    timed = tuple(
        messages.WordTiming(w.text, w.start, w.end, w.confidence, shown[k] if shown else None)
        for k, w in enumerate(segment.words)
    )
    text = segment.text if caption is None else caption.text
    return messages.FinalResult(
        segment.index, text, segment.start, segment.end, timed, segment.reason
    ).to_dict(words=words)


def lagging_message(event: Lagging) -> JsonObject:
    return messages.Lagging(event.lag_s).to_dict()


def end_message(audio_seconds: float) -> JsonObject:
    return messages.End(audio_seconds).to_dict()


def error_message(code: str, message: str) -> JsonObject:
    return messages.ErrorReport(code, message).to_dict()


def encode(message: JsonObject) -> str:
    """Compact JSON text of a server message."""
    return messages.encode(message)
