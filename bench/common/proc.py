"""CPU time and memory of a running process, read from ``/proc`` (Linux) and ``getrusage``."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path


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
    """The process's CPU seconds and memory; None when it is gone or /proc is absent."""
    root = Path("/proc") / str(pid)
    try:
        stat = (root / "stat").read_text(encoding="ascii")
        status = (root / "status").read_text(encoding="ascii")
    except OSError:
        return None
    memory = {
        key: int(rest.split()[0]) / 1024
        for key, _, rest in (line.partition(":") for line in status.splitlines())
        if key in ("VmRSS", "VmHWM")
    }
    return Usage(_stat_cpu_s(stat), memory.get("VmRSS", 0.0), memory.get("VmHWM", 0.0))


def _stat_cpu_s(stat: str) -> float:
    """User + system CPU seconds of a ``/proc/.../stat`` line."""
    # Fields after the parenthesised command name (which may hold spaces): state is field 3,
    # utime and stime are fields 14 and 15.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process by thread id (empty when it is gone); the
    thread whose id is ``pid`` is the main thread (the server's event loop)."""
    threads: dict[int, float] = {}
    try:
        tasks = list((Path("/proc") / str(pid) / "task").iterdir())
    except OSError:
        return threads
    for task in tasks:
        try:
            stat = (task / "stat").read_text(encoding="ascii")
        except OSError:
            continue  # ended meanwhile
        threads[int(task.name)] = _stat_cpu_s(stat)
    return threads


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (a server and its worker processes), parents
    first; empty when it is gone."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue  # ended meanwhile
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    if not (Path("/proc") / str(pid)).is_dir():
        return []
    tree = [pid]
    for parent in tree:  # grows while it is walked: breadth first
        tree += sorted(parents.get(parent, []))
    return tree


def open_fds(pid: int) -> int | None:
    """File descriptors the process has open now (None when it is gone or not readable)."""
    try:
        return len(list((Path("/proc") / str(pid) / "fd").iterdir()))
    except OSError:
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


def system_cpu_ticks() -> tuple[int, int] | None:
    """(total, idle) jiffies of all CPUs from /proc/stat (None off Linux)."""
    stat = Path("/proc/stat")
    if not stat.is_file():
        return None
    ticks = [int(v) for v in stat.read_text(encoding="ascii").split("\n", 1)[0].split()[1:]]
    return sum(ticks), ticks[3] + ticks[4]


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
