"""Word and character error rates (Levenshtein), for validation, tests and benchmarks."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_NOT_LETTER = re.compile(r"[^A-Z']+")


def normalize(text: str) -> str:
    """Upper case, letters and apostrophes only, single spaces (the dev sets' convention)."""
    return " ".join(_NOT_LETTER.sub(" ", text.upper()).split())


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Levenshtein distance between two token sequences."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@dataclass(frozen=True)
class ErrorRate:
    """Errors over reference length, summed over a set (corpus-level rate)."""

    errors: int
    length: int

    @property
    def rate(self) -> float:
        return self.errors / self.length if self.length else float(self.errors > 0)


def wer(refs: Iterable[str], hyps: Iterable[str]) -> ErrorRate:
    """Corpus word error rate after :func:`normalize`."""
    errors = length = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = normalize(r).split(), normalize(h).split()
        errors += edit_distance(rw, hw)
        length += len(rw)
    return ErrorRate(errors, length)


def cer(refs: Iterable[str], hyps: Iterable[str]) -> ErrorRate:
    """Corpus character error rate (spaces count) after :func:`normalize`."""
    errors = length = 0
    for r, h in zip(refs, hyps, strict=True):
        rc, hc = normalize(r), normalize(h)
        errors += edit_distance(rc, hc)
        length += len(rc)
    return ErrorRate(errors, length)


def agreement(a: str, b: str) -> float:
    """Character agreement of two transcripts: 1 - edit distance / longer length."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - edit_distance(a, b) / longest
