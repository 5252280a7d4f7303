"""Frontend cost per stream with an instant model: everything the server does but inference.

    python -m bench.frontend_bench [--quick] [--before LINK_TREE] [--workers 1 2]
                                   [--frames-ms 20 100] [--seconds S] [--first N] [--most N]
                                   [--work DIR] [--out DIR]
    python -m bench.frontend_bench serve ASR-SERVER-ARGS...   (the server side, see below)

The server is ``asr-server`` in its own process, with one change made from outside: before the
CLI runs, ``load_runner`` is wrapped where the engine calls it, so that the engine's runner (the
``Runner`` seam) is an :class:`InstantRunner`: the first window of each batch shape goes through
the real model (the fixture checkpoint exported fp32), every later one returns those logits at
once. So only the frontend works: websocket I/O, JSON, resampling, windowing, scheduling and CTC
decoding of real-looking logits. With ``--workers N`` every worker runs the same command line,
so the wrapper is installed in each.

The clients run in this process (asyncio, one websocket connection each, the service
benchmark's client) and send the human dev speech as 16 kHz s16le in frames of 20 ms (and
100 ms) paced in real time, from start phases spread over one hop. Binary frames are written to
the socket pre-built with a zero mask key (legal framing; the server still unmasks and parses
them), so that on a 2-core host the clients cost little beside the server they measure; their
own CPU and how late they sent are reported.

For every setup (code tree x frame size x workers) it reports, from one run with the setups'
levels interleaved:

* **CPU per audio second per stream**: the server's CPU seconds (``/proc``, user + system, the
  whole process tree: the parent and its workers) over the seconds of audio the level streamed,
  at the first level; its event loops' share (the main threads); and the real-time streams
  that one core of that cost would carry (1 / cost);
* **streams held**: the most concurrent streams at which the p95 partial latency stays within
  0.3 s of the window's completion (arrival of the ``partial`` minus the moment the last sample
  its window needed, its ``audio_end``, was due) with no stream failing.

``--before`` names a link tree (``streamasr/{server,export,client}`` links into another
checkout, as ``.ci/typecheck`` builds) whose server runs the same levels beside this checkout's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.manifest import Manifest
from streamasr.server.runtime import Runner

from . import service_bench, stream_bench
from .proc import cores, own_cpu_s, read_usage, thread_cpu_s, tree_pids
from .stream_sim import RATE, percentiles

log = logging.getLogger("bench.frontend_bench")

DEFAULT_SHARED = service_bench.DEFAULT_SHARED
DEFAULT_OUT = service_bench.DEFAULT_OUT
DEFAULT_WORK = Path("/tmp/frontend_bench")
BUDGET_S = 0.3
"""p95 partial latency after the window's completion that a level must hold."""
GOAL_STREAMS_PER_CORE = 300
"""Issue 10: real-time streams per CPU core of frontend work with 20 ms frames."""
ISSUE_FIGURES_MS = {20: 6.7, 100: 3.1}
"""Event-loop CPU ms per audio second measured from outside when the issue was filed."""
OPEN_CONCURRENCY = 16
"""Handshakes the clients run at once (the server bounds handshakes in flight)."""


# --- the server side -----------------------------------------------------------------------------


class InstantRunner:
    """A ``Runner`` whose logits cost nothing: the first window goes through the real model,
    and its logits, repeated to the length each later window needs, answer every batch."""

    def __init__(self, real: Runner, manifest: Manifest) -> None:
        if manifest.input.kind != "waveform":
            raise ValueError(f"instant runner: waveform models only, not {manifest.input.kind}")
        self._real = real
        self._spec = manifest.input
        self.provider = real.provider
        self.precision = f"instant {real.precision}"
        self.batched = real.batched
        self._pattern: NDArray[np.float32] | None = None
        self._cache: dict[tuple[int, ...], NDArray[np.float32]] = {}

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        logits = self._cache.get(batch.shape)
        if logits is None:
            if self._pattern is None:
                self._pattern = self._real.run(batch[:1])[0]
            frames = self._spec.num_frames(batch.shape[1])
            one = np.resize(self._pattern, (frames, self._pattern.shape[1]))
            logits = np.ascontiguousarray(np.broadcast_to(one, (batch.shape[0], *one.shape)))
            logits.flags.writeable = False
            self._cache[batch.shape] = logits
        return logits


