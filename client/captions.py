"""Transcripts out of a session's finals: plain text, JSON, SRT and WebVTT captions.

Captions are cut from the finals' timed words: a cue holds at most ``max_lines`` lines of at
most ``max_line_chars`` characters and spans at most ``max_seconds``; a segment that does not fit
becomes several cues. Finals without words (``"words": false``) get word times spread over the
segment in proportion to the words' lengths.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from .messages import FinalResult, WordTiming

CaptionFormat = Literal["text", "json", "srt", "vtt"]
FORMATS: tuple[CaptionFormat, ...] = ("text", "json", "srt", "vtt")


@dataclass(frozen=True)
class CaptionLimits:
    """How much one cue may hold."""

    max_seconds: float = 7.0
    """Longest span of a cue, first word's start to last word's end."""
    max_line_chars: int = 42
    """Longest line (a single longer word gets a line of its own)."""
    max_lines: int = 2
    """Lines per cue."""
    min_seconds: float = 1.0
    """Shortest display time: a shorter cue is held up to this long, never past the next cue."""

    def __post_init__(self) -> None:
        if self.max_seconds <= 0 or self.max_line_chars < 1 or self.max_lines < 1:
            raise ValueError(f"caption limits must be positive: {self}")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must not be negative: {self.min_seconds}")


@dataclass(frozen=True)
class Cue:
    """One caption: its span in milliseconds and its lines."""

    start_ms: int
    end_ms: int
    lines: tuple[str, ...]


def wrap(words: Sequence[str], max_chars: int) -> list[str]:
    """Greedy line filling: as many words per line as fit in ``max_chars``."""
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= max_chars:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def balanced_wrap(words: Sequence[str], max_chars: int) -> list[str]:
    """As few lines as :func:`wrap` makes, with lengths as even as the words allow."""
    lines = wrap(words, max_chars)
    count = len(lines)
    if count < 2:
        return lines
    longest = max(len(word) for word in words)
    for width in range(max(longest, len(" ".join(words)) // count), max_chars + 1):
        candidate = wrap(words, width)
        if len(candidate) <= count:
            return candidate
    return lines


def spread_words(final: FinalResult) -> tuple[WordTiming, ...]:
    """The final's words, or its text's words timed in proportion to their lengths."""
    if final.words:
        return final.words
    texts = final.text.split()
    total = sum(len(t) + 1 for t in texts)
    span = max(final.end - final.start, 0.0)
    out, at = [], final.start
    for text in texts:
        step = span * (len(text) + 1) / total
        out.append(WordTiming(text, at, at + step, 1.0))
        at += step
    return tuple(out)


def shown(word: WordTiming) -> str:
    """A word as captions show it: with its case and mark when the server punctuates."""
    return word.word if word.punctuated is None else word.punctuated


def cues_from_finals(
    finals: Sequence[FinalResult], limits: CaptionLimits | None = None
) -> list[Cue]:
    """Caption cues for ``finals`` (in order), within ``limits``."""
    limits = limits or CaptionLimits()
    groups: list[list[WordTiming]] = []
    for final in finals:
        current: list[WordTiming] = []
        for word in spread_words(final):
            candidate = [*current, word]
            too_long = word.end - current[0].start > limits.max_seconds if current else False
            lines = wrap([shown(w) for w in candidate], limits.max_line_chars)
            if current and (too_long or len(lines) > limits.max_lines):
                groups.append(current)
                candidate = [word]
            current = candidate
        if current:
            groups.append(current)
    cues: list[Cue] = []
    for group in groups:
        lines = balanced_wrap([shown(w) for w in group], limits.max_line_chars)
        start = _ms(group[0].start)
        if cues:
            start = max(start, cues[-1].end_ms)
        end = max(_ms(group[-1].end), start + 1)
        cues.append(Cue(start, end, tuple(lines)))
    return _hold(cues, _ms(limits.min_seconds))


def _hold(cues: list[Cue], min_ms: int) -> list[Cue]:
    """Stretch short cues to ``min_ms`` where the next cue leaves room."""
    out = []
    for i, cue in enumerate(cues):
        limit = cues[i + 1].start_ms if i + 1 < len(cues) else cue.start_ms + min_ms
        end = max(cue.end_ms, min(cue.start_ms + min_ms, limit))
        out.append(Cue(cue.start_ms, end, cue.lines))
    return out


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def timestamp(ms: int, decimal: str) -> str:
    """``HH:MM:SS<decimal>mmm``: SRT uses ``,``, WebVTT ``.``."""
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{decimal}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip: numbered cues from 1, ``00:00:01,200 --> 00:00:03,000``, blank line after each."""
    blocks = [
        f"{n}\n{timestamp(c.start_ms, ',')} --> {timestamp(c.end_ms, ',')}\n" + "\n".join(c.lines)
        for n, c in enumerate(cues, start=1)
    ]
    return "".join(block + "\n\n" for block in blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``00:00:01.200 --> 00:00:03.000`` cues."""
    blocks = [
        f"{timestamp(c.start_ms, '.')} --> {timestamp(c.end_ms, '.')}\n"
        + "\n".join(_vtt_escape(line) for line in c.lines)
        for c in cues
    ]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def _vtt_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_text(finals: Sequence[FinalResult]) -> str:
    """The finals' texts joined by spaces, one line."""
    return " ".join(f.text for f in finals if f.text) + "\n"


def to_json(finals: Sequence[FinalResult], source: str, audio_seconds: float) -> str:
    """One JSON object (one line): the source, text, audio length, segments with words."""
    segments = [
        {
            "segment": f.segment,
            "text": f.text,
            "start": f.start,
            "end": f.end,
            "words": [
                {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence}
                for w in f.words
            ],
        }
        for f in finals
    ]
    text = " ".join(f.text for f in finals if f.text)
    record = {"file": source, "text": text, "audio_seconds": audio_seconds, "segments": segments}
    return json.dumps(record) + "\n"


def render(
    fmt: CaptionFormat,
    finals: Sequence[FinalResult],
    source: str = "",
    audio_seconds: float = 0.0,
    limits: CaptionLimits | None = None,
) -> str:
    """``finals`` in the output format ``fmt``."""
    if fmt == "text":
        return to_text(finals)
    if fmt == "json":
        return to_json(finals, source, audio_seconds)
    if fmt == "srt":
        return to_srt(cues_from_finals(finals, limits))
    if fmt == "vtt":
        return to_vtt(cues_from_finals(finals, limits))
    raise ValueError(f"unknown format {fmt!r}")
