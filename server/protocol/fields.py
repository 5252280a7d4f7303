"""Typed readers of client JSON fields shared by the dialects (decoding fields, phrase lists)."""

from __future__ import annotations

from streamasr.server.errors import InvalidFieldError, StreamConfigError, echo
from streamasr.server.options.decoding import DECODING_FIELDS, MAX_HOTWORDS, DecodingOptions
from streamasr.server.protocol.clientjson import JsonObject


def parse_decoding(data: JsonObject) -> DecodingOptions | None:
    """The decoding fields of a ``start`` message, typed and bounded (InvalidFieldError)."""
    if not any(name in data for name in DECODING_FIELDS):
        return None
    beam = data.get("beam_width")
    if beam is not None and (not isinstance(beam, int) or isinstance(beam, bool)):
        raise InvalidFieldError("beam_width", f"{echo(beam)} is not an integer")
    try:
        return DecodingOptions(
            beam_width=beam,
            lm_weight=_number(data, "lm_weight"),
            word_score=_number(data, "word_score"),
            hotwords=parse_phrases(data.get("hotwords"), "hotwords"),
            hotword_weight=_number(data, "hotword_weight"),
        )
    except StreamConfigError as exc:
        raise InvalidFieldError(exc.option, str(exc)) from None


def parse_phrases(value: object, name: str) -> tuple[str, ...]:
    """A JSON list of at most 100 strings (phrases to boost); None: none."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise InvalidFieldError(name, "is not a list of strings")
    if len(value) > MAX_HOTWORDS:
        raise InvalidFieldError(name, f"{len(value)} phrases: at most {MAX_HOTWORDS}")
    return tuple(value)


def _number(data: JsonObject, name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFieldError(name, f"{echo(value)} is not a number")
    return float(value)
