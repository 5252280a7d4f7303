"""Capacity levels and the search over them: one level (N concurrent real-time streams) through
the websocket server (:func:`service_level`, with the clients of ``bench.service.clients``) or
through the engine alone in this process (:func:`engine_level`); whether a level holds
(:func:`holds`); which levels to try (:func:`level_sequence`: climb, then bisect), several paths
run one level of each in turn so that the host's drift hits them alike (:func:`interleaved`),
and the most streams a path held (:func:`held`)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine import Engine
from streamasr.server.stream import StreamOptions

from ..service.clients import play_clients
from ..stream import capacity as stream_capacity
from ..stream.sim import RATE, percentiles
from .proc import cores, cpu_share, own_cpu_s, thread_cpu_s
from .server_process import ServerProcess

log = logging.getLogger("bench.service_bench")  # its log lines are service_bench's

LATENCY_BUDGET_S = stream_capacity.LATENCY_BUDGET_S
MAX_ERRORS_KEPT = 5


def service_level(
    server: ServerProcess, pieces: list[NDArray[np.float32]], hop_s: float
) -> dict[str, Any]:
    """``len(pieces)`` concurrent real-time clients through the server."""
    before, own_before = server.usage(), own_cpu_s()
    threads_before = thread_cpu_s(server.pid)
    started = time.perf_counter()
    runs = asyncio.run(play_clients(server.url, pieces, hop_s))
    wall = time.perf_counter() - started
    after = server.usage()
    threads = {
        tid: (cpu - threads_before.get(tid, 0.0)) / wall
        for tid, cpu in thread_cpu_s(server.pid).items()
    }
    errors = [r.error for r in runs if r.error is not None]
    errors += [
        f"closed with {r.close_code}" for r in runs if r.error is None and r.close_code != 1000
    ]
    partials = [x for r in runs for x in r.partial_latencies()]
    level: dict[str, Any] = {
        "streams": len(pieces),
        "partial": percentiles(partials),
        "final": percentiles([x for r in runs for x in r.final_latencies()]),
        "end": percentiles(
            [r.end_arrival - r.samples / RATE for r in runs if r.end_arrival is not None]
        ),
        "late": percentiles([x for r in runs for x in r.late_s]),
        "failed_streams": len(errors),
        "errors": errors[:MAX_ERRORS_KEPT],
        "wall_s": wall,
        "client_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }
    if before is not None and after is not None:
        level["cpu"] = cpu_share(before, after, wall, cores())
        level["rss_mib"] = after.rss_mib
        level["peak_rss_mib"] = after.peak_rss_mib
        level["main_thread_cpu"] = threads.get(server.pid, math.nan)
        level["busiest_threads_cpu"] = sorted(threads.values(), reverse=True)[:4]
    return level


def engine_level(
    e: Engine, audio: NDArray[np.float32], n: int, seconds: float, options: StreamOptions
) -> dict[str, Any]:
    """``n`` concurrent real-time streams through the engine alone, with this process's CPU."""
    own_before, started = own_cpu_s(), time.perf_counter()
    level = stream_capacity.load_level(e, audio, n, seconds, options)
    wall = time.perf_counter() - started
    return {
        **level,
        "streams": n,
        "failed_streams": 0,
        "process_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }


def holds(level: dict[str, Any]) -> bool:
    """p95 partial latency within the budget and no stream failed."""
    p95 = level["partial"]["p95"]
    return not level.get("failed_streams") and not math.isnan(p95) and p95 <= LATENCY_BUDGET_S


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


def _latency_line(level: dict[str, Any]) -> str:
    return f"partial p50 {level['partial']['p50']:.3f} p95 {level['partial']['p95']:.3f} s"


def interleaved(
    paths: dict[str, Callable[[int], dict[str, Any]]],
    plan: Callable[[], Levels],
    *,
    holds: Callable[[dict[str, Any]], bool] = holds,
    describe: Callable[[dict[str, Any]], str] = _latency_line,
) -> dict[str, dict[str, Any]]:
    """Each path's own level sequence, run one level of each path in turn; ``holds`` decides
    whether a level held (the next one goes up or bisects), ``describe`` its log line."""
    sequences = {name: plan() for name in paths}
    pending = {name: next(seq) for name, seq in sequences.items()}
    results: dict[str, dict[str, Any]] = {name: {} for name in paths}
    while pending:
        for name in list(pending):
            n = pending[name]
            level = results[name].get(str(n)) or paths[name](n)
            results[name][str(n)] = level
            log.info("%s, %d streams: %s", name, n, describe(level))
            try:
                pending[name] = sequences[name].send(holds(level))
            except StopIteration:
                del pending[name]
    return {
        name: dict(sorted(levels.items(), key=lambda kv: int(kv[0])))
        for name, levels in results.items()
    }


def held(levels: dict[str, Any], holds: Callable[[dict[str, Any]], bool] = holds) -> int:
    """Most streams of a level that held with every level below it that was run."""
    best = 0
    for n, level in sorted(levels.items(), key=lambda kv: int(kv[0])):
        if not holds(level):
            break
        best = int(n)
    return best
