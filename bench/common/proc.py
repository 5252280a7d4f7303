"""CPU time and memory of a running process and its threads (psutil), of this process
(``getrusage``) and of the whole host."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass(frozen=True)
class Usage:
    """One reading of a process."""

    cpu_s: float
    """User + system CPU seconds of all its threads so far."""
    rss_mib: float
    """Resident memory now (VmRSS)."""
    peak_rss_mib: float
    """Peak resident memory since it started (VmHWM)."""


def read_usage(pid: int) -> Usage | None:
    """The process's CPU seconds and memory; None when it is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            times = process.cpu_times()
            rss = process.memory_info().rss / MIB
    except psutil.Error:
        return None
    return Usage(times.user + times.system, rss, _peak_rss_mib(pid))


def _peak_rss_mib(pid: int) -> float:
    """VmHWM of ``/proc/<pid>/status`` (psutil has no peak resident memory on Linux); 0 when
    it is not there."""
    try:
        status = (Path("/proc") / str(pid) / "status").read_text(encoding="ascii")
    except OSError:
        return 0.0
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key == "VmHWM":
            return int(rest.split()[0]) / 1024
    return 0.0


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process by thread id (empty when it is gone); the
    thread whose id is ``pid`` is the main thread (the server's event loop)."""
    try:
        threads = psutil.Process(pid).threads()
    except psutil.Error:
        return {}
    return {t.id: t.user_time + t.system_time for t in threads}


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (a server and its worker processes), parents
    first; empty when it is gone."""
    try:
        tree = [psutil.Process(pid)]
    except psutil.Error:
        return []
    for parent in tree:  # grows while it is walked: breadth first
        try:
            tree += sorted(parent.children(), key=lambda child: child.pid)
        except psutil.Error:
            continue  # ended meanwhile
    return [process.pid for process in tree]


def open_fds(pid: int) -> int | None:
    """File descriptors the process has open now (None when it is gone or not readable)."""
    try:
        return psutil.Process(pid).num_fds()
    except psutil.Error:
        return None


def cpu_share(before: Usage, after: Usage, wall_s: float, cores: int) -> float:
    """Share of ``cores`` CPUs the process used between two readings ``wall_s`` apart."""
    return (after.cpu_s - before.cpu_s) / max(wall_s, 1e-9) / max(cores, 1)


def own_cpu_s() -> float:
    """User + system CPU seconds this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def own_peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def system_cpu_s() -> tuple[float, float] | None:
    """(total, idle) CPU seconds of all CPUs since boot (idle includes iowait, as the jiffies
    of /proc/stat were counted); None where psutil cannot read them."""
    try:
        times = psutil.cpu_times()
    except (psutil.Error, OSError):
        return None
    return sum(times), times.idle + getattr(times, "iowait", 0.0)


def cores() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of a process and its descendants, of their main threads)."""
    total = loops = 0.0
    for p in tree_pids(pid):
        usage = read_usage(p)
        total += usage.cpu_s if usage is not None else 0.0
        loops += thread_cpu_s(p).get(p, 0.0)
    return total, loops
