"""Latency percentiles as every benchmark's JSON report carries them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import numpy as np


class Percentiles(TypedDict):
    """Latency percentiles as the JSON reports carry them (seconds; NaN when ``n`` is 0)."""

    p50: float
    p95: float
    n: int


def percentiles(values: Sequence[float]) -> Percentiles:
    if not values:
        return {"p50": float("nan"), "p95": float("nan"), "n": 0}
    array = np.asarray(values)
    return {
        "p50": round(float(np.percentile(array, 50)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "n": len(values),
    }
