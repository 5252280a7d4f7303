"""Real-time streams per GPU through the websocket server, with the frontend's own cost beside it.

Issue 10, item 6 (GPU): base-960h-size fp16 (random weights, exported by the project's
exporter) served by ``asr-server --device cuda --precision fp16 --workers N`` (N up to 8, one
onnxruntime CUDA session per worker, every worker batching its own streams); real-time clients
in several client processes; a level holds when the p95 *final* latency is within 1 s and no
stream failed. Beside it, the instant-model frontend figure (``bench.frontend_bench``: server
CPU per audio second per stream and the streams one worker holds, 20 ms frames), the GPU's name
(``nvidia-smi``) and its utilisation during each level. Goal: >= 2,000 streams on one
H100/H200.

The GPU machine needs no internet: everything comes from a folder prepared beforehand.

    # 1. here (the checkout's .venv, ../shared beside it): export and copy what the run needs
    python -m bench.gpu_capacity prepare --out gpu-bundle           # ~250 MB, about a minute
    # 2. copy the checkout and gpu-bundle/ to the GPU host; there, once, in a venv:
    #    pip install -e . 'onnxruntime-gpu==<the onnxruntime version of .venv>'
    #    (wheels downloaded here with `pip download` when the host has no internet)
    # 3. on the GPU host (at most --budget-s, 540 s by default, plus the servers' start)
    python -m bench.gpu_capacity run --bundle gpu-bundle --out gpu-out

``run`` prints the tables and writes ``gpu-out/gpu_capacity.json``. Without CUDA in onnxruntime
it says so and runs the CPU path (int8 when the bundle has it, else the GPU file on CPU): its
figures are then no GPU figures. ``--smoke`` (with ``prepare --smoke``: a tiny random model)
checks the machinery end to end in about a minute on CPU (tests/test_gpu_script.py).

Knobs: ``--workers`` (the setups, interleaved level by level; default 4 and 8), ``--frame-ms``
(client frame size, default 20), ``--client-procs`` (client processes, default a quarter of the
cores, at least 2), ``--seconds`` (audio per stream), ``--levels`` (exact levels instead of the
sweep), ``--max-batch`` / ``--max-wait-ms`` (the server's batching per worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import multiprocessing
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from . import frontend_client, frontend_sweep, frontend_tables, service_bench, stream_bench
from .machine import gpu_names
from .proc import cores
from .stream_sim import percentiles

log = logging.getLogger("bench.gpu_capacity")

BUNDLE_FILE = "bundle.json"
AUDIO_DIR = Path("speech") / "dev" / "human"
FINAL_BUDGET_S = 1.0
"""p95 final latency a level must hold (issue 10)."""
STREAMS_GOAL = 2000
"""Issue 10: real-time streams on one H100/H200."""
CUDA = "CUDAExecutionProvider"
LEVEL_OVERHEAD_S = 30.0
"""Connecting, draining and slack per level, for the time budget."""


# --- the bundle ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """What ``prepare`` wrote: paths relative to the bundle folder."""

    model: str
    """Architecture of the capacity model (``../shared/models/configs`` stem, or ``tiny``)."""
    capacity_model: str
    frontend_model: str
    audio: str
    precisions: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> Bundle:
        raw = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
        raw["precisions"] = tuple(raw["precisions"])
        return cls(**raw)


def prepare(shared: Path, work: Path, out: Path, model: str, smoke: bool) -> Bundle:
    """Export the capacity model (fp16; with ``smoke`` also fp32 and int8) and the fixture
    (fp32, for the instant-model frontend figure), and copy the human dev speech, into ``out``."""
    precisions = ("fp16", "fp32", "int8") if smoke else ("fp16",)
    capacity = stream_bench.export_random(shared, work, model, precisions)
    fixture = stream_bench.export_fixture(shared, work, ("fp32",))
    models = out / "models"
    for folder in (capacity, fixture):
        target = models / folder.name
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(folder, target)
    audio = out / AUDIO_DIR
    audio.mkdir(parents=True, exist_ok=True)
    for path in (shared / AUDIO_DIR).iterdir():
        if path.is_file():
            shutil.copy2(path, audio / path.name)
    bundle = Bundle(
        model=model,
        capacity_model=str(Path("models") / capacity.name),
        frontend_model=str(Path("models") / fixture.name),
        audio=str(AUDIO_DIR),
        precisions=precisions,
    )
    (out / BUNDLE_FILE).write_text(json.dumps(asdict(bundle), indent=2) + "\n", encoding="utf-8")
    return bundle


def bundle_audio(folder: Path, bundle: Bundle) -> NDArray[np.float32]:
    speech = stream_bench.load_set(folder / bundle.audio)
    return np.concatenate([s for s, _ in speech])


# --- the device ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """Where the capacity model runs."""

    name: str
    """``cuda`` or ``cpu``."""
    precision: str
    gpus: tuple[str, ...]
    providers: tuple[str, ...]
    note: str


def choose_device(bundle: Bundle, forced: str | None) -> Device:
    import onnxruntime as ort

    providers = tuple(ort.get_available_providers())
    gpus = gpu_names()
    if forced != "cpu" and CUDA in providers:
        note = f"CUDA: {', '.join(gpus) or 'GPU name unknown (no nvidia-smi)'}"
        return Device("cuda", "fp16", gpus, providers, note)
    if forced == "cuda":
        raise SystemExit(f"--device cuda: onnxruntime offers only {', '.join(providers)}")
    precision = "int8" if "int8" in bundle.precisions else "fp16"
    why = "--device cpu" if forced == "cpu" else f"no CUDA (onnxruntime offers {providers})"
    note = f"{why}: running the CPU path ({precision} on CPU); these are NOT GPU figures"
    return Device("cpu", precision, gpus, providers, note)


class GpuSampler:
    """``nvidia-smi`` utilisation and memory, sampled each second in a thread while active."""

    def __init__(self) -> None:
        self.smi = shutil.which("nvidia-smi")
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if self.smi is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        query = "--query-gpu=utilization.gpu,memory.used"
        while not self._stop.wait(1.0):
            try:
                out = subprocess.run(
                    [str(self.smi), query, "--format=csv,noheader,nounits", "--id=0"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout
                util, memory = (float(x) for x in out.strip().split(",")[:2])
            except (OSError, subprocess.SubprocessError, ValueError):
                continue
            self.samples.append((util, memory))

    def figures(self) -> dict[str, float]:
        if not self.samples:
            return {}
        utils = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": float(np.mean(utils)),
            "gpu_util_max": max(utils),
            "gpu_memory_mib": max(m for _, m in self.samples),
        }


# --- the clients, in several processes -----------------------------------------------------------


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
    speech = stream_bench.load_set(Path(job.bundle) / job.audio)
    audio = np.concatenate([s for s, _ in speech])
    pieces = stream_bench.client_pieces(audio, job.streams, job.seconds)[job.share :: job.procs]

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

    def levels(self) -> Callable[[], service_bench.Levels]:
        if self.fixed:
            fixed = self.fixed
            return lambda: service_bench.level_sequence(fixed, 1, 0, refine=0)
        first, step, most, refine = self.first, self.step, self.most, self.refine
        return lambda: service_bench.level_sequence(first, step, most, refine)


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


def holds(level: dict[str, Any]) -> bool:
    """p95 final latency within 1 s, finals seen, no stream failed, not skipped."""
    p95 = level["final"]["p95"]
    return (
        not level.get("skipped")
        and not level["failed_streams"]
        and not math.isnan(p95)
        and p95 <= FINAL_BUDGET_S
    )


def held(levels: dict[str, dict[str, Any]]) -> int:
    best = 0
    for n, level in sorted(levels.items(), key=lambda kv: int(kv[0])):
        if level.get("skipped"):
            continue
        if not holds(level):
            break
        best = int(n)
    return best


def capacity_level(
    server: service_bench.ServerProcess,
    bundle_dir: Path,
    bundle: Bundle,
    n: int,
    *,
    plan: Plan,
    hop_s: float,
) -> dict[str, Any]:
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
    cpu_before, _ = frontend_sweep.tree_cpu(server.pid)
    started = time.perf_counter()
    with GpuSampler() as sampler:
        parts = play_level(jobs)
    wall = time.perf_counter() - started
    cpu_after, _ = frontend_sweep.tree_cpu(server.pid)
    crashes = [p["crash"] for p in parts if "crash" in p]
    errors = [e for p in parts for e in p.get("errors", [])] + crashes
    audio_s = n * plan.seconds
    return {
        "streams": n,
        "partial": percentiles([x for p in parts for x in p.get("partial", [])]),
        "final": percentiles([x for p in parts for x in p.get("final", [])]),
        "late": percentiles([x for p in parts for x in p.get("late", [])]),
        "failed_streams": len(errors) + (n if crashes else 0),
        "errors": errors[: service_bench.MAX_ERRORS_KEPT],
        "wall_s": wall,
        "server_cores": (cpu_after - cpu_before) / wall,
        "server_cpu_ms_per_audio_s": (cpu_after - cpu_before) / audio_s * 1000,
        **sampler.figures(),
    }


def sweep(
    paths: dict[str, Callable[[int], dict[str, Any]]], plan: Plan, deadline: float
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each setup's levels, one of each in turn, until the time budget runs out."""
    sequences = {name: plan.levels()() for name in paths}
    pending = {name: next(seq) for name, seq in sequences.items()}
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in paths}
    while pending:
        for name in list(pending):
            n = pending[name]
            if time.monotonic() + plan.seconds + LEVEL_OVERHEAD_S > deadline:
                log.warning("%s, %d streams: skipped, the time budget is spent", name, n)
                results[name][str(n)] = {"streams": n, "skipped": "time budget"}
                del pending[name]
                continue
            level = results[name].get(str(n)) or paths[name](n)
            results[name][str(n)] = level
            log.info(
                "%s, %d streams: final p95 %.3f s, partial p95 %.3f s, client late p95 %.3f s, "
                "server %.1f cores, GPU %.0f%%, %d failed",
                name,
                n,
                level["final"]["p95"],
                level["partial"]["p95"],
                level["late"]["p95"],
                level["server_cores"],
                level.get("gpu_util_mean", math.nan),
                level["failed_streams"],
            )
            try:
                pending[name] = sequences[name].send(holds(level))
            except StopIteration:
                del pending[name]
    return results


