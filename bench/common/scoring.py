"""Word and character error rates for the benchmarks and tests, computed with ``jiwer``.

Both rates are corpus-level (errors summed over a set, over the summed reference length) and are
taken after :func:`normalize`, the dev sets' convention. :func:`agreement` (how close two
transcripts are, in characters) is the export validation's figure, reused here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import jiwer

from streamasr.export.validate import agreement

__all__ = ["ErrorRate", "agreement", "cer", "normalize", "wer"]

_NOT_LETTER = re.compile(r"[^A-Z']+")


def normalize(text: str) -> str:
    """Upper case, letters and apostrophes only, single spaces (the dev sets' convention)."""
    return " ".join(_NOT_LETTER.sub(" ", text.upper()).split())


@dataclass(frozen=True)
class ErrorRate:
    """Errors over reference length, summed over a set (corpus-level rate)."""

    errors: int
    length: int

    @property
    def rate(self) -> float:
        return self.errors / self.length if self.length else float(self.errors > 0)

    @classmethod
    def of(cls, output: jiwer.WordOutput | jiwer.CharacterOutput) -> ErrorRate:
        errors = output.substitutions + output.deletions + output.insertions
        return cls(errors, output.hits + output.substitutions + output.deletions)


def _normalized(refs: Iterable[str], hyps: Iterable[str]) -> tuple[list[str], list[str]]:
    pairs = [(normalize(r), normalize(h)) for r, h in zip(refs, hyps, strict=True)]
    return [r for r, _ in pairs], [h for _, h in pairs]


def wer(refs: Iterable[str], hyps: Iterable[str]) -> ErrorRate:
    """Corpus word error rate after :func:`normalize`."""
    normalized_refs, normalized_hyps = _normalized(refs, hyps)
    if not normalized_refs:
        return ErrorRate(0, 0)
    return ErrorRate.of(jiwer.process_words(normalized_refs, normalized_hyps))


def cer(refs: Iterable[str], hyps: Iterable[str]) -> ErrorRate:
    """Corpus character error rate (spaces count) after :func:`normalize`."""
    normalized_refs, normalized_hyps = _normalized(refs, hyps)
    if not normalized_refs:
        return ErrorRate(0, 0)
    return ErrorRate.of(jiwer.process_characters(normalized_refs, normalized_hyps))
