"""Protocol v1 messages as typed values: one schema for the server, the clients and the benchmarks.

Each message is a frozen dataclass with ``to_dict()`` (what goes on the wire; optional fields
left unset are left out) and, for server messages, ``from_dict()`` (what a client reads: unknown
fields ignored, a missing or mistyped field raises :class:`MessageShapeError`). :func:`encode`
writes the compact JSON text. The server's *strict* reading of a client's ``start`` (bounds,
unknown fields refused, error codes) is :func:`~streamasr.server.protocol.v1.parse_text`; the
field names are these. docs/protocol.md documents the shapes.

Plain Python: clients import it without numpy or the engine.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from streamasr.server.constants import ENCODINGS, MAX_CHANNELS, PROTOCOL_VERSION, Encoding

Json: TypeAlias = dict[str, Any]


class MessageShapeError(ValueError):
    """A message lacks a field or has one of the wrong type."""


def encode(message: Mapping[str, Any]) -> str:
    """Compact JSON text of a message (non-ASCII kept as is)."""
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


# -- client -> server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """``start``: the audio that follows and what the client wants back (docs/protocol.md)."""

    sample_rate: int
    """Rate of the PCM frames the client sends (the server resamples)."""
    encoding: Encoding = "s16le"
    channels: int = 1
    partials: bool = True
    words: bool = True
    endpoint_ms: int | None = None
    max_segment_s: float | None = None
    preset: str | None = None
    gate: str | None = None
    hotwords: tuple[str, ...] = ()
    hotword_weight: float | None = None
    beam_width: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None
    punctuate: bool | None = None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be 1 to {MAX_CHANNELS}, got {self.channels}")

    def to_dict(self) -> Json:
        message: Json = {
            "type": "start",
            "sample_rate": self.sample_rate,
            "encoding": self.encoding,
            "channels": self.channels,
            "partials": self.partials,
            "words": self.words,
        }
        optional: Json = {
            "endpoint_ms": self.endpoint_ms,
            "max_segment_s": self.max_segment_s,
            "preset": self.preset,
            "gate": self.gate,
            "hotwords": list(self.hotwords) or None,
            "hotword_weight": self.hotword_weight,
            "beam_width": self.beam_width,
            "lm_weight": self.lm_weight,
            "word_score": self.word_score,
            "punctuate": self.punctuate,
        }
        message.update({k: v for k, v in optional.items() if v is not None})
        return message


STOP: Json = {"type": "stop"}
"""``stop``: no more audio."""


# -- server -> client -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """The server accepted ``start``."""

    session: str
    model: str
    precision: str
    protocol: int = PROTOCOL_VERSION

    def to_dict(self) -> Json:
        return {
            "type": "ready",
            "protocol": self.protocol,
            "session": self.session,
            "model": self.model,
            "precision": self.precision,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ready:
        return cls(
            session=str(data.get("session", "")),
            model=str(data.get("model", "")),
            precision=str(data.get("precision", "")),
            protocol=int(data.get("protocol", PROTOCOL_VERSION)),
        )


@dataclass(frozen=True)
class WordTiming:
    """A word of a final with its span in seconds from the stream's start."""

    word: str
    """As the acoustic model spelled it."""
    start: float
    end: float
    confidence: float
    punctuated: str | None = None
    """The word with its case and mark, when the session punctuates (the final's ``text`` is
    these words joined)."""

    def to_dict(self) -> Json:
        message: Json = {
            "word": self.word,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "confidence": round(self.confidence, 3),
        }
        if self.punctuated is not None:
            message["punctuated"] = self.punctuated
        return message

    @classmethod
    def from_dict(cls, data: object) -> WordTiming:
        if not isinstance(data, dict):
            raise TypeError("word is not an object")
        return cls(
            word=str(data["word"]),
            start=float(data["start"]),
            end=float(data["end"]),
            confidence=float(data.get("confidence", 1.0)),
            punctuated=None if data.get("punctuated") is None else str(data["punctuated"]),
        )


