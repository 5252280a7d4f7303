"""Server-Sent Events of a streamed transcription (``stream=true``).

OpenAI's events: ``transcript.text.delta`` (``delta``: text to append) as segments finish, then
one ``transcript.text.done`` (``text``: all of it). Each is one ``data:`` line and a blank line;
an error mid-stream is a ``data:`` line holding ``{"error": {...}}``, which the SDK raises.
"""

from __future__ import annotations

import json
from typing import Any

CONTENT_TYPE = "text/event-stream; charset=utf-8"


def event(payload: dict[str, Any]) -> bytes:
    """One event: ``data: JSON`` and the blank line that ends it."""
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


def delta(text: str) -> bytes:
    return event({"type": "transcript.text.delta", "delta": text})


def done(text: str) -> bytes:
    return event({"type": "transcript.text.done", "text": text})


def error(body: dict[str, Any]) -> bytes:
    return event(body)