@contextmanager
def servers(
    folder: Path, device: Device, plan: Plan, work: Path
) -> Iterator[dict[str, service_bench.ServerProcess]]:
    with ExitStack() as stack:
        running = {}
        for workers in plan.workers:
            args = server_args(folder, device, workers, plan)
            label = f"{device.precision} on {device.name}, {workers} worker(s)"
            log_path = work / f"server-w{workers}.log"
            running[label] = stack.enter_context(service_bench.ServerProcess(args, log_path))
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

        def path(server: service_bench.ServerProcess) -> Callable[[int], dict[str, Any]]:
            return lambda n: capacity_level(server, bundle_dir, bundle, n, plan=plan, hop_s=hop_s)

        try:
            figures["levels"] = sweep({k: path(s) for k, s in running.items()}, plan, deadline)
        finally:
            figures["server_log_tails"] = {k: s.log_tail() for k, s in running.items()}
    figures["held"] = {label: held(levels) for label, levels in figures["levels"].items()}
    figures["best"] = max(figures["held"].values(), default=0)
    figures["wall_s"] = time.monotonic() - started
    return figures


# --- tables --------------------------------------------------------------------------------------


def summary_lines(figures: dict[str, Any]) -> list[str]:
    device = figures["device"]
    gpus = ", ".join(device["gpus"]) or "none (no nvidia-smi)"
    lines = [f"- GPU: {gpus}; {device['note']}; {figures['cores']} CPU cores"]
    for label, n in figures["held"].items():
        lines.append(f"- {label}: holds {n} streams (p95 final latency <= {FINAL_BUDGET_S:g} s)")
    goal = "met" if figures["best"] >= STREAMS_GOAL else "NOT met"
    if device["name"] != "cuda":
        goal = "not a GPU run"
    lines.append(
        f"- best: {figures['best']} streams (goal >= {STREAMS_GOAL} on one H100/H200: {goal})"
    )
    lines += frontend_tables.summary_lines(figures["frontend"])
    for row in figures["frontend"]["setups"]:
        if row["frame_ms"] == 20 and figures["best"]:
            cores_needed = figures["best"] * row["cpu_ms_per_audio_s"] / 1000
            lines.append(
                f"- frontend cores for {figures['best']} streams at the instant-model cost: "
                f"{cores_needed:.1f}"
            )
    lines.append(f"- wall time {figures['wall_s']:.0f} s")
    return lines


