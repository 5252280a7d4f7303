"""What a stream reports: partial hypotheses, finished segments and lag warnings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias


@dataclass(frozen=True)
class Segment:
    """A finished stretch of speech: its text, timed words and why it ended."""

    index: int
    """0, 1, ... in the order the stream finished them."""
    text: str
    words: tuple[Word, ...]
    start: float
    """Seconds from the stream's start to the segment's first frame (the previous cut)."""
    end: float
    """Seconds from the stream's start to the end of its last frame."""
    reason: EndReason
    alternatives: tuple[Alternative, ...] = ()
    """The segment's n-best hypotheses, best first (the first is ``text`` and ``words``), when
    its stream asked for more than one (``DecodingOptions.alternatives``) and decodes with the
    beam search; empty otherwise (greedy decoding keeps one path)."""
    caption: Caption | None = None
    """The text with case and punctuation, one caption word per word of ``text`` (all
    stable), when the stream punctuates; None otherwise."""

    @property
    def shown_text(self) -> str:
        """What a reader sees: the caption's text when the stream punctuates, else ``text``."""
        return self.text if self.caption is None else self.caption.text


@dataclass(frozen=True)
class Alternative:
    """One of a segment's n-best hypotheses: a distinct text of the beams that survived it."""

    text: str
    confidence: float
    """Softmax, over the distinct texts of the surviving beams, of each text's best total beam
    score (acoustic log probabilities plus the LM, word and hotword terms, natural log): in
    [0, 1], falling with the rank; a segment's alternatives sum to at most 1. A ranking within
    the segment, not a calibrated probability of being right."""
    words: tuple[Word, ...]
    """The words of that text's own best path, timed from its own frame alignment."""


@dataclass(frozen=True)
class Caption:
    """Readable text: words with case and punctuation, never adding, dropping or reordering a
    word of the recognised text (:mod:`streamasr.server.decoding.punctuation`)."""

    stable: tuple[str, ...]
    """Words whose case and marks are final: within a segment each caption's ``stable``
    starts with the previous one's."""
    tail: tuple[str, ...] = ()
    """The words after them, lower-cased as recognised: they may still change."""

    @property
    def stable_text(self) -> str:
        return " ".join(self.stable)

    @property
    def text(self) -> str:
        return " ".join((*self.stable, *self.tail))


@dataclass(frozen=True)
class Partial:
    """The current segment's hypothesis after a window."""

    segment: int
    """Index the segment will have once final."""
    hypothesis: Hypothesis
    audio_end: float
    """Seconds of stream audio (at the model rate) the window that made it had to wait for."""
    caption: Caption | None = None
    """The hypothesis as readable text, when the stream punctuates: its stable words (case and
    marks final, a prefix that only grows within the segment) and the rest as spelled."""


@dataclass(frozen=True)
class Final:
    """A segment ended: its text never changes again."""

    segment: Segment


@dataclass(frozen=True)
class Lagging:
    """The stream's audio arrives more slowly than real time: the server is behind its client.

    Reported once when the lag passes the stream's ``lag_report_s``, again after it has
    recovered to half of that and passed it once more.
    """

    lag_s: float
    """Wall-clock seconds since the first frame minus seconds of audio received."""


Event: TypeAlias = Partial | Final | Lagging


@dataclass(frozen=True)
class Word:
    """A recognised word with its time span from the stream's start and a confidence."""

    text: str
    start: float
    """Seconds from the stream's first sample to the start of the word's first frame."""
    end: float
    """Seconds from the stream's first sample to the end of the word's last frame."""
    confidence: float
    """Mean, over the frames whose best symbol is one of the word's letters, of that symbol's
    softmax probability: in [0, 1]; 1 means the model put all its mass on the path it took."""


@dataclass(frozen=True)
class Hypothesis:
    """What a segment says so far: ``committed + provisional`` is the whole text."""

    committed: str
    """Text of the committed frames; later hypotheses of the segment start with it."""
    provisional: str
    """What the lookahead adds (it may start with a space); the next window may revise it."""

    @property
    def text(self) -> str:
        return self.committed + self.provisional


EndReason = Literal["endpoint", "max_segment", "end_of_stream"]
