"""``session.update`` / ``transcription_session.update`` folded into a session's
:class:`~.realtime.TranscriptionSettings`: audio format, transcription (model, language, prompt as
hotwords) and turn detection, each field bounded (a mistake is a ``RealtimeRequestError``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from streamasr.server.errors import echo
from streamasr.server.options.decoding import MAX_HOTWORD_CHARS, MAX_HOTWORDS
from streamasr.server.protocol.clientjson import JsonObject
from streamasr.server.protocol.openai.realtime import (
    BETA_FORMATS,
    G711_RATE,
    GA_FORMATS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    PCM_RATE,
    Encoding,
    RealtimeRequestError,
    SessionUpdate,
    TranscriptionSettings,
    TurnDetection,
)


def apply_update(current: TranscriptionSettings, update: SessionUpdate) -> TranscriptionSettings:
    """``current`` with what ``update`` sets (fields it leaves out keep their values)."""
    session = update.session
    if update.beta:
        fmt = session.get("input_audio_format")
        transcription = session.get("input_audio_transcription")
        where = "session"
    else:
        kind = session.get("type", "transcription")
        if kind != "transcription":
            raise RealtimeRequestError(
                "invalid_value",
                f"session type {echo(kind)}: this server holds transcription sessions only",
                "session.type",
            )
        audio = _object(session.get("audio"), "session.audio") or {}
        audio_in = _object(audio.get("input"), "session.audio.input") or {}
        session, where = audio_in, "session.audio.input"
        fmt, transcription = audio_in.get("format"), audio_in.get("transcription")
    settings = current
    if fmt is not None:
        settings = replace(settings, encoding=_encoding(fmt, update.beta, where))
    if transcription is not None:
        settings = _transcription(settings, transcription, f"{where}.transcription")
    if "turn_detection" in session:
        turn = _turn_detection(session["turn_detection"], current, f"{where}.turn_detection")
        settings = replace(settings, turn_detection=turn)
    return settings


def _object(value: object, param: str) -> JsonObject | None:
    if value is not None and not isinstance(value, dict):
        raise RealtimeRequestError("invalid_value", f"{param} is not an object", param)
    return value


def _encoding(value: object, beta: bool, where: str) -> Encoding:
    if beta:
        param = f"{where}.input_audio_format"
        if isinstance(value, str) and value in BETA_FORMATS:
            return BETA_FORMATS[value]
        raise RealtimeRequestError(
            "invalid_value",
            f"input_audio_format {echo(value)} (pcm16, g711_ulaw, g711_alaw)",
            param,
        )
    param = f"{where}.format"
    fmt = _object(value, param) or {}
    kind = fmt.get("type", "audio/pcm")
    if not isinstance(kind, str) or kind not in GA_FORMATS:
        raise RealtimeRequestError(
            "invalid_value", f"format {echo(kind)} (audio/pcm, audio/pcmu, audio/pcma)", param
        )
    encoding = GA_FORMATS[kind]
    rate = fmt.get("rate")
    expected = PCM_RATE if encoding == "pcm16" else G711_RATE
    if rate is not None and (isinstance(rate, bool) or rate != expected):
        raise RealtimeRequestError(
            "invalid_value", f"{kind} takes a rate of {expected} Hz, not {echo(rate)}", param
        )
    return encoding


def _string(data: JsonObject, name: str, param: str, limit: int = MAX_NAME_CHARS) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise RealtimeRequestError(
            "invalid_value", f"{name} is not a string of at most {limit} characters", param
        )
    return value


def _transcription(
    settings: TranscriptionSettings, value: object, param: str
) -> TranscriptionSettings:
    data = _object(value, param) or {}
    model = _string(data, "model", f"{param}.model")
    language = _string(data, "language", f"{param}.language")
    prompt = _string(data, "prompt", f"{param}.prompt", MAX_TEXT_CHARS)
    keywords = data.get("keywords")
    if keywords is not None and (
        not isinstance(keywords, list)
        or len(keywords) > MAX_HOTWORDS
        or not all(isinstance(k, str) and len(k) <= MAX_HOTWORD_CHARS for k in keywords)
    ):
        raise RealtimeRequestError(
            "invalid_value",
            f"keywords: at most {MAX_HOTWORDS} strings of {MAX_HOTWORD_CHARS} characters",
            f"{param}.keywords",
        )
    return replace(
        settings,
        model=settings.model if model is None else model,
        language=settings.language if language is None else language,
        prompt=settings.prompt if prompt is None else prompt,
        keywords=settings.keywords if keywords is None else tuple(keywords),
    )


def _number(data: JsonObject, name: str, param: str, low: float, high: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise RealtimeRequestError(
            "invalid_value", f"{name} {echo(value)} is not a number from {low:g} to {high:g}", param
        )
    return float(value)


def _turn_detection(
    value: object, current: TranscriptionSettings, param: str
) -> TurnDetection | None:
    data = _object(value, param)
    if data is None:
        return None
    kind = data.get("type", "server_vad")
    if kind != "server_vad":
        raise RealtimeRequestError(
            "invalid_value", f"turn_detection {echo(kind)}: only server_vad", f"{param}.type"
        )
    base = current.turn_detection or DEFAULT_TURN_DETECTION
    silence = _number(data, "silence_duration_ms", f"{param}.silence_duration_ms", 100, 10_000)
    prefix = _number(data, "prefix_padding_ms", f"{param}.prefix_padding_ms", 0, 2000)
    threshold = _number(data, "threshold", f"{param}.threshold", 0.01, 0.99)
    return TurnDetection(
        base.silence_duration_ms if silence is None else round(silence),
        base.prefix_padding_ms if prefix is None else round(prefix),
        base.threshold if threshold is None else threshold,
    )


DEFAULT_TURN_DETECTION: Final = TurnDetection(500, 300, 0.5)
"""OpenAI's ``server_vad`` defaults, for a session whose server settings give none."""