@dataclass(frozen=True)
class PartialResult:
    """The current segment's hypothesis; ``text`` starts with ``committed``."""

    segment: int
    committed: str
    text: str
    start: float
    """Where the segment began (the previous final's end), seconds from the stream's start."""
    audio_end: float = 0.0
    """Seconds of audio the window that made it had to wait for."""

    @property
    def provisional(self) -> str:
        """What the lookahead adds after the committed text (may change)."""
        if self.text.startswith(self.committed):
            return self.text[len(self.committed) :]
        return self.text

    def to_dict(self) -> Json:
        return {
            "type": "partial",
            "segment": self.segment,
            "committed": self.committed,
            "text": self.text,
            "start": round(self.start, 3),
            "audio_end": round(self.audio_end, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartialResult:
        return cls(
            segment=int(data["segment"]),
            committed=str(data.get("committed", "")),
            text=str(data["text"]),
            start=float(data.get("start", 0.0)),
            audio_end=float(data.get("audio_end", 0.0)),
        )


@dataclass(frozen=True)
class FinalResult:
    """A finished segment: its text never changes again."""

    segment: int
    text: str
    start: float
    end: float
    words: tuple[WordTiming, ...] = ()
    reason: str = ""
    """Why the segment ended (``endpoint``, ``max_segment``, ``end_of_stream``)."""

    def to_dict(self, *, words: bool = True) -> Json:
        """``words``: whether the session asked for timed words (``"words": true``)."""
        message: Json = {
            "type": "final",
            "segment": self.segment,
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "reason": self.reason,
        }
        if words:
            message["words"] = [w.to_dict() for w in self.words]
        return message

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinalResult:
        return cls(
            segment=int(data["segment"]),
            text=str(data["text"]),
            start=float(data["start"]),
            end=float(data["end"]),
            words=tuple(WordTiming.from_dict(w) for w in data.get("words") or ()),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class Lagging:
    """The server is behind the client's audio by ``lag_s`` seconds (wall clock)."""

    lag_s: float

    def to_dict(self) -> Json:
        return {"type": "lagging", "lag_s": round(self.lag_s, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lagging:
        return cls(lag_s=float(data["lag_s"]))


@dataclass(frozen=True)
class End:
    """The server flushed the stream after ``stop``; it closes the connection next."""

    audio_seconds: float

    def to_dict(self) -> Json:
        return {"type": "end", "audio_seconds": round(self.audio_seconds, 3)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> End:
        return cls(audio_seconds=float(data.get("audio_seconds", 0.0)))


@dataclass(frozen=True)
class ErrorReport:
    """``error``: why the server ends the session (a code of docs/protocol.md's table)."""

    code: str
    message: str

    def to_dict(self) -> Json:
        return {"type": "error", "code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ErrorReport:
        return cls(code=str(data.get("code", "unknown")), message=str(data.get("message", "")))


@dataclass(frozen=True)
class Unknown:
    """A message type this reader does not know (a newer server): to be ignored."""

    type: str


ServerMessage: TypeAlias = (
    Ready | PartialResult | FinalResult | Lagging | End | ErrorReport | Unknown
)

_READERS: dict[str, Any] = {
    "ready": Ready,
    "partial": PartialResult,
    "final": FinalResult,
    "lagging": Lagging,
    "end": End,
    "error": ErrorReport,
}


def server_message(data: object) -> ServerMessage:
    """A decoded server message (a JSON object) as its type; :class:`MessageShapeError` when
    it is not an object, has no ``type`` or a known type with missing or mistyped fields."""
    if not isinstance(data, dict):
        raise MessageShapeError("message is not a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise MessageShapeError("message has no type")
    reader = _READERS.get(kind)
    if reader is None:
        return Unknown(kind)
    try:
        message: ServerMessage = reader.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MessageShapeError(f"malformed {kind} message: {exc!r}") from exc
    return message
