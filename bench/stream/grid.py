"""``bench.stream.bench``'s latency/accuracy grid, which ``bench.stream.tune`` and
``bench.report.run`` share.

For hop C x left context L x lookahead R (the issue's grid, :data:`HOPS` x :data:`LEFTS` x
:data:`LOOKAHEADS`, plus the :data:`CANDIDATES` for the defaults; :data:`QUICK_GRID` with
``--quick``), fixture int8 on ``speech/dev/tts`` with the gate off: WER, and the word and frame
latencies of ``bench.stream.sim`` (single stream, 2 CPU threads).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from streamasr.server.engine.engine import Engine
from streamasr.server.engine.offline import transcribe

from ..common.fixtures import Utterance, engine, plan_options
from ..common.percentiles import Percentiles, percentiles
from ..common.scoring import cer, wer
from .sim import (
    RATE,
    frame_latencies,
    partial_latencies,
    run_timed,
    word_latencies,
)

log = logging.getLogger("bench.stream_bench")  # its log lines are stream_bench's

HOPS = (0.32, 0.64, 1.0, 2.0)
LEFTS = (0.0, 1.0, 2.0, 4.0)
LOOKAHEADS = (0.0, 0.16, 0.32, 0.64)
CANDIDATES = tuple(itertools.product((0.8, 1.0, 1.28), (0.32, 0.48, 0.64), (0.16, 0.32)))
"""(hop, left, lookahead) points near the compute budget, measured beside the issue's grid."""
QUICK_GRID = (
    (0.32, 1.0, 0.32),
    (0.64, 1.0, 0.32),
    (1.0, 0.0, 0.0),
    (1.0, 1.0, 0.32),
    (2.0, 2.0, 0.32),
)


class GridPointFigures(TypedDict):
    """A :class:`GridPoint` as the reports carry it (its fields, in order)."""

    hop: float
    left: float
    lookahead: float
    wer: float
    cer: float
    word: Percentiles
    frame: Percentiles
    partial: Percentiles
    input_ratio: float


class GridFigures(TypedDict):
    """The grid's figures: offline WER and every point."""

    offline_wer: float
    points: list[GridPointFigures]


@dataclass(frozen=True)
class GridPoint:
    hop: float
    left: float
    lookahead: float
    wer: float
    cer: float
    word: Percentiles
    frame: Percentiles
    partial: Percentiles
    input_ratio: float
    """Model input samples per audio sample (the compute multiplier of the geometry)."""

    def figures(self) -> GridPointFigures:
        """The fields, in order (what ``__dict__`` gave the reports)."""
        return {
            "hop": self.hop,
            "left": self.left,
            "lookahead": self.lookahead,
            "wer": self.wer,
            "cer": self.cer,
            "word": self.word,
            "frame": self.frame,
            "partial": self.partial,
            "input_ratio": self.input_ratio,
        }


def grid_point(e: Engine, tts: list[Utterance], hop: float, left: float, look: float) -> GridPoint:
    options = plan_options(hop, left, look, gate=None)
    refs, hyps, words, frame_lat, partial_lat = [], [], [], [], []
    model = audio = 0
    for samples, reference in tts:
        run = run_timed(e, samples, options)
        refs.append(reference)
        hyps.append(run.text)
        words += word_latencies(run)
        frame_lat += frame_latencies(run, options, e.manifest.input.num_frames(samples.size))
        partial_lat += partial_latencies(run)
        model += run.model_samples
        audio += samples.size
    return GridPoint(
        hop,
        left,
        look,
        wer(refs, hyps).rate,
        cer(refs, hyps).rate,
        percentiles(words),
        percentiles(frame_lat),
        percentiles(partial_lat),
        round(model / audio, 3),
    )


def grid_points(mode: str) -> list[tuple[float, float, float]]:
    """(hop, left, lookahead) points: the issue's 64-point grid and the candidates, or a few."""
    if mode == "quick":
        return list(QUICK_GRID)
    points = list(itertools.product(HOPS, LEFTS, LOOKAHEADS))
    return points + [p for p in CANDIDATES if p not in points]


def grid_figures(
    folder: Path, tts: list[Utterance], points: Sequence[tuple[float, float, float]]
) -> GridFigures:
    """WER and latencies of each geometry (fixture int8, gate off, single stream)."""
    with engine(folder, "int8") as e:
        offline = wer([r for _, r in tts], [transcribe(e, s, RATE).text for s, _ in tts]).rate
        results = []
        for hop, left, look in points:
            started = time.perf_counter()
            results.append(grid_point(e, tts, hop, left, look))
            log.info("grid C=%s L=%s R=%s: %.1f s", hop, left, look, time.perf_counter() - started)
    return {"offline_wer": offline, "points": [p.figures() for p in results]}


def grid_table(figures: GridFigures) -> str:
    lines = [
        "| C s | L s | R s | WER | CER | word p50 | word p95 | frame p50 | frame p95 | input x |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in figures["points"]:
        lines.append(
            f"| {p['hop']} | {p['left']} | {p['lookahead']} | {p['wer']:.4f} | {p['cer']:.4f} "
            f"| {p['word']['p50']:.3f} | {p['word']['p95']:.3f} | {p['frame']['p50']:.3f} "
            f"| {p['frame']['p95']:.3f} | {p['input_ratio']:.2f} |"
        )
    return "\n".join(lines)


def grid(folder: Path, tts: list[Utterance], mode: str) -> GridFigures:
    figures = grid_figures(folder, tts, grid_points(mode))
    print(
        "\n### Latency / accuracy (fixture int8, tts set, gate off; "
        f"offline WER {figures['offline_wer']:.4f})\n"
    )
    print(grid_table(figures))
    return figures
