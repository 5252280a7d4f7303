"""Concurrent real-time streams through the websocket server, next to the engine alone.

    python -m bench.service_bench [--quick] [--model wav2vec2-base-960h] [--seconds S]
                                  [--shared ../shared] [--work DIR] [--out bench/out]

The server (``python -m streamasr.server.cli``, protocol v1 at ``/v1/stream``) runs in its own
process on a random-weight model exported int8 (``bench.stream_bench.export_random``); N asyncio
clients in this process each send a stretch of the human dev speech as 16 kHz s16le in 20 ms
frames paced in real time, from start phases spread over one hop. For increasing N, up to
saturation, it records:

* **partial latency**: for every ``partial`` message, its arrival at the client minus the moment
  the last sample of the audio its window needed (the message's audio extent) was due to be
  sent; the client sends each frame when its last sample is due, and records how late it was;
* **final latency**: for every ``final`` message, its arrival minus the moment the end of its
  segment (``end``) was due (segments closed at the end of the stream: from the last sample);
* the server's CPU utilisation (``/proc/<pid>/stat``, user + system, over the level's wall time,
  as a share of all cores) and its resident memory (``VmRSS`` after the level, ``VmHWM`` peak).

The same levels run through the engine alone in this process (``bench.stream_bench.load_level``:
same model, same scheduler settings, same audio and start phases, same latency definitions in
``bench.stream_sim``), interleaved level by level with the server's so that both see the same
host, between two measurements of the raw onnxruntime ceiling (``bench.stream_bench.raw_ceiling``).
A level holds when the p95 partial latency is within 1.5 s and no stream failed; issue 4 asks for
at most 10 % fewer streams held through the server than by the engine alone, and at most 50 ms
more latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Self

import numpy as np
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect

from streamasr.server.config import load_config
from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.runtime import CPU
from streamasr.server.stream import StreamOptions

from . import stream_bench
from .proc import Usage, cores, cpu_share, own_cpu_s, read_usage, thread_cpu_s
from .stream_sim import FRAME, RATE, percentiles, start_offsets

log = logging.getLogger("bench.service_bench")

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
LATENCY_BUDGET_S = stream_bench.LATENCY_BUDGET_S
STREAMS_GOAL = 0.90
"""Issue 4: the server holds at least this share of the streams the engine alone holds..."""
ADDED_LATENCY_GOAL_S = 0.050
"""... and adds at most this much partial latency."""
SERVER_MODULE = "streamasr.server.cli"
LISTENING = re.compile(r"listening on (ws://\S+)")
START_TIMEOUT_S = 120.0
MAX_ERRORS_KEPT = 5
OPEN_CONCURRENCY = 16
"""Handshakes the clients run at once (as ``bench.frontend_bench``)."""


# --- the server process --------------------------------------------------------------------------


class LoggedProcess:
    """A command in a subprocess with its output in ``log_path``; a context manager that starts
    it, waits for :meth:`_wait_ready`, and stops it with SIGTERM (SIGKILL after ``stop_s``)."""

    name = "the process"
    stop_s = 20.0

    def __init__(self, command: Sequence[str], log_path: Path) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as sink:
            self._process = subprocess.Popen(
                self.command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s %d ignored SIGTERM for %g s: killing it", self.name, process.pid, self.stop_s
            )
            process.kill()
            process.wait()

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}"
            )


class ServerProcess(LoggedProcess):
    """``python -m streamasr.server.cli`` on a free port; ready once it logged
    ``listening on ws://HOST:PORT`` and ``/healthz`` answers 200."""

    name = "the server"

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        super().__init__([sys.executable, "-m", SERVER_MODULE, *args], log_path)
        self.url = ""

    def _wait_ready(self) -> None:
        self.url = self._wait_listening()
        self._wait_healthy()
        log.info("server %d ready at %s", self.pid, self.url)

    def usage(self) -> Usage | None:
        return read_usage(self.pid)

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                return match.group(1).rstrip("/.,")
            self._check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"the server did not log 'listening on' in {START_TIMEOUT_S:.0f} s")

    def _wait_healthy(self) -> None:
        health = self.url.replace("ws://", "http://", 1) + "/healthz"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # 503 while loading, or not accepting yet
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(f"{health} did not answer 200 in {START_TIMEOUT_S:.0f} s")


# --- one client ---------------------------------------------------------------------------------


