"""A stream's captions: the recognised words with case and punctuation, stable word by word.

The decoder's committed text only grows within a segment, but its last committed word may still
gain letters (the next window can continue it), so a :class:`Captioner` hands the punctuation
stage (:class:`~streamasr.server.decoding.punctuation.stable.StablePunctuator`) the committed
words before the last as *committed* and everything after them as look-ahead. A word's case
and mark are frozen once enough words follow it, or when its segment ends, and never change:
each partial's caption starts with the previous one's stable words, and the segment's final
caption starts with all of them. Words are never added, dropped or reordered; words not frozen
yet are shown lower-cased, as recognised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from streamasr.server.decoding.punctuation.stable import Labeller, StablePunctuator
from streamasr.server.events import Caption, Event, Final, Hypothesis, Partial, Segment


class Captioner:
    """Captions of one stream's events, in order (see the module docstring)."""

    def __init__(self, labeller: Labeller) -> None:
        self._punctuator = StablePunctuator(labeller)

    def needs_model(self, events: Sequence[Event]) -> bool:
        """Whether captioning ``events`` may call the model (else it is cheap, inline work)."""
        frozen = len(self._punctuator.frozen)
        for event in events:
            if isinstance(event, Final):
                return True
            if isinstance(event, Partial):
                complete, after = _split(event.hypothesis)
                limit = min(len(complete), len(complete) + len(after) - self._punctuator.lookahead)
                if limit > frozen:
                    return True
        return False

    def apply(self, events: Sequence[Event]) -> list[Event]:
        """``events`` with their captions (blocking where the model runs)."""
        out: list[Event] = []
        for event in events:
            if isinstance(event, Partial):
                out.append(replace(event, caption=self._partial(event.hypothesis)))
            elif isinstance(event, Final):
                out.append(Final(replace(event.segment, caption=self._final(event.segment))))
            else:
                out.append(event)
        return out

    def _partial(self, hypothesis: Hypothesis) -> Caption:
        complete, after = _split(hypothesis)
        self._punctuator.update(complete, after)
        stable = tuple(word.text for word in self._punctuator.frozen)
        words = [*complete, *after]
        return Caption(stable, tuple(word.lower() for word in words[len(stable) :]))

    def _final(self, segment: Segment) -> Caption:
        self._punctuator.update(segment.text.split(), final=True)
        stable = tuple(word.text for word in self._punctuator.frozen)
        self._punctuator = self._punctuator.next_segment()
        return Caption(stable)


def _split(hypothesis: Hypothesis) -> tuple[list[str], list[str]]:
    """The committed words that are complete (all but the last committed one) and the words
    after them (the last committed one, which may grow, and the provisional ones)."""
    committed = hypothesis.committed.split()
    complete = committed[:-1]
    return complete, hypothesis.text.split()[len(complete) :]