def install_instant_runner() -> None:
    """Make every Engine of this process load an instant runner around the real one: wrap
    ``load_runner`` where the engine looks it up (``server.inference`` since the inference
    backends, ``server.engine`` before them)."""
    for name in ("streamasr.server.inference", "streamasr.server.engine"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        real_load = getattr(module, "load_runner", None)
        if real_load is not None:
            break
    else:
        raise RuntimeError("no load_runner to wrap in streamasr.server.inference or .engine")

    def load(folder: Path, manifest: Manifest, config: Any) -> Runner:
        return InstantRunner(real_load(folder, manifest, config), manifest)

    setattr(module, "load_runner", load)  # noqa: B010  # the one seam the benchmark changes


def serve_main(argv: Sequence[str]) -> int:
    """``asr-server ARGV`` with the instant runner."""
    from streamasr.server import cli

    install_instant_runner()
    sys.argv[1:] = argv  # so that ``--workers`` restarts this command line, runner included
    return cli.main()


@dataclass(frozen=True)
class Setup:
    """One server configuration the levels run against."""

    tree: str
    """``after`` (this checkout) or ``before`` (the ``--before`` link tree)."""
    frame_ms: int
    workers: int
    links: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.tree}, {self.frame_ms} ms frames, {self.workers} worker(s)"

    def command(self, folder: Path) -> list[str]:
        args = ["serve", "--model", str(folder), "--port", "0", "--device", "cpu"]
        args += ["--precision", "fp32", "--max-connections", "4000", "--max-handshakes", "4000"]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if self.tree == "after":
            # The energy gate, as before this round: Silero VAD (the default when an export
            # carries it) is model-side work of its own, 2.4 ms CPU per audio s (bench.noise).
            args += ["--gate", "energy"]
        python = [sys.executable, "-m", "bench.frontend_bench", *args]
        if self.links is None:
            return python
        path = os.pathsep.join([str(self.links), os.environ.get("PYTHONPATH", "")])
        return ["env", f"PYTHONPATH={path}", *python]


def start_server(setup: Setup, folder: Path, work: Path) -> service_bench.ServerProcess:
    slug = f"{setup.tree}-{setup.frame_ms}ms-w{setup.workers}"
    server = service_bench.ServerProcess([], work / f"server-{slug}.log")
    server.command = setup.command(folder)
    return server.__enter__()


# --- the clients ---------------------------------------------------------------------------------


def binary_frame(payload: bytes) -> bytes:
    """A client binary frame (FIN, opcode 2) masked with the key 0, which leaves the payload
    as it is (RFC 6455 section 5.3)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x82, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x82, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x82, 0x80 | 127)) + size.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


class PacedClient(service_bench.Client):
    """The service benchmark's client with a frame size of its own and pre-built frames."""

    def __init__(self, url: str, samples: NDArray[np.float32], frame_ms: int) -> None:
        super().__init__(url, samples)
        step = 2 * RATE * frame_ms // 1000
        self._frames = [(binary_frame(c), end) for c, end in service_bench.paced(self.pcm, step)]

    def frames(self) -> list[tuple[bytes, float]]:
        return self._frames

    async def send_frame(self, frame: bytes) -> None:
        """Write the pre-built frame to the transport: the client's own CPU stays small."""
        self._ws.transport.write(frame)


async def play_all(
    url: str,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    frame_ms: int,
    connected: Callable[[], None],
) -> list[service_bench.ClientRun]:
    """Connect every paced client, call ``connected``, then start them together at staggered
    phases within a hop (``service_bench.play_clients`` with this bench's clients)."""
    return await service_bench.play_clients(
        url,
        pieces,
        hop_s,
        make_client=lambda target, piece: PacedClient(target, piece, frame_ms),
        connected=connected,
        lead_s=0.5,
    )


# --- one level -----------------------------------------------------------------------------------


