"""The Triton benchmark's ratios: streams held and CPU of each Triton setup against the local
backend, and of each LM setup against greedy."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..service.levels import holds

RATIO_GOAL = 0.85
"""Issue 10: streams held through Triton on CPU over those held by the local backend."""


def ratios(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each Triton setup against the local setup of its precision with one process (else the
    first local setup of that precision)."""
    setups, held = figures["setups"], figures["held"]
    out = {}
    for label, s in setups.items():
        if s["inference"] != "triton":
            continue
        local = [
            other
            for other, o in setups.items()
            if o["inference"] == "local"
            and o["precision"] == s["precision"]
            and o.get("lm", False) == s.get("lm", False)
        ]
        local.sort(key=lambda other: setups[other]["workers"] != 1)
        if not local or not held[local[0]]:
            continue
        ratio = held[label] / held[local[0]]
        out[label] = {
            "against": local[0],
            "ratio": ratio,
            "met": ratio >= RATIO_GOAL,
            **cost_ratio(figures.get("levels", {}), label, local[0]),
        }
    return out


def lm_ratios(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each LM setup against the same setup without the LM (greedy): streams held, CPU."""
    setups, held = figures["setups"], figures["held"]
    out = {}
    for label, s in setups.items():
        if not s.get("lm"):
            continue
        greedy = [
            other
            for other, o in setups.items()
            if not o.get("lm")
            and all(o[k] == s[k] for k in ("inference", "precision", "workers", "instances"))
            and o.get("threads") == s.get("threads")
        ]
        if not greedy or not held[greedy[0]]:
            continue
        out[label] = {
            "against": greedy[0],
            "ratio": held[label] / held[greedy[0]],
            **cost_ratio(figures.get("levels", {}), label, greedy[0]),
        }
    return out


def cost_ratio(levels: dict[str, dict[str, Any]], label: str, local: str) -> dict[str, Any]:
    """The setup's CPU over the local setup's at the levels (of 10 streams or more) both held:
    the median of the per-level ratios. On a host whose cores the setups have to themselves,
    capacity is CPU-bound and the streams held go as its inverse; on a shared host, a setup of
    more processes also takes a larger share of the cores."""
    mine, theirs = levels.get(label, {}), levels.get(local, {})
    common = [
        n
        for n in mine
        if n in theirs
        and int(n) >= 10
        and holds(mine[n])
        and holds(theirs[n])
        and theirs[n]["cpu"] > 0
    ]
    if not common:
        return {}
    per_level = {n: mine[n]["cpu"] / theirs[n]["cpu"] for n in common}
    return {"cpu_ratio": float(np.median(list(per_level.values()))), "cpu_ratio_levels": per_level}
