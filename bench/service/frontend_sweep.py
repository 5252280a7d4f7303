"""The frontend benchmark's measurement: one level's latency and server CPU, the plans, the
interleaved sweep of every setup's levels and the figures per setup (a ``triton`` setup without
the Triton interpreter is listed as not measured, with the reason)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from ..common import levels as capacity_levels
from ..common import server_process
from ..common.levels import Level
from ..common.percentiles import percentiles
from ..common.proc import cores, own_cpu_s, tree_cpu
from ..stream import capacity as stream_capacity
from ..stream.sim import RATE
from ..triton.process import serving, triton_unavailable
from . import capacity as service_bench
from .frontend_client import play_all
from .frontend_server import REAL_PRECISION, Setup, server

log = logging.getLogger("bench.frontend_bench")

BUDGET_S = 0.3
"""p95 partial latency after the window's completion that a level must hold."""


def frontend_level(
    server: server_process.ServerProcess,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    frame_ms: int,
) -> Level:
    """``len(pieces)`` real-time clients through the server: latency, and the server's CPU
    from the moment every client is connected until the last one closed."""
    marks: list[tuple[float, float, float, float]] = []

    def connected() -> None:
        marks.append((*tree_cpu(server.pid), own_cpu_s(), time.perf_counter()))

    runs = asyncio.run(play_all(server.url, pieces, hop_s, frame_ms, connected))
    ((cpu_before, loops_before, own_before, started),) = marks
    wall = time.perf_counter() - started
    cpu_after, loops_after = tree_cpu(server.pid)
    audio_s = sum(p.size for p in pieces) / RATE
    errors = [r.error for r in runs if r.error is not None]
    errors += [f"closed {r.close_code}" for r in runs if r.error is None and r.close_code != 1000]
    level: Level = {
        "streams": len(pieces),
        "partial": percentiles([x for r in runs for x in r.partial_latencies()]),
        "late": percentiles([x for r in runs for x in r.late_s]),
        "failed_streams": len(errors),
        "errors": errors[: capacity_levels.MAX_ERRORS_KEPT],
        "wall_s": wall,
        "audio_s": audio_s,
        "cpu_per_audio_s": (cpu_after - cpu_before) / audio_s,
        "loop_cpu_per_audio_s": (loops_after - loops_before) / audio_s,
        "server_cpu": (cpu_after - cpu_before) / wall / cores(),
        "client_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }
    return level


holds = capacity_levels.Criterion("partial", BUDGET_S)


@dataclass(frozen=True)
class FrontendPlan:
    """Which setups, and how far and how finely to sweep each."""

    seconds: float = 12.0
    """Audio per client stream."""
    first: int = 40
    """The first level; the CPU cost is read there."""
    step: int = 60
    most: int = 900
    refine: int = 3
    frames_ms: tuple[int, ...] = (20, 100)
    workers: tuple[int, ...] = (1, 2)
    models: tuple[str, ...] = ()
    """The real configurations run beside the instant model, at the first frame size with one
    worker: ``local`` (the model in the server's process) and ``triton`` (in a local Triton)."""

    def figures(self) -> PlanFigures:
        """As the report carries it (``dataclasses.asdict``'s keys and order)."""
        return {
            "seconds": self.seconds,
            "first": self.first,
            "step": self.step,
            "most": self.most,
            "refine": self.refine,
            "frames_ms": self.frames_ms,
            "workers": self.workers,
            "models": self.models,
        }


class PlanFigures(TypedDict):
    """A :class:`FrontendPlan` in the report (tuples become JSON lists)."""

    seconds: float
    first: int
    step: int
    most: int
    refine: int
    frames_ms: tuple[int, ...]
    workers: tuple[int, ...]
    models: tuple[str, ...]


class SetupFigures(TypedDict):
    """One setup's row: its :class:`Setup` fields, the CPU cost at the first level, the streams
    it held and every level."""

    tree: str
    frame_ms: int
    workers: int
    links: str | None
    model: str
    label: str
    cpu_ms_per_audio_s: float
    loop_cpu_ms_per_audio_s: float
    streams_per_core: float
    held: int
    levels: dict[str, Level]


class FrontendFigures(TypedDict):
    """The frontend benchmark's figures (the report's ``frontend`` section)."""

    plan: PlanFigures
    budget_s: float
    cores: int
    setups: list[SetupFigures]
    unavailable: dict[str, str]
    """The label of each setup that could not run, and why."""


REAL = ("local", "triton")
PLANS = {
    "full": FrontendPlan(models=REAL),
    "quick": FrontendPlan(seconds=6.0, step=80, most=600, refine=2, models=REAL),
    "smoke": FrontendPlan(
        seconds=2.0, first=2, step=2, most=4, refine=0, workers=(1,), models=REAL
    ),
}
"""By ``python -m bench report`` mode."""


def setups(plan: FrontendPlan, before: Path | None, after: bool = True) -> list[Setup]:
    """This checkout (unless not ``after``) at every frame size and worker count, and its real
    configurations at the first frame size with one worker; the ``before`` tree with one worker
    (it may predate ``--workers``)."""
    out = []
    for frame_ms in plan.frames_ms:
        if before is not None:
            out.append(Setup("before", frame_ms, 1, before))
        if after:
            out += [Setup("after", frame_ms, w) for w in plan.workers]
    if after:
        out += [Setup("after", plan.frames_ms[0], 1, model=m) for m in plan.models]
    return out


def unavailable(runs: list[Setup]) -> dict[str, str]:
    """The setups that cannot run here, and why (``triton`` ones without its interpreter)."""
    if not any(s.model == "triton" for s in runs):
        return {}
    reason = triton_unavailable()
    if reason is None:
        return {}
    log.warning("frontend: no Triton row: no Triton interpreter: %s", reason)
    return {s.label: f"no Triton interpreter: {reason}" for s in runs if s.model == "triton"}


def _cost_line(level: Level) -> str:
    return (
        f"partial p95 {level['partial']['p95']:.3f} s, "
        f"{level['cpu_per_audio_s'] * 1000:.2f} ms CPU per audio s, "
        f"client CPU {level['client_cpu'] * 100:.0f}%"
    )


def sweep(
    paths: dict[str, Callable[[int], Level]], plan: FrontendPlan
) -> dict[str, dict[str, Level]]:
    """Each path's level sequence, one level of each path in turn (``capacity_levels.interleaved``
    with this bench's latency budget)."""
    return capacity_levels.interleaved(
        paths,
        lambda: capacity_levels.level_sequence((plan.first,), plan.step, plan.most, plan.refine),
        holds,
        describe=_cost_line,
    )


def held(levels: dict[str, Level]) -> int:
    return capacity_levels.held(levels, holds)


def measure(
    folder: Path,
    audio: NDArray[np.float32],
    plan: FrontendPlan,
    work: Path,
    before: Path | None = None,
    *,
    after: bool = True,
) -> FrontendFigures:
    """Every setup's server up at once (and one ``asr-triton`` for the ``triton`` ones), their
    levels interleaved; figures per setup."""
    hop_s = service_bench.engine_settings(["--model", str(folder)])[1].hop_s
    missing = unavailable(setups(plan, before, after))
    runs = [s for s in setups(plan, before, after) if s.label not in missing]
    with ExitStack() as stack:
        url = None
        if any(s.model == "triton" for s in runs):
            triton = serving(folder, [REAL_PRECISION], work / "triton.log")
            url = stack.enter_context(triton).url
        servers = {
            s.label: stack.enter_context(
                server(s, folder, work, url if s.model == "triton" else None)
            )
            for s in runs
        }

        def path(setup: Setup) -> Callable[[int], Level]:
            process = servers[setup.label]
            return lambda n: frontend_level(
                process,
                stream_capacity.client_pieces(audio, n, plan.seconds),
                hop_s,
                setup.frame_ms,
            )

        levels = sweep({s.label: path(s) for s in runs}, plan)
    rows: list[SetupFigures] = []
    for setup in runs:
        first = levels[setup.label][str(plan.first)]
        rows.append(
            {
                "tree": setup.tree,
                "frame_ms": setup.frame_ms,
                "workers": setup.workers,
                "links": str(setup.links) if setup.links else None,
                "model": setup.model,
                "label": setup.label,
                "cpu_ms_per_audio_s": first["cpu_per_audio_s"] * 1000,
                "loop_cpu_ms_per_audio_s": first["loop_cpu_per_audio_s"] * 1000,
                "streams_per_core": 1 / max(first["cpu_per_audio_s"], 1e-9),
                "held": held(levels[setup.label]),
                "levels": levels[setup.label],
            }
        )
    return {
        "plan": plan.figures(),
        "budget_s": BUDGET_S,
        "cores": cores(),
        "setups": rows,
        "unavailable": missing,
    }
