"""Wire shapes of the OpenAI audio API: the request's fields, the error body, the model list.

Errors follow OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``, each
:class:`ApiError` carrying its HTTP status (and ``Retry-After`` where a retry helps).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias

ResponseFormat: TypeAlias = Literal["json", "text", "srt", "vtt", "verbose_json"]
RESPONSE_FORMATS: Final[tuple[ResponseFormat, ...]] = ("json", "text", "srt", "vtt", "verbose_json")
Granularity: TypeAlias = Literal["word", "segment"]
GRANULARITIES: Final[tuple[Granularity, ...]] = ("word", "segment")
MODEL_ALIASES: Final = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
"""Model names of OpenAI that clients send by default; each means the loaded model."""
MAX_PROMPT_PHRASES: Final = 100
MAX_PHRASE_CHARS: Final = 50
"""A ``prompt`` becomes hotwords: at most 100 phrases of at most 50 characters (as v1's
``hotwords``)."""
TRANSCRIPTIONS_PATH: Final = "/v1/audio/transcriptions"
MODELS_PATH: Final = "/v1/models"


class ApiError(Exception):
    """An answer other than success: HTTP status and OpenAI's error fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.retry_after_s = retry_after_s

    def body(self) -> bytes:
        """``{"error": {...}}`` as JSON bytes."""
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error}).encode() + b"\n"

    def headers(self) -> list[tuple[str, str]]:
        extra = [("Retry-After", str(self.retry_after_s))] if self.retry_after_s else []
        if self.status == 401:
            extra.append(("WWW-Authenticate", 'Bearer realm="asr"'))
        return extra


class InvalidFieldError(ApiError):
    """400: a form field is missing or has a value the API does not take."""

    def __init__(self, param: str, message: str, code: str = "invalid_value") -> None:
        super().__init__(400, message, param=param, code=code)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "Incorrect API key provided: send 'Authorization: Bearer TOKEN' (the server's"
        " --auth-token).",
        code="invalid_api_key",
    )


def not_found(method: str, path: str) -> ApiError:
    return ApiError(
        404,
        f"Unknown request URL: {method} {path[:200]}. This server answers POST"
        f" {TRANSCRIPTIONS_PATH} and GET {MODELS_PATH}.",
        code="unknown_url",
    )


def too_many_jobs(limit: int, retry_after_s: int) -> ApiError:
    return ApiError(
        429,
        f"Too many transcriptions at once (at most {limit}, --max-transcriptions): retry later.",
        kind="requests",
        code="rate_limit_exceeded",
        retry_after_s=retry_after_s,
    )


def unavailable(reason: str, retry_after_s: int) -> ApiError:
    return ApiError(
        503, f"Service unavailable: {reason}.", kind="server_error", retry_after_s=retry_after_s
    )


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Maximum content size limit ({limit}) exceeded (--max-upload-bytes).",
        code="request_too_large",
    )


@dataclass(frozen=True)
class TranscriptionRequest:
    """The form fields of ``POST /v1/audio/transcriptions`` (the file travels beside them)."""

    model: str
    language: str | None = None
    hotwords: tuple[str, ...] = ()
    """The ``prompt``, cut into phrases at commas, semicolons and line ends."""
    response_format: ResponseFormat = "json"
    granularities: tuple[Granularity, ...] = ("segment",)
    stream: bool = False
    temperature: float = 0.0
    """Accepted and reported back; a CTC model decodes the same way whatever it is."""
    fields: Mapping[str, Sequence[str]] = field(default_factory=dict, repr=False)


FORM_FIELDS: Final = frozenset(
    {
        "model",
        "language",
        "prompt",
        "response_format",
        "temperature",
        "timestamp_granularities[]",
        "timestamp_granularities",
        "stream",
        "include[]",
        "chunking_strategy",
    }
)
"""Fields read (or accepted and ignored: ``include[]``, ``chunking_strategy``); others are
ignored too, as clients add their own."""


