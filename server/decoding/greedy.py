"""Incremental CTC decoding of a stream: committed text, a provisional tail and timed words.

The decoder sees the stream's output frames in order, a block at a time: the frames a window
keeps are *committed* (they never change afterwards), the window's lookahead frames give a
*provisional* tail that the next window may revise. Segments are cut by the caller
(:mod:`.endpoint`); :meth:`GreedyCtcDecoder.end_segment` returns the segment's text and words
and starts the next one.

:class:`CtcDecoder` is the seam for other decoders (beam search with a language model): it takes
logits, not labels; endpointing reads the greedy labels itself (:mod:`.endpoint`).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from streamasr.server.arrays import Labels, Logits
from streamasr.server.decoding.ctc import greedy_ids, is_special_token, pieces_to_text, text_pieces
from streamasr.server.events import Alternative, Hypothesis, Word
from streamasr.server.manifest import Vocabulary


@dataclass(frozen=True)
class DecodedSegment:
    """A finished segment's text and words."""

    text: str
    words: tuple[Word, ...]
    alternatives: tuple[Alternative, ...] = ()
    """N-best texts, best first (see :attr:`~streamasr.server.events.Segment.alternatives`);
    only a beam search asked for more than one fills it."""


class CtcDecoder(Protocol):
    """A stream's decoder: commits frames in order, reports the running hypothesis."""

    executor: Executor | None
    """Where :meth:`advance` should run: a thread pool when it costs real CPU per window (beam
    search), None when it is cheaper inline than a thread hop (greedy)."""

    def advance(self, kept: Logits, lookahead: Logits) -> Hypothesis:
        """Commit ``kept`` (the next frames of the stream); ``lookahead`` follows them."""
        ...

    def end_segment(self) -> DecodedSegment:
        """Close the current segment and start a new one at the next frame."""
        ...


@dataclass
class _Token:
    """One emitted symbol: its id and the span of frames the best path spends on it."""

    id: int
    first: int
    last: int
    prob_sum: float
    frames: int


def letter_ids(vocab: Vocabulary) -> frozenset[int]:
    """Symbols that write letters: not the blank, the word delimiter or a special symbol."""
    return frozenset(
        i
        for i, token in enumerate(vocab.tokens)
        if i != vocab.blank_id and token != vocab.word_delimiter and not is_special_token(token)
    )


def best_path(logits: Logits) -> tuple[Labels, NDArray[np.float32]]:
    """Best symbol of each frame and its softmax probability."""
    labels = greedy_ids(logits)
    if logits.shape[0] == 0:
        return labels, np.zeros(0, dtype=np.float32)
    x = logits.astype(np.float32, copy=False)
    peak = x.max(axis=-1, keepdims=True)
    mass = np.exp(x - peak).sum(axis=-1)
    return labels, (1.0 / mass).astype(np.float32)


class GreedyCtcDecoder:
    """Greedy (best path) CTC decoding, driven by the manifest's vocabulary."""

    def __init__(self, vocab: Vocabulary, frame_seconds: float) -> None:
        self.vocab = vocab
        self.frame_seconds = frame_seconds
        self.executor: Executor | None = None
        self._text_ids = letter_ids(vocab)
        self._pieces = text_pieces(vocab)
        self._frame = 0
        """Global index of the next frame to commit."""
        self._previous = vocab.blank_id
        """Best symbol of the last committed frame (repeats merge across blocks)."""
        self._tokens: list[_Token] = []
        """The current segment's symbols."""
        self._committed_text = ""
        """``ids_to_text`` of ``_tokens``, kept up to date by :meth:`advance`."""

    def advance(self, kept: Logits, lookahead: Logits) -> Hypothesis:
        labels, probs = best_path(kept)
        self._commit(labels, probs)
        self._committed_text = pieces_to_text(self._pieces, [t.id for t in self._tokens])
        return self._hypothesis(lookahead)

    def end_segment(self) -> DecodedSegment:
        segment = DecodedSegment(self._committed_text, tuple(self._words(self._tokens)))
        self._tokens = []
        self._committed_text = ""
        return segment

    def _commit(self, labels: Labels, probs: NDArray[np.float32]) -> None:
        blank = self.vocab.blank_id
        tokens = self._tokens
        previous = self._previous
        frame = self._frame
        for label, prob in zip(labels.tolist(), probs.tolist(), strict=True):
            if label != blank:
                if label == previous and tokens:
                    token = tokens[-1]
                    token.last = frame
                    token.prob_sum += prob
                    token.frames += 1
                elif label != previous:
                    tokens.append(_Token(label, frame, frame, prob, 1))
            previous = label
            frame += 1
        self._previous = previous
        self._frame = frame

    def _hypothesis(self, lookahead: Logits) -> Hypothesis:
        if lookahead.shape[0] == 0:
            return Hypothesis(self._committed_text, "")
        labels = greedy_ids(lookahead)
        tail: list[int] = []
        previous = self._previous
        for label in labels.tolist():
            if label not in (self.vocab.blank_id, previous):
                tail.append(label)
            previous = label
        if not tail:
            return Hypothesis(self._committed_text, "")
        full = pieces_to_text(self._pieces, [t.id for t in self._tokens] + tail)
        return Hypothesis(self._committed_text, full[len(self._committed_text) :])

    def _words(self, tokens: list[_Token]) -> list[Word]:
        words: list[Word] = []
        current: list[_Token] = []
        for token in [*tokens, None]:
            if token is not None and token.id in self._text_ids:
                current.append(token)
                continue
            if token is not None and token.id != self.vocab.word_delimiter_id:
                continue  # special symbols carry no text and do not split words
            if current:
                words.append(self._word(current))
                current = []
        return words

    def _word(self, tokens: list[_Token]) -> Word:
        text = "".join(self.vocab.tokens[t.id] for t in tokens)
        frames = sum(t.frames for t in tokens)
        confidence = sum(t.prob_sum for t in tokens) / frames
        return Word(
            text=text,
            start=round(tokens[0].first * self.frame_seconds, 6),
            end=round((tokens[-1].last + 1) * self.frame_seconds, 6),
            confidence=round(min(max(confidence, 0.0), 1.0), 6),
        )
