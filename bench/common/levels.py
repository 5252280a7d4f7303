"""THE level search every capacity sweep uses (service capacity, frontend, GPU, Triton): which
levels (N concurrent real-time streams) to try (:func:`level_sequence`: climb, then bisect),
several paths run one level of each in turn so that the host's drift hits them alike
(:func:`interleaved`), and the most streams a path held (:func:`held`). Whether a level held is
each benchmark's own :class:`Criterion` (which latency, which budget)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("bench.service_bench")  # its log lines are service_bench's

MAX_ERRORS_KEPT = 5
"""Error messages a level keeps (the first ones)."""

Level = dict[str, Any]
"""One level's figures as written to the JSON reports: ``streams``, the latency percentiles
(``partial``, ``final``, ...: ``{"p50", "p95", ...}``), ``failed_streams``; a level the time
budget left out has ``skipped`` instead."""


@dataclass(frozen=True)
class Criterion:
    """A level holds when it was run (not ``skipped``), no stream failed and the p95 of its
    ``latency`` percentiles (``partial`` or ``final``) is within ``budget_s``."""

    latency: str
    budget_s: float

    def __call__(self, level: Level) -> bool:
        if level.get("skipped") or level.get("failed_streams"):
            return False
        p95 = level[self.latency]["p95"]
        return not math.isnan(p95) and p95 <= self.budget_s


# --- the sweep ----------------------------------------------------------------------------------

Levels = Generator[int, bool, None]


def level_sequence(first: Sequence[int], step: int, most: int, refine: int = 8) -> Levels:
    """Stream counts to try: ``first`` (ascending), then ``step`` more each time until a level
    fails or ``most`` is passed, then up to ``refine`` bisections between the last level that
    held and the first that failed. Send whether each level held."""
    held, failed = 0, None
    for n in first:
        if (yield n):
            held = max(held, n)
        else:
            failed = n
            break
    n = max(first) + step
    while failed is None and n <= most:
        if (yield n):
            held, n = n, n + step
        else:
            failed = n
    while failed is not None and failed - held > 1 and refine > 0:
        refine -= 1
        mid = (held + failed) // 2
        if (yield mid):
            held = mid
        else:
            failed = mid


def latency_line(level: Level) -> str:
    """The default log line of a level: its partial latency."""
    return f"partial p50 {level['partial']['p50']:.3f} p95 {level['partial']['p95']:.3f} s"


def never() -> bool:
    return False


def interleaved(
    paths: dict[str, Callable[[int], Level]],
    plan: Callable[[], Levels],
    holds: Callable[[Level], bool],
    *,
    describe: Callable[[Level], str] = latency_line,
    out_of_time: Callable[[], bool] = never,
    channel: logging.Logger = log,
) -> dict[str, dict[str, Level]]:
    """Each path's own level sequence, run one level of each path in turn; ``holds`` decides
    whether a level held (the next one goes up or bisects), ``describe`` its log line on
    ``channel``. Once ``out_of_time()``, a path's next level is recorded as skipped (``{"streams":
    n, "skipped": "time budget"}``) and the path ends. Levels by stream count, ascending."""
    sequences = {name: plan() for name in paths}
    pending = {name: next(seq) for name, seq in sequences.items()}
    results: dict[str, dict[str, Level]] = {name: {} for name in paths}
    while pending:
        for name in list(pending):
            n = pending[name]
            if out_of_time():
                channel.warning("%s, %d streams: skipped, the time budget is spent", name, n)
                results[name][str(n)] = {"streams": n, "skipped": "time budget"}
                del pending[name]
                continue
            level = results[name].get(str(n)) or paths[name](n)
            results[name][str(n)] = level
            channel.info("%s, %d streams: %s", name, n, describe(level))
            try:
                pending[name] = sequences[name].send(holds(level))
            except StopIteration:
                del pending[name]
    return {
        name: dict(sorted(levels.items(), key=lambda kv: int(kv[0])))
        for name, levels in results.items()
    }


def held(levels: dict[str, Level], holds: Callable[[Level], bool]) -> int:
    """Most streams of a level that held with every level below it that was run (levels the
    time budget skipped do not count either way)."""
    best = 0
    for n, level in sorted(levels.items(), key=lambda kv: int(kv[0])):
        if level.get("skipped"):
            continue
        if not holds(level):
            break
        best = int(n)
    return best
