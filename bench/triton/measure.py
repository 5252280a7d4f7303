"""The Triton benchmark's run: every setup up at once, one level with the whole setup's CPU,
the levels interleaved, and the raw onnxruntime ceiling before and after."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..common import levels as capacity_levels
from ..common.proc import cores
from ..service import capacity as service_bench
from ..service.levels import LATENCY_BUDGET_S, holds, service_level
from ..stream import capacity as stream_capacity
from .process import Running, running, triton_unavailable
from .ratios import lm_ratios, ratios
from .setup import Setup, windows

log = logging.getLogger("bench.triton_bench")


def level(
    run: Running, audio: NDArray[np.float32], n: int, seconds: float, hop_s: float
) -> capacity_levels.Level:
    """The service benchmark's level, with the CPU of the whole setup (frontends and Triton)."""
    before, roles_before, started = run.cpu_s(), run.cpu_by_role(), time.perf_counter()
    figures = service_level(run.server, stream_capacity.client_pieces(audio, n, seconds), hop_s)
    wall = time.perf_counter() - started
    figures["frontend_cpu"] = figures.get("cpu", math.nan)
    figures["cpu"] = (run.cpu_s() - before) / wall / cores()
    audio_s = n * seconds
    figures["cpu_ms_per_audio_s"] = {
        role: (cpu - roles_before.get(role, 0.0)) / audio_s * 1000
        for role, cpu in run.cpu_by_role().items()
    }
    return figures


def measure(
    folder: Path,
    audio: NDArray[np.float32],
    plan: service_bench.CapacityPlan,
    work: Path,
    setups: Sequence[Setup],
    *,
    lm: Path | None = None,
) -> dict[str, Any]:
    """Every setup up at once, their levels interleaved; streams held and the ratios."""
    unavailable = triton_unavailable() if any(s.inference == "triton" for s in setups) else None
    if unavailable is not None:
        log.warning("Triton benchmark skipped: %s", unavailable)
        return {"skipped": f"no Triton interpreter: {unavailable}"}
    options = service_bench.engine_settings(service_bench.server_args(folder, "int8"))[1]
    layout = stream_capacity.LAYOUTS["2x1"]
    window = stream_capacity.steady_window(options)
    ceiling_before = ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
    figures: dict[str, Any] = {
        "seconds": plan.seconds,
        "budget_s": LATENCY_BUDGET_S,
        "cores": cores(),
        "ceiling_before": ceiling_before,
        "setups": {},
    }
    with ExitStack() as stack:
        runs = {s.label: stack.enter_context(running(s, folder, work, lm)) for s in setups}
        for label, run in runs.items():
            figures["setups"][label] = {
                **asdict(run.setup),
                "windows": windows(run.setup, run.setup.server_args(folder, None, lm)),
                "server_command": "asr-server " + " ".join(run.server.command[3:]),
                "triton_command": (
                    "asr-triton " + " ".join(run.triton.command[3:]) if run.triton else None
                ),
            }

        def path(run: Running) -> Callable[[int], capacity_levels.Level]:
            hop_s = figures["setups"][run.setup.label]["windows"]["hop_s"]
            return lambda n: level(run, audio, n, plan.seconds, hop_s)

        try:
            figures["levels"] = capacity_levels.interleaved(
                {label: path(run) for label, run in runs.items()},
                plan.levels(ceiling_before),
                holds,
            )
        finally:
            for label, run in runs.items():
                figures["setups"][label]["server_log_tail"] = run.server.log_tail()
                if run.triton is not None:
                    figures["setups"][label]["triton_log_tail"] = run.triton.log_tail()
    figures["ceiling_after"] = ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
    figures["held"] = {
        label: capacity_levels.held(lv, holds) for label, lv in figures["levels"].items()
    }
    figures["ratios"] = ratios(figures)
    figures["lm_ratios"] = lm_ratios(figures)
    return figures


def ceiling(
    folder: Path, window: int, hop_s: float, layout: stream_capacity.Layout, duration_s: float
) -> float:
    """The raw onnxruntime int8 ceiling (streams) on steady windows."""
    raw = stream_capacity.raw_ceiling(folder, window, hop_s, layout, duration_s)
    return float(max(v["streams"] for v in raw.values()))
