"""The Vosk dialect without sockets, for clients written for alphacep/vosk-server.

Those clients send an optional ``{"config": {"sample_rate": ..., "words": ...}}``, then 16-bit
PCM frames, then ``{"eof" : 1}``, and await exactly one reply after each frame and after ``eof``
(``send chunk; print(await recv())``); ``config`` gets no reply. A reply is
``{"partial": "..."}`` or ``{"result": [{"word", "start", "end", "conf"}...], "text": "..."}``.
Feeding one frame may finish several segments, so :class:`VoskReplies` folds the events of one
message into one reply: a result joining every segment that finished, else the current partial.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final as FinalConst
from typing import TypeAlias

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.errors import InvalidFieldError, UnknownMessageError, echo
from streamasr.server.events import Event, Final, Partial, Segment
from streamasr.server.options.decoding import MAX_HOTWORD_CHARS, MAX_HOTWORDS
from streamasr.server.protocol.clientjson import JsonObject, parse_json_object
from streamasr.server.protocol.v1 import parse_sample_rate

DEFAULT_SAMPLE_RATE: FinalConst = SAMPLE_RATE
"""Rate assumed when a client sends audio without a ``config`` (vosk-server's own default is
8000 Hz; 16 kHz is what our models take and what most Vosk client samples send)."""


MAX_ALTERNATIVES: FinalConst = 100
"""Larger counts are taken as this (vosk-server takes any)."""


@dataclass(frozen=True)
class VoskConfig:
    """``{"config": {...}}``; keys other than these are ignored."""

    sample_rate: int | None = None
    words: bool | None = None
    phrase_list: tuple[str, ...] | None = None
    """Vosk's grammar, taken as hotwords: its phrases are *boosted*, other words are still
    recognised (docs/lm.md)."""
    max_alternatives: int | None = None
    """Above 0: finals in Vosk's ``alternatives`` shape. Only the best path is given (the
    decoders keep no n-best list per segment yet), so the list has one entry."""


@dataclass(frozen=True)
class VoskEof:
    """``{"eof" : 1}``: the end of the audio."""


VoskMessage: TypeAlias = VoskConfig | VoskEof


def parse_vosk_text(text: str) -> VoskMessage:
    """A Vosk client's text message."""
    data = parse_json_object(text)
    if "config" in data:
        config = data["config"]
        if not isinstance(config, dict):
            raise InvalidFieldError("config", "is not an object")
        rate = config.get("sample_rate")
        words = config.get("words")
        if words is not None and not isinstance(words, bool | int | float):
            raise InvalidFieldError("words", f"{echo(words)} is not a boolean")
        phrases = config.get("phrase_list")
        alternatives = config.get("max_alternatives")
        if alternatives is not None and (
            isinstance(alternatives, bool) or not isinstance(alternatives, int) or alternatives < 0
        ):
            raise InvalidFieldError("max_alternatives", f"{echo(alternatives)} is not a count")
        return VoskConfig(
            max_alternatives=None if alternatives is None else min(alternatives, MAX_ALTERNATIVES),
            sample_rate=None if rate is None else parse_sample_rate(rate),
            words=None if words is None else bool(words),
            phrase_list=None if phrases is None else _phrase_list(phrases),
        )
    if "eof" in data:
        return VoskEof()
    raise UnknownMessageError(next(iter(data), "(empty object)"))


def _phrase_list(value: object) -> tuple[str, ...]:
    """A grammar as hotwords: ``[unk]``, phrases over 50 characters and those past the 100th
    are left out rather than refused (vosk-server takes grammars of any size)."""
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidFieldError("phrase_list", "is not a list of strings")
    kept = [p for p in value if p != "[unk]" and len(p.strip()) <= MAX_HOTWORD_CHARS]
    return tuple(kept[:MAX_HOTWORDS])


def _words(segments: Iterable[Segment]) -> list[JsonObject]:
    return [
        {
            "word": w.text,
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "conf": round(w.confidence, 3),
        }
        for s in segments
        for w in s.words
    ]


class VoskReplies:
    """Exactly one reply per Vosk message, from the engine events that message produced."""

    def __init__(self, words: bool = True, alternatives: int = 0) -> None:
        self.words = words
        self.alternatives = alternatives
        self._partial = ""

    def reply(self, events: Iterable[Event]) -> JsonObject:
        """After an audio frame: the segments it finished as one result, else the partial."""
        finished: list[Segment] = []
        for event in events:
            if isinstance(event, Final):
                finished.append(event.segment)
                self._partial = ""
            elif isinstance(event, Partial):
                self._partial = event.hypothesis.text
        if finished:
            return self.result(finished)
        return {"partial": self._partial}

    def final(self, events: Iterable[Event]) -> JsonObject:
        """After ``eof``: every segment the flush finished, possibly none, as one result."""
        self._partial = ""
        return self.result([e.segment for e in events if isinstance(e, Final)])

    def result(self, segments: list[Segment]) -> JsonObject:
        text = " ".join(s.text for s in segments)
        if self.alternatives > 0:  # vosk-api's shape; words always, confidence a mean
            words = _words(segments)
            confs = [float(w["conf"]) for w in words]
            confidence = round(sum(confs) / len(confs), 3) if confs else 0.0
            return {"alternatives": [{"text": text, "confidence": confidence, "result": words}]}
        if not self.words:
            return {"text": text}
        return {"result": _words(segments), "text": text}
