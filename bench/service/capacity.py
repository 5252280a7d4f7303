"""Concurrent real-time streams through the websocket server, next to the engine alone.

    python -m bench service_bench [--quick] [--model wav2vec2-base-960h] [--seconds S]
                                  [--shared ../shared] [--work DIR] [--out bench/out]

The server (``python -m streamasr.server.app.cli``, protocol v1 at ``/v1/stream``) runs in its own
process on a random-weight model exported int8 (``bench.common.fixtures.export_random``); N asyncio
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

The same levels run through the engine alone in this process
(``bench.stream.capacity.load_level``: same model, same scheduler settings, same audio and start
phases, same latency definitions in ``bench.stream.sim``), interleaved level by level with the
server's so that both see the same host, between two measurements of the raw onnxruntime ceiling
(``bench.stream.capacity.raw_ceiling``).
A level holds when the p95 partial latency is within 1.5 s and no stream failed; issue 4 asks for
at most 10 % fewer streams held through the server than by the engine alone, and at most 50 ms
more latency.

The pieces live in their own modules: the server subprocess in ``bench.common.server_process``, the
clients in ``bench.service.clients``, one level and the search over levels in
``bench.common.levels``. This module is the capacity benchmark itself (plan, measurement,
verdict, tables, command line).
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Required, TypedDict

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.inference.runtime import CPU
from streamasr.server.options.stream import StreamOptions
from streamasr.server.service.config import load_config

from ..common import fixtures
from ..common.fixtures import DEFAULT_OUT, DEFAULT_SHARED, write_figures
from ..common.levels import Level, Levels, held, interleaved, level_sequence
from ..common.server_process import ServerProcess
from ..stream import capacity as stream_capacity
from .levels import LATENCY_BUDGET_S, engine_level, holds, service_level

log = logging.getLogger("bench.service_bench")

STREAMS_GOAL = 0.90
"""Issue 4: the server holds at least this share of the streams the engine alone holds..."""
ADDED_LATENCY_GOAL_S = 0.050
"""... and adds at most this much partial latency."""


# --- the capacity benchmark ---------------------------------------------------------------------


class AddedLatency(TypedDict):
    """Partial latency the server added to the engine's at one level (s)."""

    p50: float
    p95: float


class Verdict(TypedDict, total=False):
    """Issue 4's comparison of the server with the engine alone (empty without a server run)."""

    streams_ratio: float
    streams_met: bool
    added_latency: dict[str, AddedLatency]
    """By level, at the levels both paths held."""
    worst_added_p50: float
    median_added_p50: float
    latency_met: bool


class CapacityFigures(TypedDict, total=False):
    """The capacity benchmark's figures (the report's ``capacity`` section), in the order they
    are written; the server's figures only when it ran, ``model`` added by the report."""

    seconds: Required[float]
    budget_s: Required[float]
    precision: Required[str]
    provider: Required[str]
    layout: Required[str]
    options: Required[dict[str, object]]
    """The stream options (``dataclasses.asdict`` of the server's ``StreamOptions``)."""
    ceiling_batched: float
    """CPU only: the raw ceiling with int8 batches not split (best batch size)."""
    ceiling_by_batch: dict[str, stream_capacity.Ceiling]
    ceiling_before: float
    """The raw onnxruntime ceiling (streams; NaN off CPU) before and after the levels."""
    server_command: str
    levels: dict[str, dict[str, Level]]
    """``engine`` and ``server``, by stream count."""
    server_log_tail: str
    server_peak_rss_mib: float
    ceiling_after: float
    server_unavailable: str | None
    held: dict[str, int]
    verdict: Verdict
    model: str


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
    """The server's command line (after ``python -m streamasr.server.app.cli``)."""
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
) -> CapacityFigures:
    """Raw ceiling, then the engine and the server level by level, then the ceiling again."""
    args = server_args(folder, precision)
    config, options = engine_settings(args)
    unavailable = None if server else "server run not asked for"
    with Engine(folder, config) as e:
        runtime = e.config.runtime
        layout = stream_capacity.Layout(
            e.scheduler.config.workers, runtime.intra_op_threads, runtime.split_int8_batches
        )
        figures: CapacityFigures = {
            "seconds": plan.seconds,
            "budget_s": LATENCY_BUDGET_S,
            "precision": e.scheduler.precision,
            "provider": e.scheduler.provider,
            "layout": f"{layout.label}, max_batch {e.scheduler.config.max_batch}, "
            f"max_wait {e.scheduler.config.max_wait_ms:g} ms",
            "options": asdict(options),
        }
        ceiling = _ceilings(
            e, folder, options, layout=layout, plan=plan, figures=figures, before=True
        )
        paths: dict[str, Callable[[int], Level]] = {
            "engine": lambda n: engine_level(e, audio, n, plan.seconds, options),
        }
        with running_server(args, work, unavailable) as process:
            if process is not None:
                paths["server"] = lambda n: service_level(
                    process, stream_capacity.client_pieces(audio, n, plan.seconds), options.hop_s
                )
                figures["server_command"] = " ".join(process.command[1:])
            try:
                figures["levels"] = interleaved(paths, plan.levels(ceiling), holds)
            finally:
                if process is not None:
                    figures["server_log_tail"] = process.log_tail()
            if process is not None:
                usage = process.usage()
                figures["server_peak_rss_mib"] = usage.peak_rss_mib if usage else math.nan
        _ceilings(e, folder, options, layout=layout, plan=plan, figures=figures, before=False)
    figures["server_unavailable"] = unavailable
    figures["held"] = {name: held(levels, holds) for name, levels in figures["levels"].items()}
    figures["verdict"] = verdict(figures)
    return figures