@dataclass
class ClientRun:
    """What one client sent and received (times in seconds from its stream's start)."""

    samples: int
    partials: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, audio extent in seconds: the message's ``audio_end``) of every partial."""
    finals: list[tuple[float, float]] = field(default_factory=list)
    """(arrival, segment end) of every final."""
    end_arrival: float | None = None
    late_s: list[float] = field(default_factory=list)
    """How late each frame was sent after its last sample was due."""
    close_code: int | None = None
    error: str | None = None

    def partial_latencies(self) -> list[float]:
        return [t - end for t, end in self.partials]

    def final_latencies(self) -> list[float]:
        return [t - end for t, end in self.finals]


def audio_extent(message: dict[str, Any]) -> float:
    """Seconds of stream audio a ``partial`` message's window needed (its ``audio_end``, the
    engine's ``Partial.audio_end``)."""
    value = message.get("audio_end")
    if not isinstance(value, int | float):
        raise ValueError(f"partial without a numeric audio_end: {message}")
    return float(value)


def paced(pcm: bytes, step: int) -> list[tuple[bytes, float]]:
    """``pcm`` (16-bit samples at ``RATE``) in chunks of ``step`` bytes, each with the time its
    last sample is due, in seconds from the start."""
    starts = range(0, len(pcm), step)
    return [(pcm[i : i + step], min(i + step, len(pcm)) / 2 / RATE) for i in starts]


class Client:
    """One real-time client of protocol v1: opens, streams 20 ms s16le frames, stops."""

    def __init__(self, url: str, samples: NDArray[np.float32]) -> None:
        self.url = url.rstrip("/") + "/v1/stream"
        pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
        self.pcm = pcm.tobytes()
        self.run = ClientRun(samples.size)
        self._connection: ClientConnection | None = None

    @property
    def _ws(self) -> ClientConnection:
        if self._connection is None:
            raise RuntimeError("the client is not connected")
        return self._connection

    async def open(self) -> None:
        """Connect, send ``start`` and wait for ``ready`` (closing again on failure)."""
        self._connection = await connect(
            self.url, open_timeout=60, close_timeout=30, max_size=2**22
        )
        try:
            start = {"type": "start", "sample_rate": RATE, "encoding": "s16le"}
            await self._ws.send(json.dumps(start))
            reply = json.loads(await asyncio.wait_for(self._ws.recv(), 60))
            if reply.get("type") != "ready":
                raise RuntimeError(f"expected 'ready', got {reply}")
        except BaseException:
            await self._ws.close()
            raise

    def frames(self) -> list[tuple[bytes, float]]:
        """What :meth:`play` sends: (payload, when its last sample is due in seconds from the
        start), one ``FRAME`` of samples each."""
        return paced(self.pcm, 2 * FRAME)

    async def send_frame(self, frame: bytes) -> None:
        """Send one of :meth:`frames` (a websocket binary message)."""
        await self._ws.send(frame)

    async def play(self, start_at: float) -> ClientRun:
        """Send every frame when its last sample is due (``start_at`` on the loop's clock),
        then ``stop``; receive until the server closes."""
        loop = asyncio.get_running_loop()
        receiver = asyncio.create_task(self._receive(start_at))
        try:
            for frame, end_s in self.frames():
                due = start_at + end_s
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the speaker's pace
                self.run.late_s.append(max(0.0, loop.time() - due))
                await self.send_frame(frame)
            await self._ws.send(json.dumps({"type": "stop"}))
            await receiver
        except Exception as exc:  # a failed stream is a figure, not a crash of the benchmark
            self.run.error = f"{type(exc).__name__}: {exc}"
            receiver.cancel()
        finally:
            await self._ws.close()
            self.run.close_code = self._ws.close_code
        return self.run

    async def _receive(self, start_at: float) -> None:
        loop = asyncio.get_running_loop()
        async for message in self._ws:
            arrival = loop.time() - start_at
            if not isinstance(message, str):
                continue
            event = json.loads(message)
            kind = event.get("type")
            if kind == "partial":
                self.run.partials.append((arrival, audio_extent(event)))
            elif kind == "final":
                self.run.finals.append((arrival, float(event.get("end", math.nan))))
            elif kind == "end":
                self.run.end_arrival = arrival
            elif kind == "error":
                self.run.error = f"server error: {event}"


async def play_clients(
    url: str,
    pieces: list[NDArray[np.float32]],
    hop_s: float,
    *,
    make_client: Callable[[str, NDArray[np.float32]], Client] | None = None,
    connected: Callable[[], None] | None = None,
    lead_s: float = 0.2,
) -> list[ClientRun]:
    """All clients connected first (a few handshakes at a time: the server aborts the oldest
    handshake past ``--max-handshakes``, 32 by default), then ``connected`` is called, then they
    start together ``lead_s`` later at staggered phases within a hop. ``make_client``: another
    :class:`Client` kind (the frontend bench's paced frames)."""
    clients = [(make_client or Client)(url, p) for p in pieces]
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)

    async def open_one(client: Client) -> None:
        async with gate:
            await client.open()

    opened = await asyncio.gather(*(open_one(c) for c in clients), return_exceptions=True)
    if connected is not None:
        connected()
    start = asyncio.get_running_loop().time() + lead_s
    plays = []
    offsets = start_offsets(len(pieces), hop_s)
    for client, result, offset in zip(clients, opened, offsets, strict=True):
        if isinstance(result, BaseException):
            client.run.error = f"open: {type(result).__name__}: {result}"
        else:
            plays.append(client.play(start + float(offset)))
    await asyncio.gather(*plays)
    return [c.run for c in clients]


# --- one level ----------------------------------------------------------------------------------


def service_level(
    server: ServerProcess, pieces: list[NDArray[np.float32]], hop_s: float
) -> dict[str, Any]:
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
    level: dict[str, Any] = {
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
) -> dict[str, Any]:
    """``n`` concurrent real-time streams through the engine alone, with this process's CPU."""
    own_before, started = own_cpu_s(), time.perf_counter()
    level = stream_bench.load_level(e, audio, n, seconds, options)
    wall = time.perf_counter() - started
    return {
        **level,
        "streams": n,
        "failed_streams": 0,
        "process_cpu": (own_cpu_s() - own_before) / wall / cores(),
    }


def holds(level: dict[str, Any]) -> bool:
    """p95 partial latency within the budget and no stream failed."""
    p95 = level["partial"]["p95"]
    return not level.get("failed_streams") and not math.isnan(p95) and p95 <= LATENCY_BUDGET_S


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


def _latency_line(level: dict[str, Any]) -> str:
    return f"partial p50 {level['partial']['p50']:.3f} p95 {level['partial']['p95']:.3f} s"


def interleaved(
    paths: dict[str, Callable[[int], dict[str, Any]]],
    plan: Callable[[], Levels],
    *,
    holds: Callable[[dict[str, Any]], bool] = holds,
    describe: Callable[[dict[str, Any]], str] = _latency_line,
) -> dict[str, dict[str, Any]]:
    """Each path's own level sequence, run one level of each path in turn; ``holds`` decides
    whether a level held (the next one goes up or bisects), ``describe`` its log line."""
    sequences = {name: plan() for name in paths}
    pending = {name: next(seq) for name, seq in sequences.items()}
    results: dict[str, dict[str, Any]] = {name: {} for name in paths}
    while pending:
        for name in list(pending):
            n = pending[name]
            level = results[name].get(str(n)) or paths[name](n)
            results[name][str(n)] = level
            log.info("%s, %d streams: %s", name, n, describe(level))
            try:
                pending[name] = sequences[name].send(holds(level))
            except StopIteration:
                del pending[name]
    return {
        name: dict(sorted(levels.items(), key=lambda kv: int(kv[0])))
        for name, levels in results.items()
    }


def held(levels: dict[str, Any], holds: Callable[[dict[str, Any]], bool] = holds) -> int:
    """Most streams of a level that held with every level below it that was run."""
    best = 0
    for n, level in sorted(levels.items(), key=lambda kv: int(kv[0])):
        if not holds(level):
            break
        best = int(n)
    return best


@dataclass(frozen=True)
class CapacityPlan:
    """How far and how finely to sweep."""

    seconds: float
    """Audio per client stream."""
    first: tuple[float, ...] = (0.0, 0.5, 0.8)
    """First levels as shares of the raw ceiling (0: one stream)."""
    step: float = 0.1
    """Then this share of the ceiling more each time (at least one stream)."""
    refine: int = 8
    most: int = 60
    """Stop there (the server's default ``max_connections`` is 64)."""
    fixed: tuple[int, ...] = ()
    """Exactly these levels instead (no sweep)."""
    ceiling_s: float = 3.0
    """Duration of each raw ceiling measurement."""

    def levels(self, ceiling: float) -> Callable[[], Levels]:
        if self.fixed:
            fixed = self.fixed
            return lambda: level_sequence(fixed, 1, 0, refine=0)
        if math.isnan(ceiling):  # no CPU ceiling (GPU): start from a guess
            ceiling = 20.0
        first = sorted({max(1, round(share * ceiling)) for share in self.first})
        step = max(1, round(self.step * ceiling))
        return lambda: level_sequence(first, step, self.most, self.refine)


