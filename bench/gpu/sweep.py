"""The GPU capacity sweep: the plans, one ``asr-server`` per setup, each level played and judged
(p95 final latency within 1 s, no stream failed), and the whole measurement's figures."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..common import levels as capacity_levels
from ..common import server_process
from ..common.percentiles import percentiles
from ..common.proc import cores, tree_cpu
from ..service import capacity as service_bench
from ..service import frontend_sweep
from .bundle import Bundle, bundle_audio
from .clients import ClientJob, play_level, raise_fd_limit
from .device import Device, GpuSampler, choose_device

log = logging.getLogger("bench.gpu_capacity")
"""The script's log channel (``bench.gpu.capacity.main`` sets its level)."""

FINAL_BUDGET_S = 1.0
"""p95 final latency a level must hold (issue 10)."""
LEVEL_OVERHEAD_S = 30.0
"""Connecting, draining and slack per level, for the time budget."""


# --- one setup, one level ------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How far and how finely to sweep, and the clients."""

    seconds: float = 10.0
    first: tuple[int, ...] = (500, 1000, 2000)
    step: int = 1000
    most: int = 8000
    refine: int = 2
    fixed: tuple[int, ...] = ()
    workers: tuple[int, ...] = (4, 8)
    frame_ms: int = 20
    client_procs: int = 4
    max_batch: int = 64
    max_wait_ms: float = 10.0
    budget_s: float = 540.0
    """Wall time for the whole run; levels that would not fit are skipped (and say so)."""

    def levels(self) -> Callable[[], capacity_levels.Levels]:
        if self.fixed:
            fixed = self.fixed
            return lambda: capacity_levels.level_sequence(fixed, 1, 0, refine=0)
        first, step, most, refine = self.first, self.step, self.most, self.refine
        return lambda: capacity_levels.level_sequence(first, step, most, refine)


PLANS = {
    "gpu": Plan(),
    "smoke": Plan(
        seconds=2.0,
        fixed=(2,),
        workers=(2,),
        client_procs=2,
        max_batch=8,
        max_wait_ms=5.0,
        budget_s=300.0,
    ),
}
FRONTEND_PLANS = {
    "gpu": frontend_sweep.FrontendPlan(
        seconds=6.0, first=40, step=120, most=600, refine=1, frames_ms=(20,), workers=(1,)
    ),
    "smoke": frontend_sweep.FrontendPlan(
        seconds=2.0, first=2, step=2, most=2, refine=0, frames_ms=(20,), workers=(1,)
    ),
}


def server_args(folder: Path, device: Device, workers: int, plan: Plan) -> list[str]:
    args = ["--model", str(folder), "--port", "0", "--device", device.name]
    args += ["--precision", device.precision, "--workers", str(workers)]
    args += ["--max-batch", str(plan.max_batch), "--max-wait-ms", f"{plan.max_wait_ms:g}"]
    args += ["--max-connections", "20000", "--max-handshakes", "4000", "--max-queue", "100000"]
    # clients wait for every client process to connect before they play: no idle closes
    args += ["--idle-timeout", "600", "--min-audio", "0"]
    return args


holds = capacity_levels.Criterion("final", FINAL_BUDGET_S)
"""p95 final latency within 1 s, finals seen, no stream failed, not skipped."""


def held(levels: dict[str, capacity_levels.Level]) -> int:
    return capacity_levels.held(levels, holds)


