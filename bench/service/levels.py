"""One capacity level (N concurrent real-time streams) through the websocket server
(:func:`service_level`, with the clients of ``bench.service.clients``) or through the engine
alone in this process (:func:`engine_level`), and whether it held (:data:`holds`: p95 partial
latency within the budget, no stream failed). The search over levels is ``bench.common.levels``."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.engine import Engine
from streamasr.server.options.stream import StreamOptions

from ..common.levels import MAX_ERRORS_KEPT, Criterion, Level
from ..common.percentiles import percentiles
from ..common.proc import cores, cpu_share, own_cpu_s, thread_cpu_s
from ..common.server_process import ServerProcess
from ..stream import capacity as stream_capacity
from ..stream.sim import RATE
from .clients import play_clients

LATENCY_BUDGET_S = stream_capacity.LATENCY_BUDGET_S

holds = Criterion("partial", LATENCY_BUDGET_S)
"""p95 partial latency within the budget and no stream failed."""


def service_level(server: ServerProcess, pieces: list[NDArray[np.float32]], hop_s: float) -> Level:
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
    level: Level = {
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
) -> Level:
    """``n`` concurrent real-time streams through the engine alone, with this process's CPU."""
    own_before, started = own_cpu_s(), time.perf_counter()
    level = stream_capacity.load_level(e, audio, n, seconds, options)
    wall = time.perf_counter() - started
    return {  # load_level's keys first, as the reports have them
        "p50": level["p50"],
        "p95": level["p95"],
        "n": level["n"],
        "partial": level["partial"],
        "final": level["final"],
        "busy": level["busy"],
        "mean_batch": level["mean_batch"],
        "lagging": level["lagging"],
        "streams": n,
        "failed_streams": 0,
        "process_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }
