"""The wire of OpenAI's realtime *transcription* sessions, without sockets.

Client events (JSON text frames): ``session.update`` (the GA form, ``session.type`` =
``"transcription"``) or ``transcription_session.update`` (the older beta form),
``input_audio_buffer.append`` (base64 audio), ``input_audio_buffer.commit`` and
``input_audio_buffer.clear``. :func:`parse_client_event` reads them, bounded: the event's size,
its base64 payload and every string; :func:`apply_update` folds an update into the session's
:class:`TranscriptionSettings`. :class:`RealtimeWire` writes the server events, each with its
own ``event_id``. What a session *does* with them is :mod:`.realtime_conversation`'s.

A client mistake is a :class:`RealtimeRequestError`: the session answers an ``error`` event in
OpenAI's shape and goes on (docs/protocol.md, "Realtime transcription").
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeAlias

from streamasr.server.errors import ProtocolError, echo
from streamasr.server.options.decoding import MAX_HOTWORD_CHARS, MAX_HOTWORDS
from streamasr.server.protocol.clientjson import JsonObject

MAX_EVENT_CHARS: Final = 512 * 1024
"""Largest client event (JSON text): past it, an ``event_too_large`` error event (a frame past
the server's ``--max-message-bytes`` is closed 1009 by the transport before it is read)."""
MAX_AUDIO_BYTES: Final = 3 * MAX_EVENT_CHARS // 4
"""Largest decoded ``audio`` of one append (about 8 s of 24 kHz pcm16)."""
MAX_TEXT_CHARS: Final = 1024
"""Longest ``prompt``; other strings (model, language, ids) are at most :data:`MAX_NAME_CHARS`."""
MAX_NAME_CHARS: Final = 64
PCM_RATE: Final = 24000
"""``audio/pcm`` / ``pcm16``: 16-bit little-endian mono at 24 kHz (OpenAI's only pcm rate)."""
G711_RATE: Final = 8000
DEFAULT_MODEL: Final = "streamasr"
"""``transcription.model`` until a client names one (any name is accepted and echoed; the
server's own model transcribes)."""

Encoding = Literal["pcm16", "pcmu", "pcma"]
_GA_FORMATS: Final[dict[str, Encoding]] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "pcmu",
    "audio/pcma": "pcma",
}
_BETA_FORMATS: Final[dict[str, Encoding]] = {
    "pcm16": "pcm16",
    "g711_ulaw": "pcmu",
    "g711_alaw": "pcma",
}
_PHRASE_SPLIT = re.compile(r"[,;\n]")


class RealtimeRequestError(ProtocolError, ValueError):
    """A client event the session refuses, answered by an ``error`` event (not a close)."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.param = param
        self.event_id: str | None = None
        """The refused client event's ``event_id``, when it had a readable one."""


# -- session settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TurnDetection:
    """``server_vad``: mapped onto the stream's endpointing and voice-activity gate."""

    silence_duration_ms: int
    """Trailing silence that ends a turn: the stream's ``endpoint_ms`` (100 to 10,000)."""
    prefix_padding_ms: int
    """Audio kept before detected speech: the gate's ``pad_s`` (0 to 2,000)."""
    threshold: float
    """Speech probability of the Silero gate (0 < threshold < 1; the energy gate ignores it)."""


@dataclass(frozen=True)
class TranscriptionSettings:
    """What a transcription session is set to (echoed in ``session.created``/``updated``)."""

    turn_detection: TurnDetection | None
    """None: no turn detection; the client commits (segments still end after 10 s of silence
    or at the server's longest segment)."""
    encoding: Encoding = "pcm16"
    model: str = DEFAULT_MODEL
    language: str | None = None
    prompt: str = ""
    keywords: tuple[str, ...] = ()

    @property
    def sample_rate(self) -> int:
        return PCM_RATE if self.encoding == "pcm16" else G711_RATE

    @property
    def hotwords(self) -> tuple[str, ...]:
        """The phrases boosted in this session's beam search: ``keywords``, then the prompt's
        comma-, semicolon- or line-separated phrases (longer ones than a hotword are left out)."""
        phrases = list(self.keywords)
        phrases += [p.strip() for p in _PHRASE_SPLIT.split(self.prompt)]
        kept = [p for p in phrases if p and len(p) <= MAX_HOTWORD_CHARS]
        return tuple(dict.fromkeys(kept))[:MAX_HOTWORDS]


