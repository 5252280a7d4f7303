"""A transcript in each ``response_format``: json, text, srt, vtt, verbose_json.

Segments are the stream's finals; words their timed words. Fields of Whisper that a CTC model
has no value for get neutral ones (``tokens: []``, ``no_speech_prob: 0``) and documented
stand-ins (``avg_logprob``: the mean log of the words' confidences; ``compression_ratio``: the
segment text's zlib ratio, as Whisper computes it).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streamasr.server.events import Segment
from streamasr.server.protocol.openai.transcription import Granularity, ResponseFormat

CONTENT_TYPES: dict[ResponseFormat, str] = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
}


@dataclass(frozen=True)
class Result:
    """What a transcription produced."""

    segments: tuple[Segment, ...]
    duration: float
    """Seconds of audio decoded."""
    language: str
    temperature: float = 0.0

    @property
    def text(self) -> str:
        return " ".join(s.shown_text for s in self.segments)


def render(
    result: Result, fmt: ResponseFormat, granularities: Sequence[Granularity] = ("segment",)
) -> tuple[str, bytes]:
    """Content type and body of ``result`` in ``fmt``."""
    if fmt == "json":
        body = _json(json_payload(result))
    elif fmt == "verbose_json":
        body = _json(verbose_payload(result, granularities))
    elif fmt == "text":
        body = result.text + "\n"
    elif fmt == "srt":
        body = srt(result.segments)
    else:
        body = vtt(result.segments)
    return CONTENT_TYPES[fmt], body.encode()


def json_payload(result: Result) -> dict[str, Any]:
    return {"text": result.text, "usage": usage(result.duration)}


def usage(duration: float) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(duration)}


def verbose_payload(result: Result, granularities: Sequence[Granularity]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "task": "transcribe",
        "language": result.language,
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if "segment" in granularities:
        payload["segments"] = [
            _segment(i, s, result.temperature) for i, s in enumerate(result.segments)
        ]
    if "word" in granularities:
        payload["words"] = [
            {"word": w.text, "start": w.start, "end": w.end}
            for s in result.segments
            for w in s.words
        ]
    payload["usage"] = usage(result.duration)
    return payload


def _segment(index: int, segment: Segment, temperature: float) -> dict[str, Any]:
    logs = [math.log(max(w.confidence, 1e-6)) for w in segment.words]
    data = segment.shown_text.encode()
    return {
        "id": index,
        "seek": round(segment.start * 100),
        "start": segment.start,
        "end": segment.end,
        "text": segment.shown_text,
        "tokens": [],
        "temperature": temperature,
        "avg_logprob": round(sum(logs) / len(logs), 4) if logs else 0.0,
        "compression_ratio": round(len(data) / len(zlib.compress(data)), 4) if data else 0.0,
        "no_speech_prob": 0.0,
    }


def srt(segments: Sequence[Segment]) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times."""
    cues = [
        f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.shown_text}\n"
        for i, s in enumerate(segments, 1)
    ]
    return "\n".join(cues)


def vtt(segments: Sequence[Segment]) -> str:
    """WebVTT: the header, then cues with ``HH:MM:SS.mmm`` times."""
    cues = [
        f"{timestamp(s.start, '.')} --> {timestamp(s.end, '.')}\n{s.shown_text}\n" for s in segments
    ]
    return "\n".join(["WEBVTT\n", *cues])


def timestamp(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False) + "\n"
