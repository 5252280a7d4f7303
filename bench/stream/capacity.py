"""``bench.stream.bench``'s capacity section: real-time streams one engine holds, in process.

The random-weight base-960h int8 model, N concurrent real-time streams (asyncio clients, 20 ms
frames) for increasing N: p50/p95 frame latency (partial and final latencies are recorded too);
the most streams held with p95 <= :data:`LATENCY_BUDGET_S`, next to the ceiling implied by raw
onnxruntime throughput on the same steady windows, for each :data:`LAYOUTS` entry.

The pieces (:class:`Layout`, :func:`raw_ceiling`, :func:`client_pieces`, :func:`load_level`,
:func:`steady_window`) are also those of the server, Triton and GPU capacity benchmarks
(``bench.service.capacity`` runs the same levels through the websocket server).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.engine import Engine
from streamasr.server.options.stream import StreamOptions

from ..common.fixtures import Utterance, engine
from ..common.percentiles import Percentiles, percentiles
from .sim import (
    RATE,
    TimedRun,
    final_latencies,
    frame_latencies,
    partial_latencies,
    play_real_time,
    start_offsets,
)

log = logging.getLogger("bench.stream_bench")  # its log lines are stream_bench's

LATENCY_BUDGET_S = 1.5
"""p95 frame latency a level of streams must keep to count as held."""


def steady_window(options: StreamOptions) -> int:
    """Samples of a steady window: left context + hop + lookahead + the 80-sample overhang of
    the wav2vec2 layouts the capacity runs use."""
    return round((options.left_s + options.hop_s + options.lookahead_s) * RATE) + 80


@dataclass(frozen=True)
class Layout:
    """How the two cores are used: workers x intra-op threads, int8 batches split or not."""

    workers: int
    threads: int
    split: bool

    @property
    def label(self) -> str:
        split = "windows one by one" if self.split else "batched int8"
        return f"{self.workers} worker(s) x {self.threads} thread(s), {split}"


LAYOUTS = {
    "2x1": Layout(2, 1, True),
    "1x2": Layout(1, 2, True),
    "2x1-batched": Layout(2, 1, False),
}
"""``2x1`` is the engine's default on a 2-core CPU."""


class Ceiling(TypedDict):
    """What raw onnxruntime sustained at one batch size."""

    windows_per_s: float
    streams: float


class LoadLevel(Percentiles):
    """One in-process level (:func:`load_level`): ``p50``/``p95``/``n`` of the frame latency,
    then the partial and final latencies and the scheduler's figures."""

    partial: Percentiles
    final: Percentiles
    busy: float
    """Share of the runners' time spent in inference."""
    mean_batch: float
    lagging: int
    """Lagging reports over all streams."""


class LayoutCapacity(TypedDict):
    """One layout's sweep, with the raw ceiling (by batch size) before and after it."""

    ceiling: dict[str, Ceiling]
    ceiling_after: dict[str, Ceiling]
    ceiling_streams: float
    ceiling_streams_after: float
    levels: dict[str, LoadLevel]
    held: int


class CapacityFigures(TypedDict):
    """The capacity section of ``bench.stream.bench``'s results."""

    seconds: float
    window: int
    layouts: dict[str, LayoutCapacity]