def tree_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of a process and its descendants, of their main threads)."""
    total = loops = 0.0
    for p in tree_pids(pid):
        usage = read_usage(p)
        total += usage.cpu_s if usage is not None else 0.0
        loops += thread_cpu_s(p).get(p, 0.0)
    return total, loops


def frontend_level(
    server: service_bench.ServerProcess,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    frame_ms: int,
) -> dict[str, Any]:
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
    return {
        "streams": len(pieces),
        "partial": percentiles([x for r in runs for x in r.partial_latencies()]),
        "late": percentiles([x for r in runs for x in r.late_s]),
        "failed_streams": len(errors),
        "errors": errors[: service_bench.MAX_ERRORS_KEPT],
        "wall_s": wall,
        "audio_s": audio_s,
        "cpu_per_audio_s": (cpu_after - cpu_before) / audio_s,
        "loop_cpu_per_audio_s": (loops_after - loops_before) / audio_s,
        "server_cpu": (cpu_after - cpu_before) / wall / cores(),
        "client_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }


def holds(level: dict[str, Any]) -> bool:
    p95 = level["partial"]["p95"]
    return not level["failed_streams"] and not math.isnan(p95) and p95 <= BUDGET_S


# --- the sweep -----------------------------------------------------------------------------------


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


PLANS = {
    "full": FrontendPlan(),
    "quick": FrontendPlan(seconds=6.0, step=80, most=600, refine=2),
    "smoke": FrontendPlan(seconds=2.0, first=2, step=2, most=4, refine=0, workers=(1,)),
}
"""By ``python -m bench report`` mode."""


def setups(plan: FrontendPlan, before: Path | None, after: bool = True) -> list[Setup]:
    """This checkout (unless not ``after``) at every frame size and worker count; the
    ``before`` tree with one worker (it may predate ``--workers``)."""
    out = []
    for frame_ms in plan.frames_ms:
        if before is not None:
            out.append(Setup("before", frame_ms, 1, before))
        if after:
            out += [Setup("after", frame_ms, w) for w in plan.workers]
    return out


def _cost_line(level: dict[str, Any]) -> str:
    return (
        f"partial p95 {level['partial']['p95']:.3f} s, "
        f"{level['cpu_per_audio_s'] * 1000:.2f} ms CPU per audio s, "
        f"client CPU {level['client_cpu'] * 100:.0f}%"
    )


def sweep(
    paths: dict[str, Callable[[int], dict[str, Any]]], plan: FrontendPlan
) -> dict[str, dict[str, Any]]:
    """Each path's level sequence, one level of each path in turn (``service_bench.interleaved``
    with this bench's latency budget)."""
    return service_bench.interleaved(
        paths,
        lambda: service_bench.level_sequence((plan.first,), plan.step, plan.most, plan.refine),
        holds=holds,
        describe=_cost_line,
    )


def held(levels: dict[str, Any]) -> int:
    return service_bench.held(levels, holds)


def measure(
    folder: Path,
    audio: NDArray[np.float32],
    plan: FrontendPlan,
    work: Path,
    before: Path | None = None,
    *,
    after: bool = True,
) -> dict[str, Any]:
    """Every setup's server up at once, their levels interleaved; figures per setup."""
    hop_s = service_bench.engine_settings(["--model", str(folder)])[1].hop_s
    runs = setups(plan, before, after)
    servers: dict[str, service_bench.ServerProcess] = {}
    try:
        for setup in runs:
            servers[setup.label] = start_server(setup, folder, work)

        def path(setup: Setup) -> Callable[[int], dict[str, Any]]:
            server = servers[setup.label]
            return lambda n: frontend_level(
                server, stream_bench.client_pieces(audio, n, plan.seconds), hop_s, setup.frame_ms
            )

        levels = sweep({s.label: path(s) for s in runs}, plan)
    finally:
        for server in servers.values():
            server.stop()
    rows = []
    for setup in runs:
        first = levels[setup.label][str(plan.first)]
        rows.append(
            {
                **asdict(setup),
                "links": str(setup.links) if setup.links else None,
                "label": setup.label,
                "cpu_ms_per_audio_s": first["cpu_per_audio_s"] * 1000,
                "loop_cpu_ms_per_audio_s": first["loop_cpu_per_audio_s"] * 1000,
                "streams_per_core": 1 / max(first["cpu_per_audio_s"], 1e-9),
                "held": held(levels[setup.label]),
                "levels": levels[setup.label],
            }
        )
    return {"plan": asdict(plan), "budget_s": BUDGET_S, "cores": cores(), "setups": rows}


