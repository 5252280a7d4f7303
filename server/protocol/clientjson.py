"""Client text messages as JSON, read within bounds before any field is looked at.

:func:`parse_json_object` turns a text message into a JSON object and refuses, in any field,
known or unknown: NaN and Infinity (``invalid_json``), a number literal longer than
:data:`MAX_NUMBER_CHARS` or one that overflows a float, and a string or field name longer than
:data:`MAX_STRING_CHARS` (``invalid_field``). Python's own limit on int conversion (4300 digits)
is never reached: long literals are not converted at all.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final, TypeAlias, cast

from streamasr.server.errors import InvalidFieldError, InvalidJsonError

JsonObject: TypeAlias = dict[str, Any]
"""A client or server message as a JSON object."""

MAX_STRING_CHARS: Final = 256
"""Longest string (value or field name) a client message may hold, anywhere in it."""
MAX_NUMBER_CHARS: Final = 32
"""Longest number literal a client message may hold; longer ones are out of every range."""


class _BadNumber:
    """Stands in for a number literal that is too long or overflows a float."""

    def __init__(self, text: str) -> None:
        self.size = len(text)


def _parse_int(text: str) -> int | _BadNumber:
    return _BadNumber(text) if len(text) > MAX_NUMBER_CHARS else int(text)


def _parse_float(text: str) -> float | _BadNumber:
    if len(text) > MAX_NUMBER_CHARS:
        return _BadNumber(text)
    value = float(text)
    return value if math.isfinite(value) else _BadNumber(text)


def _reject_constant(name: str) -> float:
    raise InvalidJsonError(f"{name} is not a JSON number")


def parse_json_object(text: str) -> JsonObject:
    """A text message as a JSON object; NaN and Infinity are refused, and so is any number or
    string past :data:`MAX_NUMBER_CHARS` / :data:`MAX_STRING_CHARS`, in any field."""
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(f"{exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise InvalidJsonError("nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidJsonError(f"got a JSON {type(data).__name__}, expected an object")
    _check_bounds(cast(JsonObject, data))
    return cast(JsonObject, data)


def _check_bounds(data: JsonObject) -> None:
    """Raise InvalidFieldError at the first out-of-range number or oversized string, named by
    its field (``config.sample_rate``; two levels at most, arrays add nothing)."""
    stack: list[tuple[str, int, object]] = [("", 0, data)]
    while stack:
        path, depth, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > MAX_STRING_CHARS:
                    raise InvalidFieldError(key, f"a field name of {len(key)} characters")
                name = f"{path}.{key}" if path and depth < 2 else (path or key)
                stack.append((name, depth + 1, item))
        elif isinstance(value, list):
            stack.extend((path, depth, item) for item in value)
        elif isinstance(value, str) and len(value) > MAX_STRING_CHARS:
            raise InvalidFieldError(
                path, f"a string of {len(value)} characters (at most {MAX_STRING_CHARS})"
            )
        elif isinstance(value, _BadNumber):
            raise InvalidFieldError(path, f"a number of {value.size} characters is out of range")


def _ignore_number(text: str) -> None:
    return None


def is_v1_message(data: str | bytes) -> bool:
    """Whether a first message at ``/`` speaks v1: a JSON object with a ``type`` field.

    Anything else (a Vosk ``config``, ``eof`` or audio) selects the Vosk dialect. Numbers are
    not converted here (the dialect's parser checks them).
    """
    if not isinstance(data, str):
        return False
    try:
        parsed = json.loads(
            data,
            parse_int=_ignore_number,
            parse_float=_ignore_number,
            parse_constant=_ignore_number,
        )
    except (ValueError, RecursionError):
        return False
    return isinstance(parsed, dict) and "type" in parsed
