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
from typing import Literal, Required, TypedDict

from .percentiles import Percentiles

log = logging.getLogger("bench.service_bench")  # its log lines are service_bench's

MAX_ERRORS_KEPT = 5
"""Error messages a level keeps (the first ones)."""


class Level(TypedDict, total=False):
    """One level's figures as written to the JSON reports (keys as they are there). Every level
    has ``streams``; a level the time budget left out has ``skipped`` and nothing else; a level
    that ran has the latency percentiles its benchmark measures, ``failed_streams`` and
    ``errors``, plus the figures only some benchmarks add (grouped below by who adds them)."""

    streams: Required[int]
    skipped: str
    """Why the level was not run (``"time budget"``)."""
    # every level that ran (service, engine alone, frontend, Triton, GPU)
    partial: Percentiles
    final: Percentiles
    """Not measured by the frontend benchmark."""
    late: Percentiles
    """Client lateness (not measured by the engine alone)."""
    end: Percentiles
    """Service levels: end-of-stream final arrival after the last sample was due."""
    failed_streams: int
    errors: list[str]
    """The first :data:`MAX_ERRORS_KEPT` error messages."""
    wall_s: float
    client_cpu: float
    """Share of all cores the clients (this process) used."""
    # the service level, when the server's /proc figures could be read (and Triton's)
    cpu: float
    rss_mib: float
    peak_rss_mib: float
    main_thread_cpu: float
    busiest_threads_cpu: list[float]
    # Triton: ``cpu`` is the whole setup's, the frontends' own beside it, CPU per role
    frontend_cpu: float
    cpu_ms_per_audio_s: dict[str, float]
    # the engine alone (``bench.stream.capacity.load_level``'s figures and this process's CPU)
    p50: float
    """Frame latency."""
    p95: float
    n: int
    busy: float
    mean_batch: float
    lagging: int
    process_cpu: float
    # the frontend benchmark
    audio_s: float
    cpu_per_audio_s: float
    loop_cpu_per_audio_s: float
    server_cpu: float
    # the GPU benchmark (the ``gpu_*`` figures only when a sampler read the GPU)
    server_cores: float
    server_cpu_ms_per_audio_s: float
    gpu_util_mean: float
    gpu_util_max: float
    gpu_memory_mib: float


Latency = Literal["partial", "final"]
"""The latency percentiles a :class:`Criterion` judges."""


@dataclass(frozen=True)
class Criterion:
    """A level holds when it was run (not ``skipped``), no stream failed and the p95 of its
    ``latency`` percentiles (``partial`` or ``final``) is within ``budget_s``."""

    latency: Latency
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
