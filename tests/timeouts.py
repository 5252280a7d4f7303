"""One factor scales every timeout in the tests: ``ASR_TEST_TIMEOUT_FACTOR`` (default 1).

A slow or crowded machine sets it above 1 (``ASR_TEST_TIMEOUT_FACTOR=3 python -m pytest``), as
python-websockets' tests do with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``. Only how long a test is
willing to wait grows; the servers' own settings (idle timeouts, batching deadlines) do not.
"""

from __future__ import annotations

import math
import os

VARIABLE = "ASR_TEST_TIMEOUT_FACTOR"


def _read_factor() -> float:
    raw = os.environ.get(VARIABLE, "1")
    try:
        factor = float(raw)
    except ValueError:
        raise RuntimeError(f"{VARIABLE}={raw!r} is not a number") from None
    if not (math.isfinite(factor) and factor > 0):
        raise RuntimeError(f"{VARIABLE}={raw!r} must be a positive number")
    return factor


FACTOR = _read_factor()
"""Read once, when the tests are collected."""


def timeout(seconds: float) -> float:
    """``seconds`` scaled by :data:`FACTOR`: how long a test waits for something."""
    return seconds * FACTOR