def raw_ceiling(
    folder: Path, window: int, hop_s: float, layout: Layout, duration_s: float = 3.0
) -> dict[str, Ceiling]:
    """Real-time streams that onnxruntime alone sustains on steady windows: each of
    ``layout.workers`` threads calls the session back to back with batches of B windows (one
    call per window when split), for ``duration_s``; streams = windows per second x hop."""
    import threading

    import onnxruntime as ort

    from streamasr.server.manifest import read_manifest

    manifest = read_manifest(folder)
    options = ort.SessionOptions()
    options.intra_op_num_threads = layout.threads
    options.log_severity_level = 3
    path = str(folder / manifest.entry("int8").file)
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = manifest.input.name
    x = (0.1 * np.random.default_rng(0).standard_normal((8, window))).astype(np.float32)
    figures: dict[str, Ceiling] = {}
    for batch in (1,) if layout.split else (1, 2, 4, 8):
        session.run(None, {name: x[:batch]})
        done = [0] * layout.workers
        stop_at = time.perf_counter() + duration_s

        def work(
            i: int, batch: int = batch, stop_at: float = stop_at, done: list[int] = done
        ) -> None:
            while time.perf_counter() < stop_at:
                session.run(None, {name: x[:batch]})
                done[i] += batch

        threads = [threading.Thread(target=work, args=(i,)) for i in range(layout.workers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = sum(done) / (time.perf_counter() - started)
        figures[str(batch)] = {"windows_per_s": rate, "streams": rate * hop_s}
    return figures


async def _simulate(
    e: Engine, pieces: list[NDArray[np.float32]], options: StreamOptions
) -> list[TimedRun]:
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.2
    offsets = start_offsets(len(pieces), options.hop_s)
    runs = [
        play_real_time(e, p, options, start + float(o))
        for p, o in zip(pieces, offsets, strict=True)
    ]
    return list(await asyncio.gather(*runs))


def client_pieces(audio: NDArray[np.float32], n: int, seconds: float) -> list[NDArray[np.float32]]:
    """``n`` streams of ``seconds`` each, from spread-out offsets of ``audio`` (tiled when
    shorter)."""
    length = int(seconds * RATE)
    if audio.size < length:
        audio = np.resize(audio, length).astype(np.float32)
    starts = np.linspace(0, audio.size - length, n).astype(int) if n > 1 else [0]
    return [np.ascontiguousarray(audio[s : s + length]) for s in starts]


def load_level(
    e: Engine, audio: NDArray[np.float32], n: int, seconds: float, options: StreamOptions
) -> LoadLevel:
    """``n`` real-time streams of ``seconds`` each, from spread-out offsets of ``audio``.

    ``p50``/``p95``: frame latency; ``partial`` and ``final``: the partial and final latencies
    of ``bench.stream.sim`` (the definitions ``bench.service.capacity`` measures through the
    server)."""
    pieces = client_pieces(audio, n, seconds)
    busy_before, batches_before = e.scheduler.stats.busy_s, e.scheduler.stats.batches
    windows_before = e.scheduler.stats.windows
    started = time.perf_counter()
    runs = asyncio.run(_simulate(e, pieces, options))
    wall = time.perf_counter() - started
    frames_total = e.manifest.input.num_frames(pieces[0].size)
    latencies = [x for r in runs for x in frame_latencies(r, options, frames_total)]
    batches = e.scheduler.stats.batches - batches_before
    level: LoadLevel = {
        **percentiles(latencies),
        "partial": percentiles([x for r in runs for x in partial_latencies(r)]),
        "final": percentiles([x for r in runs for x in final_latencies(r)]),
        "busy": (e.scheduler.stats.busy_s - busy_before) / wall / e.scheduler.config.workers,
        "mean_batch": (e.scheduler.stats.windows - windows_before) / max(1, batches),
        "lagging": sum(r.lagging for r in runs),
    }
    return level


@contextmanager
def layout_engine(folder: Path, layout: Layout, precision: str = "int8") -> Iterator[Engine]:
    """The engine as the capacity runs use it (the server's defaults for the ``2x1`` layout)."""
    with engine(
        folder,
        precision,
        layout.threads,
        layout.split,
        workers=layout.workers,
        max_batch=8,
        max_wait_ms=5.0,
    ) as e:
        yield e


def sweep(
    folder: Path, layout: Layout, audio: NDArray[np.float32], seconds: float, start: int
) -> tuple[int, dict[str, LoadLevel]]:
    """Add streams one at a time from ``start`` until p95 frame latency passes the budget (or
    remove them until it holds, when ``start`` is already too many)."""
    options = StreamOptions()
    levels: dict[str, LoadLevel] = {}
    held = 0
    with layout_engine(folder, layout) as e:
        n = start
        while 1 <= n <= 40:
            level = load_level(e, audio, n, seconds, options)
            levels[str(n)] = level
            log.info("%s, %d streams: p95 %.3f s", layout.label, n, level["p95"])
            if level["p95"] <= LATENCY_BUDGET_S:
                held = max(held, n)
                if str(n + 1) in levels:
                    break  # came down from a failing level
                n += 1
            elif held or n == 1:
                break
            else:
                n -= 1  # the first level already failed: come down
    return held, levels


def capacity(
    folder: Path, speech: list[Utterance], quick: bool, layouts: Sequence[str]
) -> CapacityFigures:
    options = StreamOptions()
    audio = np.concatenate([s for s, _ in speech])
    seconds = 10.0 if quick else 20.0
    window = steady_window(options)
    results: CapacityFigures = {"seconds": seconds, "window": window, "layouts": {}}
    for layout in (LAYOUTS[name] for name in layouts):
        before = raw_ceiling(folder, window, options.hop_s, layout)
        best = max(v["streams"] for v in before.values())
        held, levels = sweep(folder, layout, audio, seconds, max(1, int(best * 0.7)))
        # measured again: this host's speed drifts, so the ceiling is bracketed
        after = raw_ceiling(folder, window, options.hop_s, layout)
        results["layouts"][layout.label] = {
            "ceiling": before,
            "ceiling_after": after,
            "ceiling_streams": best,
            "ceiling_streams_after": max(v["streams"] for v in after.values()),
            "levels": levels,
            "held": held,
        }
    print_capacity(results, options)
    return results


def print_capacity(results: CapacityFigures, options: StreamOptions) -> None:
    print(
        f"\n### Capacity (random-weight base-960h int8, 2 CPU cores, default settings, "
        f"{results['seconds']:.0f} s real-time streams in 20 ms frames, frame latency)\n"
    )
    print("| layout | streams | p50 s | p95 s | runner busy | mean batch | lagging reports |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results["layouts"].items():
        for n, f in r["levels"].items():
            print(
                f"| {label} | {n} | {f['p50']:.3f} | {f['p95']:.3f} | {f['busy']:.0%} "
                f"| {f['mean_batch']:.2f} | {f['lagging']} |"
            )
    print(
        f"\nraw onnxruntime on steady windows ({results['window']} samples, hop "
        f"{options.hop_s} s), real-time streams sustained, before / after the sweep:\n"
    )
    print("| layout | batch | streams |")
    print("| --- | --- | --- |")
    for label, r in results["layouts"].items():
        for batch, c in r["ceiling"].items():
            after = r["ceiling_after"][batch]["streams"]
            print(f"| {label} | {batch} | {c['streams']:.2f} / {after:.2f} |")
    print(
        f"\n| layout | held, p95 <= {LATENCY_BUDGET_S} s | ceiling before / after "
        "| held / mean ceiling | runner busy at the last level held |"
    )
    print("| --- | --- | --- | --- | --- |")
    for label, r in results["layouts"].items():
        ceiling = (r["ceiling_streams"] + r["ceiling_streams_after"]) / 2
        last = r["levels"].get(str(r["held"]))
        busy = float("nan") if last is None else last["busy"]
        print(
            f"| {label} | {r['held']} | {r['ceiling_streams']:.2f} / "
            f"{r['ceiling_streams_after']:.2f} | {r['held'] / ceiling:.0%} | {busy:.0%} |"
        )
