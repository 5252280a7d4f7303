"""The Vosk dialect without sockets, for clients written for alphacep/vosk-server.

Those clients send an optional ``{"config": {"sample_rate": ..., "words": ...}}``, then 16-bit
PCM frames, then ``{"eof" : 1}``, and await exactly one reply after each frame and after ``eof``
(``send chunk; print(await recv())``); ``config`` gets no reply. A reply is
``{"partial": "..."}`` or ``{"result": [{"word", "start", "end", "conf"}...], "text": "..."}``.
Feeding one frame may finish several segments, so :class:`VoskReplies` folds the events of one
message into one reply: a result joining every segment that finished, else the current partial.

With ``max_alternatives`` a result is vosk-api's n-best shape, ``{"alternatives": [{"text",
"confidence", "result": [...]}...]}``: the segments' :class:`~streamasr.server.events.Alternative`
lists from the beam search, or the best path alone where the stream decodes greedily
(docs/protocol.md says why that is not refused).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final as FinalConst
from typing import TypeAlias

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.errors import InvalidFieldError, UnknownMessageError, echo
from streamasr.server.events import Alternative, Event, Final, Partial, Segment, Word
from streamasr.server.options.decoding import MAX_ALTERNATIVES, MAX_HOTWORD_CHARS, MAX_HOTWORDS
from streamasr.server.protocol.clientjson import JsonObject, parse_json_object
from streamasr.server.protocol.v1 import parse_sample_rate

DEFAULT_SAMPLE_RATE: FinalConst = SAMPLE_RATE
"""Rate assumed when a client sends audio without a ``config`` (vosk-server's own default is
8000 Hz; 16 kHz is what our models take and what most Vosk client samples send)."""


@dataclass(frozen=True)
class VoskConfig:
    """``{"config": {...}}``; keys other than these are ignored."""

    sample_rate: int | None = None
    words: bool | None = None
    phrase_list: tuple[str, ...] | None = None
    """Vosk's grammar, taken as hotwords: its phrases are *boosted*, other words are still
    recognised (docs/lm.md)."""
    max_alternatives: int | None = None
    """Above 0: finals in Vosk's ``alternatives`` shape, up to this many distinct texts from the
    beam search (the best path alone when decoding is greedy). Counts above
    :data:`~streamasr.server.options.decoding.MAX_ALTERNATIVES` are taken as it (vosk-server
    takes any)."""


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


def _words(words: Iterable[Word]) -> list[JsonObject]:
    return [
        {
            "word": w.text,
            "start": round(w.start, 3),
            "end": round(w.end, 3),
            "conf": round(w.confidence, 3),
        }
        for w in words
    ]


def _segment_words(segments: Iterable[Segment]) -> list[Word]:
    return [w for s in segments for w in s.words]


def joined_alternatives(segments: list[Segment], count: int) -> list[Alternative]:
    """Up to ``count`` alternatives of the segments one result joins, best first.

    Each segment with n-best alternatives (beam search): entry ``k`` joins every segment's
    ``k``-th alternative (its last where it has fewer), its confidence the product of theirs
    (the segments are decoded independently); a rank-wise join, not the n-best of every
    combination, which one result rarely needs (a frame seldom ends two segments). Otherwise
    (greedy decoding, or a flush that finished nothing): one entry, the best path, its
    confidence the mean word confidence (1 without words, as vosk-api's empty result).
    """
    if not segments or not all(s.alternatives for s in segments):
        best = tuple(_segment_words(segments))
        mean = sum(w.confidence for w in best) / len(best) if best else 1.0
        return [Alternative(" ".join(s.text for s in segments), mean, best)]
    joined: dict[str, Alternative] = {}
    for k in range(min(count, max(len(s.alternatives) for s in segments))):
        parts = [s.alternatives[min(k, len(s.alternatives) - 1)] for s in segments]
        confidence = 1.0
        for part in parts:
            confidence *= part.confidence
        text = " ".join(p.text for p in parts)
        words = tuple(w for p in parts for w in p.words)
        joined.setdefault(text, Alternative(text, confidence, words))
    return list(joined.values())


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
                caption = event.caption
                self._partial = event.hypothesis.text if caption is None else caption.text
        if finished:
            return self.result(finished)
        return {"partial": self._partial}

    def final(self, events: Iterable[Event]) -> JsonObject:
        """After ``eof``: every segment the flush finished, possibly none, as one result."""
        self._partial = ""
        return self.result([e.segment for e in events if isinstance(e, Final)])

    def result(self, segments: list[Segment]) -> JsonObject:
        if self.alternatives > 0:  # vosk-api's shape: "result" only with words, as vosk-api
            entries: list[JsonObject] = []
            for alternative in joined_alternatives(segments, self.alternatives):
                entry: JsonObject = {
                    "text": alternative.text,
                    "confidence": round(alternative.confidence, 6),
                }
                if self.words:
                    entry["result"] = _words(alternative.words)
                entries.append(entry)
            return {"alternatives": entries}
        text = " ".join(s.text if s.caption is None else s.caption.text for s in segments)
        if not self.words:
            return {"text": text}
        return {"result": _words(_segment_words(segments)), "text": text}