def parse_fields(
    fields: Mapping[str, Sequence[str]], models: Sequence[str]
) -> TranscriptionRequest:
    """The request's fields, checked one by one (:class:`InvalidFieldError`)."""
    model = _one(fields, "model")
    if model is None:
        raise InvalidFieldError("model", "you must provide a model parameter", "missing_required")
    if model not in models and model not in MODEL_ALIASES:
        accepted = ", ".join([*models, *MODEL_ALIASES])
        raise InvalidFieldError(
            "model",
            f"The model '{model[:80]}' does not exist (use one of {accepted})",
            "model_not_found",
        )
    response_format = _one(fields, "response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidFieldError(
            "response_format",
            f"'{response_format[:40]}' is not one of {', '.join(RESPONSE_FORMATS)}",
        )
    granularities = _granularities(fields)
    if granularities and response_format != "verbose_json":
        raise InvalidFieldError(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        )
    stream = _flag(fields, "stream")
    if stream and response_format not in ("json", "text"):
        raise InvalidFieldError(
            "stream", f"stream=true answers text events: response_format {response_format} has none"
        )
    return TranscriptionRequest(
        model=model,
        language=_language(fields),
        hotwords=prompt_phrases(_one(fields, "prompt") or ""),
        response_format=response_format,
        granularities=granularities or ("segment",),
        stream=stream,
        temperature=_temperature(fields),
        fields=fields,
    )


def prompt_phrases(prompt: str) -> tuple[str, ...]:
    """A prompt as hotword phrases: cut at ``,``, ``;`` and line ends, blanks dropped."""
    text = prompt.replace(";", ",").replace("\n", ",")
    phrases = tuple(p.strip() for p in text.split(",") if p.strip())
    if len(phrases) > MAX_PROMPT_PHRASES:
        raise InvalidFieldError(
            "prompt", f"{len(phrases)} phrases: at most {MAX_PROMPT_PHRASES} (comma-separated)"
        )
    for phrase in phrases:
        if len(phrase) > MAX_PHRASE_CHARS:
            raise InvalidFieldError(
                "prompt",
                f"the prompt is read as comma-separated hotwords of at most {MAX_PHRASE_CHARS}"
                f" characters: '{phrase[:60]}...' is longer",
            )
    return phrases


def _one(fields: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = fields.get(name, ())
    if len(values) > 1:
        raise InvalidFieldError(name, f"'{name}' is given {len(values)} times")
    return values[0] if values else None


def _granularities(fields: Mapping[str, Sequence[str]]) -> tuple[Granularity, ...]:
    values = [
        *fields.get("timestamp_granularities[]", ()),
        *fields.get("timestamp_granularities", ()),
    ]
    found: list[Granularity] = []
    for value in values:
        if value not in GRANULARITIES:
            raise InvalidFieldError(
                "timestamp_granularities", f"'{value[:40]}' is not 'word' or 'segment'"
            )
        if value not in found:
            found.append(value)
    return tuple(found)


def _flag(fields: Mapping[str, Sequence[str]], name: str) -> bool:
    value = (_one(fields, name) or "false").strip().lower()
    if value not in ("true", "false"):
        raise InvalidFieldError(name, f"'{value[:20]}' is not true or false")
    return value == "true"


def _language(fields: Mapping[str, Sequence[str]]) -> str | None:
    value = _one(fields, "language")
    if value is None or not value.strip():
        return None
    value = value.strip().lower()
    if not (2 <= len(value) <= 3 and value.isalpha()):
        raise InvalidFieldError("language", f"'{value[:20]}' is not an ISO-639-1 code such as 'en'")
    return value


def _temperature(fields: Mapping[str, Sequence[str]]) -> float:
    value = _one(fields, "temperature")
    if value is None:
        return 0.0
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0.0 <= number <= 1.0:
        raise InvalidFieldError("temperature", f"'{value[:20]}' is not a number from 0 to 1")
    return number


def model_list(names: Sequence[str], created: int) -> dict[str, Any]:
    """``GET /v1/models``: the loaded model under its own names and OpenAI's aliases."""
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": "streamasr"}
        for name in dict.fromkeys([*names, *MODEL_ALIASES])
    ]
    return {"object": "list", "data": data}