# --- tables --------------------------------------------------------------------------------------


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| setup | server CPU ms per audio s per stream | of it event loops | streams per "
        f"core (1 / cost) | streams held (p95 partial <= {figures['budget_s']:g} s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in figures["setups"]:
        lines.append(
            f"| {row['label']} | {row['cpu_ms_per_audio_s']:.2f} "
            f"| {row['loop_cpu_ms_per_audio_s']:.2f} | {row['streams_per_core']:.0f} "
            f"| {row['held']} |"
        )
    return "\n".join(lines)


def levels_table(figures: dict[str, Any]) -> str:
    lines = [
        "| setup | streams | partial p50 s | partial p95 s | client late p95 s | server CPU "
        "(all cores) | client CPU (all cores) | CPU ms / audio s | holds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in figures["setups"]:
        for n, f in sorted(row["levels"].items(), key=lambda kv: int(kv[0])):
            fails = f" ({f['failed_streams']} failed)" if f["failed_streams"] else ""
            lines.append(
                f"| {row['label']} | {n} | {f['partial']['p50']:.3f} | {f['partial']['p95']:.3f} "
                f"| {f['late']['p95']:.3f} | {f['server_cpu']:.0%} | {f['client_cpu']:.0%} "
                f"| {f['cpu_per_audio_s'] * 1000:.2f} | {'yes' if holds(f) else 'no'}{fails} |"
            )
    return "\n".join(lines)


def summary_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    by_label = {row["label"]: row for row in figures["setups"]}
    for row in figures["setups"]:
        if row["tree"] != "after" or row["workers"] != 1:
            continue
        goal = ""
        if row["frame_ms"] == 20:
            met = row["streams_per_core"] >= GOAL_STREAMS_PER_CORE
            goal = f" (goal >= {GOAL_STREAMS_PER_CORE}: {'met' if met else 'NOT met'})"
        before = by_label.get(Setup("before", row["frame_ms"], 1).label)
        ratio = ""
        if before is not None:
            cost = row["cpu_ms_per_audio_s"] / before["cpu_ms_per_audio_s"]
            ratio = (
                f"; before: {before['cpu_ms_per_audio_s']:.2f} ms, "
                f"{before['streams_per_core']:.0f} per core, held {before['held']}; "
                f"after / before cost {cost:.2f}"
            )
        lines.append(
            f"- {row['frame_ms']} ms frames: {row['cpu_ms_per_audio_s']:.2f} ms server CPU per "
            f"audio second per stream, {row['streams_per_core']:.0f} streams per core{goal}; "
            f"one worker holds {row['held']}{ratio} (issue, event loop only: "
            f"{ISSUE_FIGURES_MS.get(row['frame_ms'], math.nan)} ms)"
        )
    for row in figures["setups"]:
        if row["workers"] > 1:
            one = by_label.get(Setup(row["tree"], row["frame_ms"], 1).label)
            scale = f" ({row['held'] / one['held']:.2f}x one worker)" if one and one["held"] else ""
            lines.append(f"- {row['label']}: holds {row['held']}{scale}")
    return lines


# --- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["serve"]:
        return serve_main(args_in[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 s streams, coarser levels")
    parser.add_argument("--before", type=Path, help="link tree of the code to compare with")
    parser.add_argument("--only-before", action="store_true", help="skip this checkout")
    parser.add_argument("--frames-ms", type=int, nargs="+")
    parser.add_argument("--workers", type=int, nargs="+")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--first", type=int, help="the first level (where the cost is read)")
    parser.add_argument("--most", type=int, help="the largest level (--most FIRST: one level)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(args_in)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    plan = PLANS["quick" if args.quick else "full"]
    overrides = {
        "frames_ms": tuple(args.frames_ms) if args.frames_ms else plan.frames_ms,
        "workers": tuple(args.workers) if args.workers else plan.workers,
        "seconds": args.seconds or plan.seconds,
        "first": args.first or plan.first,
        "most": args.most or plan.most,
    }
    plan = FrontendPlan(**{**asdict(plan), **overrides})
    folder = stream_bench.export_fixture(args.shared, args.work, ("fp32",))
    audio = service_bench.dev_audio(args.shared)
    figures = measure(folder, audio, plan, args.work, args.before, after=not args.only_before)
    print(f"\n### Frontend cost with an instant model ({cores()} cores)\n")
    print(table(figures))
    print("\n" + "\n".join(summary_lines(figures)) + "\n")
    print(levels_table(figures))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "frontend_bench-quick.json" if args.quick else "frontend_bench.json"
    (args.out / name).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nraw figures: {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