def server_args(folder: Path, precision: str) -> list[str]:
    """The server's command line (after ``python -m streamasr.server.cli``)."""
    return ["--model", str(folder), "--port", "0", "--precision", precision]


def engine_settings(args: Sequence[str]) -> tuple[EngineConfig, StreamOptions]:
    """The engine configuration and stream options the server builds from ``args`` (its own
    ``load_config``, environment included), so that the engine-alone rows run exactly the
    server's settings."""
    config = load_config(list(args))
    return config.engine_config(), config.stream_options


def measure_capacity(
    folder: Path,
    audio: NDArray[np.float32],
    plan: CapacityPlan,
    work: Path,
    *,
    precision: str = "int8",
    server: bool = True,
) -> dict[str, Any]:
    """Raw ceiling, then the engine and the server level by level, then the ceiling again."""
    args = server_args(folder, precision)
    config, options = engine_settings(args)
    unavailable = None if server else "server run not asked for"
    with Engine(folder, config) as e:
        runtime = e.config.runtime
        layout = stream_bench.Layout(
            e.scheduler.config.workers, runtime.intra_op_threads, runtime.split_int8_batches
        )
        cpu = e.runner.provider == CPU
        figures: dict[str, Any] = {
            "seconds": plan.seconds,
            "budget_s": LATENCY_BUDGET_S,
            "precision": e.runner.precision,
            "provider": e.runner.provider,
            "layout": f"{layout.label}, max_batch {e.scheduler.config.max_batch}, "
            f"max_wait {e.scheduler.config.max_wait_ms:g} ms",
            "options": asdict(options),
        }
        window = stream_bench.steady_window(options)
        ceiling = math.nan
        if cpu:
            before = stream_bench.raw_ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
            ceiling = max(v["streams"] for v in before.values())
            batched = replace(layout, split=False)
            by_batch = stream_bench.raw_ceiling(
                folder, window, options.hop_s, batched, plan.ceiling_s
            )
            figures["ceiling_batched"] = max(v["streams"] for v in by_batch.values())
            figures["ceiling_by_batch"] = by_batch
        figures["ceiling_before"] = ceiling
        paths: dict[str, Callable[[int], dict[str, Any]]] = {
            "engine": lambda n: engine_level(e, audio, n, plan.seconds, options),
        }
        with running_server(args, work, unavailable) as process:
            if process is not None:
                paths["server"] = lambda n: service_level(
                    process, stream_bench.client_pieces(audio, n, plan.seconds), options.hop_s
                )
                figures["server_command"] = " ".join(process.command[1:])
            try:
                figures["levels"] = interleaved(paths, plan.levels(ceiling))
            finally:
                if process is not None:
                    figures["server_log_tail"] = process.log_tail()
            if process is not None:
                usage = process.usage()
                figures["server_peak_rss_mib"] = usage.peak_rss_mib if usage else math.nan
        figures["ceiling_after"] = math.nan
        if cpu:
            after = stream_bench.raw_ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
            figures["ceiling_after"] = max(v["streams"] for v in after.values())
    figures["server_unavailable"] = unavailable
    figures["held"] = {name: held(levels) for name, levels in figures["levels"].items()}
    figures["verdict"] = verdict(figures)
    return figures


@contextmanager
def running_server(
    args: Sequence[str], work: Path, unavailable: str | None
) -> Iterator[ServerProcess | None]:
    if unavailable is not None:
        log.warning("capacity through the server skipped: %s", unavailable)
        yield None
        return
    with ServerProcess(args, work / "server.log") as process:
        yield process


def verdict(figures: dict[str, Any]) -> dict[str, Any]:
    """Issue 4's comparison of the server with the engine alone."""
    levels = figures["levels"]
    if "server" not in levels:
        return {}
    engine_held, server_held = figures["held"]["engine"], figures["held"]["server"]
    common = [
        n
        for n in levels["server"]
        if n in levels["engine"] and holds(levels["server"][n]) and holds(levels["engine"][n])
    ]
    added = {
        n: {
            q: levels["server"][n]["partial"][q] - levels["engine"][n]["partial"][q]
            for q in ("p50", "p95")
        }
        for n in common
    }
    worst_p50 = max((a["p50"] for a in added.values()), default=math.nan)
    median_p50 = float(np.median([a["p50"] for a in added.values()])) if added else math.nan
    return {
        "streams_ratio": server_held / engine_held if engine_held else math.nan,
        "streams_met": engine_held > 0 and server_held >= STREAMS_GOAL * engine_held,
        "added_latency": added,
        "worst_added_p50": worst_p50,
        "median_added_p50": median_p50,
        "latency_met": bool(added) and worst_p50 <= ADDED_LATENCY_GOAL_S,
    }


