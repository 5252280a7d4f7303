"""The wire of OpenAI's realtime *transcription* sessions, without sockets.

Client events (JSON text frames): ``session.update`` (the GA form, ``session.type`` =
``"transcription"``) or ``transcription_session.update`` (the older beta form),
``input_audio_buffer.append`` (base64 audio), ``input_audio_buffer.commit`` and
``input_audio_buffer.clear``. :func:`parse_client_event` reads them, bounded: the event's size,
its base64 payload and every string; :func:`~.session_settings.apply_update` folds an update
into the session's :class:`TranscriptionSettings`; :class:`~.replies.RealtimeWire` writes the
server events, each with its own ``event_id``. What a session *does* with them is
:mod:`.realtime_conversation`'s.

A client mistake is a :class:`RealtimeRequestError`: the session answers an ``error`` event in
OpenAI's shape and goes on (docs/protocol.md, "Realtime transcription").
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

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
GA_FORMATS: Final[dict[str, Encoding]] = {
    "audio/pcm": "pcm16",
    "audio/pcmu": "pcmu",
    "audio/pcma": "pcma",
}
BETA_FORMATS: Final[dict[str, Encoding]] = {
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
