"""Label layouts of punctuation models and how a word's label changes the word.

Two layouts are supported (docs/punctuation.md):

* ``mark+case`` (felflare/bert-restore-punctuation style): each label is two characters,
  the mark after the word (``O`` for none) then ``U`` when the word's first letter is
  upper-case (``O`` otherwise): ``OO``, ``.U``, ``,O`` ...
* ``punct-only`` (oliverguhr/fullstop-punctuation-multilang-large, kredor/punctuate-all
  style): the label is the mark alone (``0`` for none); the case then follows a rule: upper
  after ``.``, ``?`` or ``!`` (and at the start of a segment), and the word ``i``.

Marks the captions do not use (``;``, ``'``, ``-`` ...) map to no mark. Applying labels never
adds, drops or reorders a word: output word ``i`` is input word ``i`` with its case changed
and at most one trailing mark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Layout = Literal["mark+case", "punct-only"]
LAYOUTS: Final[tuple[Layout, ...]] = ("mark+case", "punct-only")

MARKS: Final[tuple[str, ...]] = ("", ".", ",", "?", "!", ":")
"""The marks a caption word may end with; ``""`` is none."""
SENTENCE_END: Final[frozenset[str]] = frozenset({".", "?", "!"})
CASE_MARKS: Final[tuple[str, ...]] = ("O", "U")
NONE_MARKS: Final[frozenset[str]] = frozenset({"O", "0"})
"""How the layouts spell 'no mark'."""
PUNCT_ONLY_LABELS: Final[frozenset[str]] = frozenset({"0", "O", ".", ",", "?", "!", ":", ";", "-"})
MARK_CASE_MARKS: Final[frozenset[str]] = frozenset({"O", ".", ",", "?", "!", ":", ";", "'", "-"})


class UnknownLayoutError(ValueError):
    """A checkpoint's labels follow neither supported layout."""

    def __init__(self, labels: Sequence[str]) -> None:
        shown = ", ".join(sorted(labels)[:12])
        super().__init__(
            f"unknown punctuation label layout ({shown}); supported: 'mark+case' (two-character "
            "labels such as OO .U ,O, as felflare/bert-restore-punctuation) and 'punct-only' "
            "(labels among 0 . , ? - :, as oliverguhr/fullstop-punctuation-multilang-large)"
        )


@dataclass(frozen=True)
class WordLabel:
    """What a model decided for one word: the mark after it and whether it starts upper-case.

    ``upper`` is ``None`` when the layout does not say (``punct-only``); :func:`resolve_case`
    fills it by rule.
    """

    mark: str
    upper: bool | None

    def __post_init__(self) -> None:
        if self.mark not in MARKS:
            raise ValueError(f"mark must be one of {MARKS}, got {self.mark!r}")


def detect_layout(labels: Sequence[str]) -> Layout:
    """The layout of a checkpoint's label names (``config.id2label`` values)."""
    names = set(labels)
    if not names:
        raise UnknownLayoutError(labels)
    if (
        all(len(n) == 2 and n[0] in MARK_CASE_MARKS and n[1] in CASE_MARKS for n in names)
        and {"OO", "OU"} <= names
    ):
        return "mark+case"
    if names <= PUNCT_ONLY_LABELS and names & NONE_MARKS:
        return "punct-only"
    raise UnknownLayoutError(labels)


def caption_mark(mark: str) -> str:
    """A layout's mark as a caption mark: none for ``O``/``0`` and for marks captions lack."""
    return mark if mark in MARKS else ""


def decode(layout: Layout, label: str) -> WordLabel:
    """One label name as a :class:`WordLabel`."""
    if layout == "mark+case":
        return WordLabel(caption_mark(label[0]), label[1] == "U")
    return WordLabel(caption_mark(label), None)


def decoder(layout: Layout, id2label: Mapping[int, str]) -> list[WordLabel]:
    """The :class:`WordLabel` of each class index, in index order."""
    return [decode(layout, id2label[i]) for i in range(len(id2label))]


def resolve_case(
    words: Sequence[str], labels: Sequence[WordLabel], previous_mark: str | None
) -> list[WordLabel]:
    """Settle each word's case: upper after a sentence end and for ``i`` whatever the model
    said (a caption never starts a sentence in lower case), else the label's, else lower.

    ``previous_mark`` is the mark of the word before ``words[0]``, ``None`` at the start of a
    segment (which counts as a sentence start).
    """
    out: list[WordLabel] = []
    before = "." if previous_mark is None else previous_mark
    for word, label in zip(words, labels, strict=True):
        lower = word.lower()
        rule = before in SENTENCE_END or lower == "i" or lower.startswith("i'")
        upper = True if rule else bool(label.upper)
        out.append(WordLabel(label.mark, upper))
        before = label.mark
    return out


def close_segment(labels: Sequence[WordLabel], end_mark: str) -> list[WordLabel]:
    """The segment's last word ends with ``end_mark`` when the model gave it no mark: ASR
    segments end at a pause, which mostly ends a sentence. ``""`` leaves the labels as they are."""
    out = list(labels)
    if out and end_mark and not out[-1].mark:
        out[-1] = WordLabel(end_mark, out[-1].upper)
    return out


def apply(word: str, label: WordLabel) -> str:
    """The caption form of one ASR word: lower-cased, first letter upper when the label says,
    then its mark."""
    text = word.lower()
    if label.upper:
        text = text[:1].upper() + text[1:]
    return text + label.mark


def apply_all(words: Sequence[str], labels: Sequence[WordLabel]) -> list[str]:
    """:func:`apply` word by word; the lengths must match (one label per word)."""
    if len(words) != len(labels):
        raise ValueError(f"{len(words)} words but {len(labels)} labels")
    return [apply(w, lab) for w, lab in zip(words, labels, strict=True)]
