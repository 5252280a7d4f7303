"""The one range check every setting goes through (numbers only: a bool is refused)."""

from __future__ import annotations

from streamasr.server.errors import StreamConfigError


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`StreamConfigError` unless ``low <= value <= high`` (and not a bool)."""
    if isinstance(value, bool) or not low <= value <= high:
        raise StreamConfigError(name, value, f"{low:g} to {high:g}")
