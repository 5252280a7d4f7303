"""One factor scales every timeout in the tests: ``ASR_TEST_TIMEOUT_FACTOR`` (default 1).

A slow or crowded machine sets it above 1 (``ASR_TEST_TIMEOUT_FACTOR=3 python -m pytest``), as
python-websockets' tests do with ``WEBSOCKETS_TESTS_TIMEOUT_FACTOR``. Only how long a test is
willing to wait grows; the servers' own settings (idle timeouts, batching deadlines) do not.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import TypeVar

VARIABLE = "ASR_TEST_TIMEOUT_FACTOR"
T = TypeVar("T")


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


def wait_until(
    check: Callable[[], T], what: str = "the condition", seconds: float = 5.0, every: float = 0.02
) -> T:
    """Call ``check`` every ``every`` seconds until it returns something true, and return that;
    AssertionError naming ``what`` after :func:`timeout` of ``seconds``. For state another
    process or thread changes (a fake clock cannot advance it)."""
    deadline = time.monotonic() + timeout(seconds)
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout(seconds):.0f} s for {what}")
        time.sleep(every)
    return value