def _ceilings(
    e: Engine,
    folder: Path,
    options: StreamOptions,
    *,
    layout: stream_capacity.Layout,
    plan: CapacityPlan,
    figures: CapacityFigures,
    before: bool,
) -> float:
    """The raw onnxruntime ceiling (CPU only; NaN elsewhere) into ``figures`` as
    ``ceiling_before`` (with the batched layout's beside it) or ``ceiling_after``."""
    ceiling = math.nan
    if e.scheduler.provider == CPU:
        window = stream_capacity.steady_window(options)
        raw = stream_capacity.raw_ceiling(folder, window, options.hop_s, layout, plan.ceiling_s)
        ceiling = max(v["streams"] for v in raw.values())
        if before:
            batched = replace(layout, split=False)
            by_batch = stream_capacity.raw_ceiling(
                folder, window, options.hop_s, batched, plan.ceiling_s
            )
            figures["ceiling_batched"] = max(v["streams"] for v in by_batch.values())
            figures["ceiling_by_batch"] = by_batch
    if before:
        figures["ceiling_before"] = ceiling
    else:
        figures["ceiling_after"] = ceiling
    return ceiling


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


def verdict(figures: CapacityFigures) -> Verdict:
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
        n: AddedLatency(
            p50=levels["server"][n]["partial"]["p50"] - levels["engine"][n]["partial"]["p50"],
            p95=levels["server"][n]["partial"]["p95"] - levels["engine"][n]["partial"]["p95"],
        )
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


def capacity_table(by_path: dict[str, dict[str, Level]]) -> str:
    """One row per path and level (``levels`` of the figures)."""
    lines = [
        "| path | streams | partial p50 s | partial p95 s | final p50 s | final p95 s "
        "| CPU (all cores) | server main thread (one core) | RSS MiB (peak) | holds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, levels in by_path.items():
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


def summary_lines(figures: CapacityFigures) -> list[str]:
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
    speech = fixtures.load_set(shared / "speech" / "dev" / "human")
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
    logging.getLogger("streamasr.server.engine.stream").setLevel(logging.ERROR)
    seconds = args.seconds or (10.0 if args.quick else 20.0)
    plan = (
        CapacityPlan(seconds, first=(0.0, 0.6), step=0.2, refine=3)
        if args.quick
        else CapacityPlan(seconds)
    )
    folder = fixtures.export_random(args.shared, args.work, args.model)
    figures = measure_capacity(folder, dev_audio(args.shared), plan, args.work)
    print(f"\n### Capacity through the server ({args.model}, random weights, int8)\n")
    print(capacity_table(figures["levels"]))
    print("\n" + "\n".join(summary_lines(figures)))
    name = "service_bench-quick.json" if args.quick else "service_bench.json"
    write_figures(args.out, name, figures)


if __name__ == "__main__":
    main()
