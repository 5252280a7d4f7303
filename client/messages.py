"""Protocol v1 as the client sees it: the start message it sends and the typed server messages.

No I/O here: :func:`start_message` builds the JSON text a session opens with and
:func:`parse_message` turns a server text frame into one of :data:`ServerMessage`, raising
:class:`ServerMessageError` for anything that does not match the protocol (see docs/protocol.md).
(The server's own ``ProtocolError`` means the opposite: the *client* broke the protocol.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeAlias

from streamasr.server.constants import ENCODINGS, MAX_CHANNELS, PROTOCOL_VERSION, Encoding


class ClientError(Exception):
    """Base of the errors the clients raise."""


class ServerMessageError(ClientError):
    """The server sent something protocol v1 does not allow (the server broke the protocol)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad message from the server: {detail}")
        self.detail = detail


class ServerError(ClientError):
    """The server reported an error (an ``error`` message) and closed the session."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"server error {code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class StartSettings:
    """What a session's ``start`` message announces about the audio that follows."""

    sample_rate: int
    """Rate of the PCM frames the client sends (the server resamples)."""
    encoding: Encoding = "s16le"
    """Little-endian 16-bit integers or 32-bit floats."""
    channels: int = 1
    """Interleaved channels per frame (1 or 2; the server averages them)."""
    partials: bool = True
    """Whether the server sends ``partial`` messages."""
    words: bool = True
    """Whether ``final`` messages carry timed words."""
    endpoint_ms: int | None = None
    """Trailing silence that ends a segment (100 to 10,000 ms); None: the server's setting."""
    max_segment_s: float | None = None
    """Longest segment (2 to 120 s); None: the server's setting."""

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be 1 to {MAX_CHANNELS}, got {self.channels}")


def start_message(settings: StartSettings) -> str:
    """The ``start`` text message for ``settings`` (unset optional fields left out)."""
    message: dict[str, object] = {
        "type": "start",
        "sample_rate": settings.sample_rate,
        "encoding": settings.encoding,
        "channels": settings.channels,
        "partials": settings.partials,
        "words": settings.words,
    }
    if settings.endpoint_ms is not None:
        message["endpoint_ms"] = settings.endpoint_ms
    if settings.max_segment_s is not None:
        message["max_segment_s"] = settings.max_segment_s
    return json.dumps(message)


STOP_MESSAGE = json.dumps({"type": "stop"})


@dataclass(frozen=True)
class Ready:
    """The server accepted the ``start`` message."""

    session: str
    model: str
    precision: str
    protocol: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class WordTiming:
    """A word of a final with its span in seconds from the stream's start."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class PartialResult:
    """The current segment's hypothesis; ``text`` starts with ``committed``."""

    segment: int
    committed: str
    text: str
    start: float

    @property
    def provisional(self) -> str:
        """What the lookahead adds after the committed text (may change)."""
        if self.text.startswith(self.committed):
            return self.text[len(self.committed) :]
        return self.text


@dataclass(frozen=True)
class FinalResult:
    """A finished segment: its text never changes again."""

    segment: int
    text: str
    start: float
    end: float
    words: tuple[WordTiming, ...] = ()
    reason: str = ""
    """Why the segment ended (as the server names it), when it says."""


@dataclass(frozen=True)
class Lagging:
    """The server is behind the client's audio by ``lag_s`` seconds (wall clock)."""

    lag_s: float


@dataclass(frozen=True)
class Unknown:
    """A message type this client does not know (a newer server): ignored, not an error."""

    type: str


@dataclass(frozen=True)
class End:
    """The server flushed the stream after ``stop``; it closes the connection next."""

    audio_seconds: float


ServerMessage: TypeAlias = Ready | PartialResult | FinalResult | Lagging | End | Unknown
"""Every server message except ``error``, which :func:`parse_message` raises as ServerError."""


def parse_message(text: str | bytes) -> ServerMessage:
    """One server text frame as a typed message; ``error`` raises :class:`ServerError`."""
    if isinstance(text, bytes):
        raise ServerMessageError("unexpected binary frame from the server")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServerMessageError(f"not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ServerMessageError("message is not a JSON object")
    kind = data.get("type")
    try:
        if kind == "partial":
            return PartialResult(
                segment=int(data["segment"]),
                committed=str(data.get("committed", "")),
                text=str(data["text"]),
                start=float(data.get("start", 0.0)),
            )
        if kind == "final":
            return FinalResult(
                segment=int(data["segment"]),
                text=str(data["text"]),
                start=float(data["start"]),
                end=float(data["end"]),
                words=tuple(_word(w) for w in data.get("words") or ()),
                reason=str(data.get("reason", "")),
            )
        if kind == "lagging":
            return Lagging(lag_s=float(data["lag_s"]))
        if kind == "ready":
            return Ready(
                session=str(data.get("session", "")),
                model=str(data.get("model", "")),
                precision=str(data.get("precision", "")),
                protocol=int(data.get("protocol", PROTOCOL_VERSION)),
            )
        if kind == "end":
            return End(audio_seconds=float(data.get("audio_seconds", 0.0)))
        if kind == "error":
            raise ServerError(str(data.get("code", "unknown")), str(data.get("message", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ServerMessageError(f"malformed {kind} message: {exc!r}") from exc
    if not isinstance(kind, str):
        raise ServerMessageError("message has no type")
    return Unknown(kind)


def _word(data: object) -> WordTiming:
    if not isinstance(data, dict):
        raise TypeError("word is not an object")
    return WordTiming(
        word=str(data["word"]),
        start=float(data["start"]),
        end=float(data["end"]),
        confidence=float(data.get("confidence", 1.0)),
    )