# -- client events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionUpdate:
    session: JsonObject
    beta: bool
    """``transcription_session.update`` (answered ``transcription_session.updated``)."""
    event_id: str | None = None


@dataclass(frozen=True)
class Append:
    audio: bytes
    """The decoded base64 payload, still in the session's encoding."""
    event_id: str | None = None


@dataclass(frozen=True)
class Commit:
    event_id: str | None = None


@dataclass(frozen=True)
class Clear:
    event_id: str | None = None


ClientEvent: TypeAlias = SessionUpdate | Append | Commit | Clear


def _reject_constant(name: str) -> float:
    raise RealtimeRequestError("invalid_json", f"{name} is not a JSON number")


def _event_object(text: str) -> JsonObject:
    if len(text) > MAX_EVENT_CHARS:
        raise RealtimeRequestError(
            "event_too_large", f"an event of {len(text)} characters (at most {MAX_EVENT_CHARS})"
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RealtimeRequestError("invalid_json", f"{exc.msg} at character {exc.pos}") from None
    except (RecursionError, ValueError):  # nesting; an int past Python's conversion limit
        raise RealtimeRequestError("invalid_json", "the JSON nests or counts too far") from None
    if not isinstance(data, dict):
        raise RealtimeRequestError("invalid_json", "an event is a JSON object")
    return data


def parse_client_event(text: str) -> ClientEvent:
    """One client event (raises :class:`RealtimeRequestError` with its ``event_id``)."""
    data = _event_object(text)
    raw_id = data.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_NAME_CHARS else None
    try:
        return _client_event(data, event_id)
    except RealtimeRequestError as exc:
        exc.event_id = event_id
        raise


def _client_event(data: JsonObject, event_id: str | None) -> ClientEvent:
    kind = data.get("type")
    if kind in ("session.update", "transcription_session.update"):
        session = data.get("session")
        if not isinstance(session, dict):
            raise RealtimeRequestError("invalid_value", "session is not an object", "session")
        return SessionUpdate(session, kind != "session.update", event_id)
    if kind == "input_audio_buffer.append":
        return Append(_audio(data.get("audio")), event_id)
    if kind == "input_audio_buffer.commit":
        return Commit(event_id)
    if kind == "input_audio_buffer.clear":
        return Clear(event_id)
    if not isinstance(kind, str):
        raise RealtimeRequestError("missing_required_parameter", "an event needs a type", "type")
    raise RealtimeRequestError(
        "invalid_value", f"unsupported event type {echo(kind)} in a transcription session", "type"
    )


def _audio(value: object) -> bytes:
    if not isinstance(value, str):
        raise RealtimeRequestError("invalid_value", "audio is not a base64 string", "audio")
    if len(value) > 4 * math.ceil(MAX_AUDIO_BYTES / 3):
        raise RealtimeRequestError("event_too_large", "audio is too long", "audio")
    try:
        audio = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeRequestError("invalid_audio", "audio is not valid base64", "audio") from None
    if not audio:
        raise RealtimeRequestError("invalid_audio", "audio is empty", "audio")
    return audio


# -- session.update -------------------------------------------------------------------------------


def apply_update(current: TranscriptionSettings, update: SessionUpdate) -> TranscriptionSettings:
    """``current`` with what ``update`` sets (fields it leaves out keep their values)."""
    session = update.session
    if update.beta:
        fmt = session.get("input_audio_format")
        transcription = session.get("input_audio_transcription")
        where = "session"
    else:
        kind = session.get("type", "transcription")
        if kind != "transcription":
            raise RealtimeRequestError(
                "invalid_value",
                f"session type {echo(kind)}: this server holds transcription sessions only",
                "session.type",
            )
        audio = _object(session.get("audio"), "session.audio") or {}
        audio_in = _object(audio.get("input"), "session.audio.input") or {}
        session, where = audio_in, "session.audio.input"
        fmt, transcription = audio_in.get("format"), audio_in.get("transcription")
    settings = current
    if fmt is not None:
        settings = replace(settings, encoding=_encoding(fmt, update.beta, where))
    if transcription is not None:
        settings = _transcription(settings, transcription, f"{where}.transcription")
    if "turn_detection" in session:
        turn = _turn_detection(session["turn_detection"], current, f"{where}.turn_detection")
        settings = replace(settings, turn_detection=turn)
    return settings


def _object(value: object, param: str) -> JsonObject | None:
    if value is not None and not isinstance(value, dict):
        raise RealtimeRequestError("invalid_value", f"{param} is not an object", param)
    return value


def _encoding(value: object, beta: bool, where: str) -> Encoding:
    if beta:
        param = f"{where}.input_audio_format"
        if isinstance(value, str) and value in _BETA_FORMATS:
            return _BETA_FORMATS[value]
        raise RealtimeRequestError(
            "invalid_value",
            f"input_audio_format {echo(value)} (pcm16, g711_ulaw, g711_alaw)",
            param,
        )
    param = f"{where}.format"
    fmt = _object(value, param) or {}
    kind = fmt.get("type", "audio/pcm")
    if not isinstance(kind, str) or kind not in _GA_FORMATS:
        raise RealtimeRequestError(
            "invalid_value", f"format {echo(kind)} (audio/pcm, audio/pcmu, audio/pcma)", param
        )
    encoding = _GA_FORMATS[kind]
    rate = fmt.get("rate")
    expected = PCM_RATE if encoding == "pcm16" else G711_RATE
    if rate is not None and (isinstance(rate, bool) or rate != expected):
        raise RealtimeRequestError(
            "invalid_value", f"{kind} takes a rate of {expected} Hz, not {echo(rate)}", param
        )
    return encoding


def _string(data: JsonObject, name: str, param: str, limit: int = MAX_NAME_CHARS) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise RealtimeRequestError(
            "invalid_value", f"{name} is not a string of at most {limit} characters", param
        )
    return value


def _transcription(
    settings: TranscriptionSettings, value: object, param: str
) -> TranscriptionSettings:
    data = _object(value, param) or {}
    model = _string(data, "model", f"{param}.model")
    language = _string(data, "language", f"{param}.language")
    prompt = _string(data, "prompt", f"{param}.prompt", MAX_TEXT_CHARS)
    keywords = data.get("keywords")
    if keywords is not None and (
        not isinstance(keywords, list)
        or len(keywords) > MAX_HOTWORDS
        or not all(isinstance(k, str) and len(k) <= MAX_HOTWORD_CHARS for k in keywords)
    ):
        raise RealtimeRequestError(
            "invalid_value",
            f"keywords: at most {MAX_HOTWORDS} strings of {MAX_HOTWORD_CHARS} characters",
            f"{param}.keywords",
        )
    return replace(
        settings,
        model=settings.model if model is None else model,
        language=settings.language if language is None else language,
        prompt=settings.prompt if prompt is None else prompt,
        keywords=settings.keywords if keywords is None else tuple(keywords),
    )


def _number(data: JsonObject, name: str, param: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RealtimeRequestError(
            "invalid_value", f"{name} {echo(value)} is not a number from {low:g} to {high:g}", param
        )
    return float(value)


def _turn_detection(
    value: object, current: TranscriptionSettings, param: str
) -> TurnDetection | None:
    data = _object(value, param)
    if data is None:
        return None
    kind = data.get("type", "server_vad")
    if kind != "server_vad":
        raise RealtimeRequestError(
            "invalid_value", f"turn_detection {echo(kind)}: only server_vad", f"{param}.type"
        )
    base = current.turn_detection or DEFAULT_TURN_DETECTION
    silence = _number(data, "silence_duration_ms", f"{param}.silence_duration_ms", 100, 10_000)
    prefix = _number(data, "prefix_padding_ms", f"{param}.prefix_padding_ms", 0, 2000)
    threshold = _number(data, "threshold", f"{param}.threshold", 0.01, 0.99)
    return TurnDetection(
        base.silence_duration_ms if silence is None else round(silence),
        base.prefix_padding_ms if prefix is None else round(prefix),
        base.threshold if threshold is None else threshold,
    )


DEFAULT_TURN_DETECTION: Final = TurnDetection(500, 300, 0.5)
"""OpenAI's ``server_vad`` defaults, for a session whose server settings give none."""


# -- server events --------------------------------------------------------------------------------


class RealtimeWire:
    """Writes one session's server events; every event and item gets a fresh id."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._events = 0
        self._items = 0

    def _event(self, kind: str, **fields: Any) -> JsonObject:
        self._events += 1
        return {"type": kind, "event_id": f"event_{self.session_id}_{self._events}", **fields}

    def new_item(self) -> str:
        self._items += 1
        return f"item_{self.session_id}_{self._items}"

    def session(
        self, what: Literal["created", "updated"], settings: TranscriptionSettings, beta: bool
    ) -> JsonObject:
        if beta:
            return self._event(f"transcription_session.{what}", session=self._beta(settings))
        return self._event(f"session.{what}", session=self._ga(settings))

    def _ga(self, s: TranscriptionSettings) -> JsonObject:
        kind = {"pcm16": "audio/pcm", "pcmu": "audio/pcmu", "pcma": "audio/pcma"}[s.encoding]
        fmt: JsonObject = {"type": kind}
        if s.encoding == "pcm16":
            fmt["rate"] = PCM_RATE
        audio_in = {
            "format": fmt,
            "transcription": _transcription_json(s),
            "turn_detection": _turn_json(s.turn_detection),
            "noise_reduction": None,
        }
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": f"sess_{self.session_id}",
            "audio": {"input": audio_in},
            "include": [],
        }

    def _beta(self, s: TranscriptionSettings) -> JsonObject:
        fmt = {v: k for k, v in _BETA_FORMATS.items()}[s.encoding]
        return {
            "object": "realtime.transcription_session",
            "id": f"sess_{self.session_id}",
            "input_audio_format": fmt,
            "input_audio_transcription": _transcription_json(s),
            "turn_detection": _turn_json(s.turn_detection),
            "input_audio_noise_reduction": None,
            "include": [],
        }

    def speech_started(self, item: str, audio_ms: int) -> JsonObject:
        return self._event(
            "input_audio_buffer.speech_started", audio_start_ms=audio_ms, item_id=item
        )

    def speech_stopped(self, item: str, audio_ms: int) -> JsonObject:
        return self._event("input_audio_buffer.speech_stopped", audio_end_ms=audio_ms, item_id=item)

    def committed(self, item: str, previous: str | None) -> JsonObject:
        return self._event("input_audio_buffer.committed", previous_item_id=previous, item_id=item)

    def cleared(self) -> JsonObject:
        return self._event("input_audio_buffer.cleared")

    def delta(self, item: str, text: str) -> JsonObject:
        return self._event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item,
            content_index=0,
            delta=text,
        )

    def completed(self, item: str, transcript: str, seconds: float) -> JsonObject:
        return self._event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item,
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": round(seconds, 3)},
        )

    def error(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> JsonObject:
        body = {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        }
        return self._event("error", error=body)


def _transcription_json(s: TranscriptionSettings) -> JsonObject:
    return {"model": s.model, "language": s.language, "prompt": s.prompt}


def _turn_json(turn: TurnDetection | None) -> JsonObject | None:
    if turn is None:
        return None
    return {
        "type": "server_vad",
        "threshold": turn.threshold,
        "prefix_padding_ms": turn.prefix_padding_ms,
        "silence_duration_ms": turn.silence_duration_ms,
    }
