"""The server events of a realtime transcription session, each with its own ``event_id``
(:class:`RealtimeWire`), in the shapes of OpenAI's realtime API.
"""

from __future__ import annotations

from typing import Any, Literal

from streamasr.server.protocol.clientjson import JsonObject
from streamasr.server.protocol.openai.realtime import (
    BETA_FORMATS,
    PCM_RATE,
    TranscriptionSettings,
    TurnDetection,
)


class RealtimeWire:
    """Writes one session's server events; every event and item gets a fresh id."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self._events = 0
        self._items = 0

    def _event(self, kind: str, **fields: Any) -> JsonObject:
        self._events += 1
        return {"type": kind, "event_id": f"event_{self.session_id}_{self._events}", **fields}

    def new_item(self) -> str:
        self._items += 1
        return f"item_{self.session_id}_{self._items}"

    def session(
        self, what: Literal["created", "updated"], settings: TranscriptionSettings, beta: bool
    ) -> JsonObject:
        if beta:
            return self._event(f"transcription_session.{what}", session=self._beta(settings))
        return self._event(f"session.{what}", session=self._ga(settings))

    def _ga(self, s: TranscriptionSettings) -> JsonObject:
        kind = {"pcm16": "audio/pcm", "pcmu": "audio/pcmu", "pcma": "audio/pcma"}[s.encoding]
        fmt: JsonObject = {"type": kind}
        if s.encoding == "pcm16":
            fmt["rate"] = PCM_RATE
        audio_in = {
            "format": fmt,
            "transcription": _transcription_json(s),
            "turn_detection": _turn_json(s.turn_detection),
            "noise_reduction": None,
        }
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": f"sess_{self.session_id}",
            "audio": {"input": audio_in},
            "include": [],
        }

    def _beta(self, s: TranscriptionSettings) -> JsonObject:
        fmt = {v: k for k, v in BETA_FORMATS.items()}[s.encoding]
        return {
            "object": "realtime.transcription_session",
            "id": f"sess_{self.session_id}",
            "input_audio_format": fmt,
            "input_audio_transcription": _transcription_json(s),
            "turn_detection": _turn_json(s.turn_detection),
            "input_audio_noise_reduction": None,
            "include": [],
        }

    def speech_started(self, item: str, audio_ms: int) -> JsonObject:
        return self._event(
            "input_audio_buffer.speech_started", audio_start_ms=audio_ms, item_id=item
        )

    def speech_stopped(self, item: str, audio_ms: int) -> JsonObject:
        return self._event("input_audio_buffer.speech_stopped", audio_end_ms=audio_ms, item_id=item)

    def committed(self, item: str, previous: str | None) -> JsonObject:
        return self._event("input_audio_buffer.committed", previous_item_id=previous, item_id=item)

    def cleared(self) -> JsonObject:
        return self._event("input_audio_buffer.cleared")

    def delta(self, item: str, text: str) -> JsonObject:
        return self._event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item,
            content_index=0,
            delta=text,
        )

    def completed(self, item: str, transcript: str, seconds: float) -> JsonObject:
        return self._event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item,
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": round(seconds, 3)},
        )

    def error(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> JsonObject:
        body = {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        }
        return self._event("error", error=body)


def _transcription_json(s: TranscriptionSettings) -> JsonObject:
    return {"model": s.model, "language": s.language, "prompt": s.prompt}


def _turn_json(turn: TurnDetection | None) -> JsonObject | None:
    if turn is None:
        return None
    return {
        "type": "server_vad",
        "threshold": turn.threshold,
        "prefix_padding_ms": turn.prefix_padding_ms,
        "silence_duration_ms": turn.silence_duration_ms,
    }
