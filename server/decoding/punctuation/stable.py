"""The streaming rule: when a word's punctuation and case become final.

Per segment the engine knows the committed words so far and the provisional words after
them. A committed word is frozen (its mark and case decided for good) once at least
``lookahead`` words follow it, committed or provisional, or when the segment ends. The model
sees a bounded window each time: up to ``context`` frozen words before, the words to decide,
and up to ``lookahead`` words after. A frozen word never changes; :meth:`StablePunctuator.update`
returns the words it has just frozen. At the segment's end its last word gets ``end_mark``
when the model gave it no mark. The model is an injected callable, so this is pure logic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .labels import WordLabel, apply, close_segment, resolve_case

Labeller = Callable[[Sequence[str]], list[WordLabel]]
"""One label per word of a word list (:class:`~.model.PunctuationModel` is one)."""

DEFAULT_LOOKAHEAD = 4
DEFAULT_CONTEXT = 12
DEFAULT_END_MARK = "."
"""The mark a segment's last word gets when the model gave it none (``""``: none)."""
DEFAULT_MAX_DECIDE = 48
"""Words decided in one model call at most (a long backlog takes several calls)."""


class CommittedWordsChangedError(ValueError):
    """The committed words no longer start with the words already frozen."""

    def __init__(self, index: int, frozen: str, now: str) -> None:
        super().__init__(
            f"committed word {index} was {frozen!r} when frozen and is now {now!r}: committed "
            "words may only be appended to"
        )


@dataclass(frozen=True)
class FrozenWord:
    """A word whose caption form is final: ``text`` is ``word`` with its case and mark."""

    index: int
    word: str
    label: WordLabel
    text: str


class StablePunctuator:
    """The punctuation of one segment, frozen word by word.

    ``previous`` is the end of the segment before (its frozen words), shown to the model as
    left context and used for the case rule of the first word; empty at a stream's start.
    """

    def __init__(
        self,
        labeller: Labeller,
        *,
        lookahead: int = DEFAULT_LOOKAHEAD,
        context: int = DEFAULT_CONTEXT,
        max_decide: int = DEFAULT_MAX_DECIDE,
        end_mark: str = DEFAULT_END_MARK,
        previous: Sequence[FrozenWord] = (),
    ) -> None:
        if lookahead < 0 or context < 0 or max_decide < 1:
            raise ValueError("lookahead and context must be >= 0 and max_decide >= 1")
        self.labeller = labeller
        self.lookahead = lookahead
        self.context = context
        self.max_decide = max_decide
        self.end_mark = end_mark
        self._previous = list(previous)[-context:] if context else []
        self._frozen: list[FrozenWord] = []
        self._ended = False

    @property
    def frozen(self) -> list[FrozenWord]:
        """The segment's frozen words so far, in order."""
        return list(self._frozen)

    def next_segment(self) -> StablePunctuator:
        """A punctuator for the segment after this one, with this one's end as context."""
        return StablePunctuator(
            self.labeller,
            lookahead=self.lookahead,
            context=self.context,
            max_decide=self.max_decide,
            end_mark=self.end_mark,
            previous=self._frozen or self._previous,
        )

    def update(
        self, committed: Sequence[str], provisional: Sequence[str] = (), *, final: bool = False
    ) -> list[FrozenWord]:
        """Freeze what the rule allows and return the newly frozen words.

        ``final`` ends the segment: every committed word is frozen (``provisional`` is then
        ignored). Committed words may only grow at the end; after ``final`` nothing changes.
        """
        for frozen in self._frozen:
            now = committed[frozen.index] if frozen.index < len(committed) else "<missing>"
            if now != frozen.word:
                raise CommittedWordsChangedError(frozen.index, frozen.word, now)
        if self._ended:
            if len(committed) != len(self._frozen):
                raise ValueError("the segment has ended: no words may be added")
            return []
        after = [*committed, *([] if final else provisional)]
        limit = len(committed) if final else min(len(committed), len(after) - self.lookahead)
        self._ended = final
        fresh: list[FrozenWord] = []
        while len(self._frozen) < limit:
            end = min(limit, len(self._frozen) + self.max_decide)
            fresh.extend(self._decide(after, end, closes=final and end == limit))
        return fresh

    def _decide(self, words: Sequence[str], end: int, *, closes: bool) -> list[FrozenWord]:
        start = len(self._frozen)
        known = [*self._previous, *self._frozen]
        left = [f.word for f in known[len(known) - self.context :]] if self.context else []
        decide = list(words[start:end])
        window = [*left, *decide, *words[end : end + self.lookahead]]
        labels = self.labeller(window)
        if len(labels) != len(window):
            raise ValueError(f"the labeller gave {len(labels)} labels for {len(window)} words")
        previous_mark = known[-1].label.mark if known else None
        mine = labels[len(left) : len(left) + len(decide)]
        if closes:
            mine = close_segment(mine, self.end_mark)
        mine = resolve_case(decide, mine, previous_mark)
        fresh = [
            FrozenWord(start + k, word, label, apply(word, label))
            for k, (word, label) in enumerate(zip(decide, mine, strict=True))
        ]
        self._frozen.extend(fresh)
        return fresh