def capacity_level(
    server: server_process.ServerProcess,
    bundle_dir: Path,
    bundle: Bundle,
    n: int,
    *,
    plan: Plan,
    hop_s: float,
) -> capacity_levels.Level:
    procs = max(1, min(plan.client_procs, n))
    jobs = [
        ClientJob(
            server.url,
            str(bundle_dir),
            bundle.audio,
            n,
            plan.seconds,
            i,
            procs,
            hop_s,
            plan.frame_ms,
        )
        for i in range(procs)
    ]
    cpu_before, _ = tree_cpu(server.pid)
    started = time.perf_counter()
    with GpuSampler() as sampler:
        parts = play_level(jobs)
    wall = time.perf_counter() - started
    cpu_after, _ = tree_cpu(server.pid)
    crashes = [p["crash"] for p in parts if "crash" in p]
    errors = [e for p in parts for e in p.get("errors", [])] + crashes
    audio_s = n * plan.seconds
    level: capacity_levels.Level = {
        "streams": n,
        "partial": percentiles([x for p in parts for x in p.get("partial", [])]),
        "final": percentiles([x for p in parts for x in p.get("final", [])]),
        "late": percentiles([x for p in parts for x in p.get("late", [])]),
        "failed_streams": len(errors) + (n if crashes else 0),
        "errors": errors[: capacity_levels.MAX_ERRORS_KEPT],
        "wall_s": wall,
        "server_cores": (cpu_after - cpu_before) / wall,
        "server_cpu_ms_per_audio_s": (cpu_after - cpu_before) / audio_s * 1000,
    }
    gpu = sampler.figures()
    if gpu is not None:
        level["gpu_util_mean"] = gpu["gpu_util_mean"]
        level["gpu_util_max"] = gpu["gpu_util_max"]
        level["gpu_memory_mib"] = gpu["gpu_memory_mib"]
    return level


def describe(level: capacity_levels.Level) -> str:
    return (
        f"final p95 {level['final']['p95']:.3f} s, partial p95 {level['partial']['p95']:.3f} s, "
        f"client late p95 {level['late']['p95']:.3f} s, server {level['server_cores']:.1f} cores, "
        f"GPU {level.get('gpu_util_mean', math.nan):.0f}%, {level['failed_streams']} failed"
    )


def sweep(
    paths: dict[str, Callable[[int], capacity_levels.Level]], plan: Plan, deadline: float
) -> dict[str, dict[str, capacity_levels.Level]]:
    """Each setup's levels, one of each in turn, until the time budget runs out."""
    return capacity_levels.interleaved(
        paths,
        plan.levels(),
        holds,
        describe=describe,
        out_of_time=lambda: time.monotonic() + plan.seconds + LEVEL_OVERHEAD_S > deadline,
        channel=log,
    )


@contextmanager
def servers(
    folder: Path, device: Device, plan: Plan, work: Path
) -> Iterator[dict[str, server_process.ServerProcess]]:
    with ExitStack() as stack:
        running = {}
        for workers in plan.workers:
            args = server_args(folder, device, workers, plan)
            label = f"{device.precision} on {device.name}, {workers} worker(s)"
            log_path = work / f"server-w{workers}.log"
            running[label] = stack.enter_context(server_process.ServerProcess(args, log_path))
        yield running


def measure(
    bundle_dir: Path,
    plan: Plan,
    frontend_plan: frontend_sweep.FrontendPlan,
    work: Path,
    forced: str | None,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + plan.budget_s
    raise_fd_limit()
    bundle = Bundle.read(bundle_dir)
    device = choose_device(bundle, forced)
    print(device.note, flush=True)
    log.info(device.note)
    audio = bundle_audio(bundle_dir, bundle)
    figures: dict[str, Any] = {
        "bundle": asdict(bundle),
        "device": asdict(device),
        "cores": cores(),
        "plan": asdict(plan),
        "final_budget_s": FINAL_BUDGET_S,
    }
    frontend = frontend_sweep.measure(
        bundle_dir / bundle.frontend_model, audio, frontend_plan, work / "frontend"
    )
    figures["frontend"] = frontend
    folder = bundle_dir / bundle.capacity_model
    hop_s = service_bench.engine_settings(["--model", str(folder)])[1].hop_s
    with servers(folder, device, plan, work) as running:
        figures["commands"] = {
            label: "asr-server " + " ".join(s.command[3:]) for label, s in running.items()
        }

        def path(server: server_process.ServerProcess) -> Callable[[int], capacity_levels.Level]:
            return lambda n: capacity_level(server, bundle_dir, bundle, n, plan=plan, hop_s=hop_s)

        try:
            figures["levels"] = sweep({k: path(s) for k, s in running.items()}, plan, deadline)
        finally:
            figures["server_log_tails"] = {k: s.log_tail() for k, s in running.items()}
    figures["held"] = {label: held(levels) for label, levels in figures["levels"].items()}
    figures["best"] = max(figures["held"].values(), default=0)
    figures["wall_s"] = time.monotonic() - started
    return figures