# --- tables -------------------------------------------------------------------------------------


def capacity_table(figures: dict[str, Any]) -> str:
    """One row per path and level."""
    lines = [
        "| path | streams | partial p50 s | partial p95 s | final p50 s | final p95 s "
        "| CPU (all cores) | server main thread (one core) | RSS MiB (peak) | holds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, levels in figures["levels"].items():
        for n, f in levels.items():
            cpu = f.get("cpu", f.get("process_cpu", math.nan))
            rss = (
                f"{f['rss_mib']:.0f} ({f['peak_rss_mib']:.0f})" if "rss_mib" in f else "in-process"
            )
            fails = f" ({f['failed_streams']} failed)" if f.get("failed_streams") else ""
            lines.append(
                f"| {name} | {n} | {f['partial']['p50']:.3f} | {f['partial']['p95']:.3f} "
                f"| {f['final']['p50']:.3f} | {f['final']['p95']:.3f} | {share(cpu)} "
                f"| {share(f.get('main_thread_cpu', math.nan))} | {rss} "
                f"| {'yes' if holds(f) else 'no'}{fails} |"
            )
    return "\n".join(lines)


def share(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0%}"


def summary_lines(figures: dict[str, Any]) -> list[str]:
    """Streams held, the ceiling and the verdict, as Markdown bullet lines."""
    held_ = figures["held"]
    lines = [
        f"- raw onnxruntime ceiling ({figures['layout']}): {figures['ceiling_before']:.2f} "
        f"streams before, {figures['ceiling_after']:.2f} after; batched (best of batch "
        f"1/2/4/8, not how int8 runs): {figures.get('ceiling_batched', math.nan):.2f}",
        f"- engine alone holds {held_['engine']} streams (p95 partial latency <= "
        f"{figures['budget_s']} s)",
    ]
    if figures.get("server_unavailable"):
        lines.append(f"- through the server: {figures['server_unavailable']}")
        return lines
    v = figures["verdict"]
    lines.append(
        f"- through the server: {held_['server']} streams ({v['streams_ratio']:.0%} of the "
        f"engine's; goal >= {STREAMS_GOAL:.0%}: {'met' if v['streams_met'] else 'NOT met'}); "
        f"server peak RSS {figures.get('server_peak_rss_mib', math.nan):.0f} MiB"
    )
    if v["added_latency"]:
        worst = v["worst_added_p50"]
        added = ", ".join(
            f"{n}: {a['p50'] * 1000:+.0f} / {a['p95'] * 1000:+.0f} ms"
            for n, a in v["added_latency"].items()
        )
        lines.append(
            f"- partial latency added by the server, p50 / p95, at levels both held: {added}; "
            f"worst p50 {worst * 1000:+.0f} ms (goal <= {ADDED_LATENCY_GOAL_S * 1000:.0f} ms: "
            f"{'met' if v['latency_met'] else 'NOT met'}), median over those levels "
            f"{v['median_added_p50'] * 1000:+.0f} ms"
        )
    return lines


# --- command line -------------------------------------------------------------------------------


def dev_audio(shared: Path) -> NDArray[np.float32]:
    """The human dev utterances end to end (what the clients send, tiled when needed)."""
    speech = stream_bench.load_set(shared / "speech" / "dev" / "human")
    return np.concatenate([s for s, _ in speech])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s streams, coarse levels")
    parser.add_argument("--model", default="wav2vec2-base-960h", help="architecture (random)")
    parser.add_argument("--seconds", type=float, help="audio per client (default 20, quick 10)")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stream_bench"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("streamasr.server.stream").setLevel(logging.ERROR)
    seconds = args.seconds or (10.0 if args.quick else 20.0)
    plan = (
        CapacityPlan(seconds, first=(0.0, 0.6), step=0.2, refine=3)
        if args.quick
        else CapacityPlan(seconds)
    )
    folder = stream_bench.export_random(args.shared, args.work, args.model)
    figures = measure_capacity(folder, dev_audio(args.shared), plan, args.work)
    print(f"\n### Capacity through the server ({args.model}, random weights, int8)\n")
    print(capacity_table(figures))
    print("\n" + "\n".join(summary_lines(figures)))
    args.out.mkdir(parents=True, exist_ok=True)
    name = "service_bench-quick.json" if args.quick else "service_bench.json"
    (args.out / name).write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nraw figures: {args.out / name}")


if __name__ == "__main__":
    main()