def levels_table(figures: dict[str, Any]) -> str:
    lines = [
        "| setup | streams | final p50 s | final p95 s | partial p95 s | client late p95 s "
        "| server cores | server CPU ms / audio s | GPU util mean / max | GPU MiB | holds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, levels in figures["levels"].items():
        for n, f in sorted(levels.items(), key=lambda kv: int(kv[0])):
            if f.get("skipped"):
                lines.append(f"| {label} | {n} | | | | | | | | | skipped ({f['skipped']}) |")
                continue
            fails = f" ({f['failed_streams']} failed)" if f["failed_streams"] else ""
            util = (
                f"{f['gpu_util_mean']:.0f}% / {f['gpu_util_max']:.0f}%"
                if "gpu_util_mean" in f
                else "n/a"
            )
            lines.append(
                f"| {label} | {n} | {f['final']['p50']:.3f} | {f['final']['p95']:.3f} "
                f"| {f['partial']['p95']:.3f} | {f['late']['p95']:.3f} | {f['server_cores']:.1f} "
                f"| {f['server_cpu_ms_per_audio_s']:.2f} | {util} "
                f"| {f.get('gpu_memory_mib', math.nan):.0f} "
                f"| {'yes' if holds(f) else 'no'}{fails} |"
            )
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_capacity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="export the models and copy the audio (here)")
    prep.add_argument("--out", type=Path, required=True, help="the bundle folder")
    prep.add_argument("--model", default="wav2vec2-base-960h", help="architecture (random)")
    prep.add_argument("--smoke", action="store_true", help="a tiny model instead")
    prep.add_argument("--shared", type=Path, default=service_bench.DEFAULT_SHARED)
    prep.add_argument("--work", type=Path, default=Path("/tmp/gpu_capacity"))
    run = commands.add_parser("run", help="measure (on the GPU host)")
    run.add_argument("--bundle", type=Path, required=True)
    run.add_argument("--out", type=Path, default=service_bench.DEFAULT_OUT)
    run.add_argument("--work", type=Path, default=Path("/tmp/gpu_capacity"))
    run.add_argument("--smoke", action="store_true", help="one tiny level of each figure")
    run.add_argument("--device", choices=["cuda", "cpu"], help="default: CUDA when available")
    run.add_argument("--workers", type=int, nargs="+")
    run.add_argument("--levels", type=int, nargs="+", help="exactly these levels (no sweep)")
    run.add_argument("--seconds", type=float)
    run.add_argument("--frame-ms", type=int)
    run.add_argument("--client-procs", type=int)
    run.add_argument("--max-batch", type=int)
    run.add_argument("--max-wait-ms", type=float)
    run.add_argument("--budget-s", type=float)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("bench.gpu_capacity", "bench.frontend_bench", "bench.service_bench"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger("streamasr.server.stream").setLevel(logging.ERROR)
    if args.command == "prepare":
        bundle = prepare(args.shared, args.work, args.out, args.model, args.smoke)
        print(f"bundle {args.out}: {bundle}")
        return 0
    mode = "smoke" if args.smoke else "gpu"
    plan = PLANS[mode]
    if not args.smoke:
        plan = replace(plan, client_procs=max(2, cores() // 4))
    overrides = {
        "workers": tuple(args.workers) if args.workers else None,
        "fixed": tuple(sorted(args.levels)) if args.levels else None,
        "seconds": args.seconds,
        "frame_ms": args.frame_ms,
        "client_procs": args.client_procs,
        "max_batch": args.max_batch,
        "max_wait_ms": args.max_wait_ms,
        "budget_s": args.budget_s,
    }
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    figures = measure(args.bundle, plan, FRONTEND_PLANS[mode], args.work, args.device)
    print(f"\n### Streams per GPU ({figures['bundle']['model']}, random weights)\n")
    print("\n".join(summary_lines(figures)))
    print()
    print(levels_table(figures))
    print()
    print(frontend_tables.table(figures["frontend"]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("gpu_capacity-smoke.json" if args.smoke else "gpu_capacity.json")
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nraw figures: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
