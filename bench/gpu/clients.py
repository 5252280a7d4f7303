"""The GPU capacity run's real-time clients: one level's streams shared among several spawned
client processes, each connecting its share, waiting for the others, then playing."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common import fixtures
from ..service import frontend_client
from ..stream import capacity as stream_capacity

log = logging.getLogger("bench.gpu_capacity")
"""The script's log channel (``bench.gpu.capacity.main`` sets its level)."""


@dataclass(frozen=True)
class ClientJob:
    """One client process's share of a level."""

    url: str
    bundle: str
    audio: str
    streams: int
    seconds: float
    share: int
    """This process takes ``pieces[share::procs]``."""
    procs: int
    hop_s: float
    frame_ms: int


def client_process(job: ClientJob, barrier: Any, results: Any) -> None:
    """Connect this share's clients, wait for every process at the barrier, play in real time,
    and put the latencies (not the runs) on ``results``."""
    raise_fd_limit()
    speech = fixtures.load_set(Path(job.bundle) / job.audio)
    audio = np.concatenate([s for s, _ in speech])
    pieces = stream_capacity.client_pieces(audio, job.streams, job.seconds)[job.share :: job.procs]

    def connected() -> None:
        barrier.wait(timeout=600)

    try:
        runs = asyncio.run(
            frontend_client.play_all(job.url, pieces, job.hop_s, job.frame_ms, connected)
        )
    except BaseException as exc:  # report, so that the parent does not hang
        barrier.abort()
        results.put({"share": job.share, "crash": f"{type(exc).__name__}: {exc}"})
        return
    errors = [r.error for r in runs if r.error is not None]
    errors += [f"closed {r.close_code}" for r in runs if r.error is None and r.close_code != 1000]
    results.put(
        {
            "share": job.share,
            "streams": len(pieces),
            "partial": [x for r in runs for x in r.partial_latencies()],
            "final": [x for r in runs for x in r.final_latencies()],
            "late": [x for r in runs for x in r.late_s],
            "errors": errors,
        }
    )


def play_level(jobs: list[ClientJob]) -> list[dict[str, Any]]:
    """Every job in its own (spawned) process; their results."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results = context.Queue()
    procs = [context.Process(target=client_process, args=(j, barrier, results)) for j in jobs]
    for proc in procs:
        proc.start()
    out = []
    try:
        for _ in procs:
            out.append(results.get(timeout=900))
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    return out


def raise_fd_limit() -> None:
    """Open files up to the hard limit (thousands of sockets per process); children inherit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if wanted > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            log.warning("open files stay limited to %d", soft)
