"""``python -m bench tune``: a model's streaming defaults and presets, measured on your audio.

    python -m bench tune --model DIR --speech DIR [--budget-compute 1.6]
                         [--budget-latency-p95 1.0] [--grid quick|default|full] [--limit N]
                         [--precision int8] [--repeats 3] [--dry-run] [--out FILE]

``--model`` is an ``asr-export`` folder, ``--speech`` a folder of 16 kHz audio files with a
``transcripts.tsv`` (``file<TAB>reference`` after a header line, as ``../shared/speech/dev/*``).
The latency/accuracy/compute grid is ``bench.stream.bench``'s (:func:`~.stream_grid.grid_point`:
one stream fed in real time in 20 ms frames, gate off): for each hop C x left context L x
lookahead R, WER against the references, word latency (end of a word's audio to the first
partial showing it) and compute (model input per audio sample; offline is 1.0). The rules below
pick three points; the CPU time of each, against offline, is then measured in interleaved
repeats (process CPU seconds, ``bench.common.proc``). The table, the rules and the winners are
printed, and unless ``--dry-run`` the model's ``manifest.json`` gets a ``streaming`` section: the
``balanced`` point as the defaults, and the three presets with their figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.server.engine.offline import stream_array, transcribe
from streamasr.server.manifest import read_manifest, write_manifest
from streamasr.server.options.presets import Preset, StreamingSection, Windows

from ..common import fixtures
from ..common.proc import own_cpu_s
from ..common.scoring import wer
from . import grid as stream_grid
from .sim import RATE

log = logging.getLogger("bench.tune")

FAST_P95_S = 0.6
"""Word latency p95 the ``fast`` preset aims at."""
ACCURATE_X = 1.02
"""``accurate``: WER within this factor of offline."""
TUNE_GRID = tuple(
    (hop, left, look)
    for hop in (0.32, 0.48, 0.64, 1.0, 1.28, 2.0)
    for left in (0.32, 1.0, 2.0)
    for look in (0.0, 0.16, 0.32, 0.64)
)
"""(hop, left, lookahead) points of the default grid (72)."""
QUICK_TUNE_GRID = ((0.32, 1.0, 0.16), (0.48, 1.0, 0.0), (1.0, 0.32, 0.16), (2.0, 2.0, 0.64))


@dataclass(frozen=True)
class Point:
    """One measured grid point, in the terms of the rules."""

    windows: Windows
    wer: float
    word_p50: float
    word_p95: float
    compute: float

    @classmethod
    def of(cls, p: stream_grid.GridPoint) -> Point:
        return cls(
            Windows(p.left, p.hop, p.lookahead),
            p.wer,
            p.word["p50"],
            p.word["p95"],
            p.input_ratio,
        )


@dataclass(frozen=True)
class Budgets:
    compute: float = 1.6
    latency_p95: float = 1.0


def wer_bound(offline: float) -> float:
    """The streaming WER bound of the defaults: 1.05x offline + 0.3 point."""
    return 1.05 * offline + 0.003


def rules(offline: float, budgets: Budgets) -> dict[str, str]:
    return {
        "fast": f"word p95 <= {FAST_P95_S} s: the lowest WER (then the lowest p95); "
        "none: the lowest p95",
        "balanced": f"WER <= 1.05x offline + 0.3 pt ({wer_bound(offline):.4f}), compute <= "
        f"{budgets.compute}x, word p95 <= {budgets.latency_p95} s: the lowest p95 (then the "
        "lowest compute); none: drop the latency budget, then the WER bound (lowest WER within "
        "the compute budget)",
        "accurate": f"the lowest WER (then the lowest p95), to hold WER <= {ACCURATE_X}x "
        f"offline ({ACCURATE_X * offline:.4f})",
    }


def _best(
    points: Sequence[Point], ok: Callable[[Point], bool], key: Callable[[Point], Any]
) -> Point | None:
    chosen = [p for p in points if ok(p)]
    return min(chosen, key=key) if chosen else None


def pick(points: Sequence[Point], offline: float, budgets: Budgets) -> dict[str, Point]:
    """The three presets by :func:`rules` (``balanced`` becomes the defaults)."""
    bound = wer_bound(offline)
    fast = _best(points, lambda p: p.word_p95 <= FAST_P95_S, lambda p: (p.wer, p.word_p95))
    balanced = (
        _best(
            points,
            lambda p: (
                p.wer <= bound
                and p.compute <= budgets.compute
                and p.word_p95 <= budgets.latency_p95
            ),
            lambda p: (p.word_p95, p.compute),
        )
        or _best(
            points,
            lambda p: p.wer <= bound and p.compute <= budgets.compute,
            lambda p: (p.word_p95, p.compute),
        )
        or _best(points, lambda p: p.compute <= budgets.compute, lambda p: (p.wer, p.word_p95))
    )
    accurate = min(points, key=lambda p: (p.wer, p.word_p95))
    return {
        "fast": fast or min(points, key=lambda p: p.word_p95),
        "balanced": balanced or min(points, key=lambda p: p.compute),
        "accurate": accurate,
    }


def cpu_ratios(
    e: Any, speech: list[fixtures.Utterance], chosen: dict[str, Point], repeats: int
) -> dict[str, float]:
    """Process CPU seconds of each preset over offline, median of ``repeats`` interleaved runs
    (every utterance runs every setup back to back, in a rotating order)."""
    setups: dict[str, Windows | None] = {"offline": None}
    setups.update({name: p.windows for name, p in chosen.items()})
    labels = list(setups)
    ratios: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(repeats):
        totals = dict.fromkeys(labels, 0.0)
        for i, (samples, _) in enumerate(speech):
            k = (r + i) % len(labels)
            for label in labels[k:] + labels[:k]:
                before = own_cpu_s()
                _run(e, samples, setups[label])
                totals[label] += own_cpu_s() - before
        for label in labels:
            ratios[label].append(totals[label] / max(totals["offline"], 1e-9))
    return {label: float(np.median(v)) for label, v in ratios.items() if label != "offline"}


def _run(e: Any, samples: np.ndarray[Any, Any], windows: Windows | None) -> None:
    if windows is None:
        transcribe(e, samples, RATE)
        return
    options = fixtures.plan_options(windows.hop_s, windows.left_s, windows.lookahead_s)
    stream_array(e, samples, RATE, replace(options, gate=None), [320])


def table(points: Sequence[Point], chosen: dict[str, Point]) -> str:
    lines = [
        "| C s | L s | R s | WER | word p50 s | word p95 s | compute x | preset |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        names = [n for n, c in chosen.items() if c is p]
        w = p.windows
        lines.append(
            f"| {w.hop_s:g} | {w.left_s:g} | {w.lookahead_s:g} | {p.wer:.4f} | "
            f"{p.word_p50:.3f} | {p.word_p95:.3f} | {p.compute:.2f} | "
            f"{', '.join(names)} |"
        )
    return "\n".join(lines)


def preset_table(section: StreamingSection) -> str:
    """The README-ready table of the presets."""
    lines = [
        "| preset | L / C / R s | word latency p50 / p95 s | WER (offline) | compute: input x "
        "/ CPU x offline |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, p in section.presets.items():
        m, w = p.measured, p.windows
        default = " (default)" if name == section.default_preset else ""
        lines.append(
            f"| {name}{default} | {w.left_s:g} / {w.hop_s:g} / {w.lookahead_s:g} | "
            f"{m['word_p50_s']:.2f} / {m['word_p95_s']:.2f} | {m['wer']:.4f} "
            f"({m['offline_wer']:.4f}) | {m['compute_x']:.2f} / {m['cpu_x']:.2f} |"
        )
    return "\n".join(lines)


def tune(
    model: Path,
    speech_dir: Path,
    budgets: Budgets,
    *,
    grid: Sequence[tuple[float, float, float]],
    precision: str = "int8",
    limit: int | None = None,
    repeats: int = 3,
) -> tuple[StreamingSection, dict[str, Any]]:
    """Measure the grid and pick; return the manifest section and the raw figures."""
    speech = fixtures.load_set(speech_dir)[:limit]
    refs = [r for _, r in speech]
    with fixtures.engine(model, precision) as e:
        offline = wer(refs, [transcribe(e, s, RATE).text for s, _ in speech]).rate
        raw = [stream_grid.grid_point(e, speech, *point) for point in grid]
        points = [Point.of(p) for p in raw]
        chosen = pick(points, offline, budgets)
        cpu = cpu_ratios(e, speech, chosen, repeats)
    presets = {
        name: Preset(
            p.windows,
            {
                "word_p50_s": p.word_p50,
                "word_p95_s": p.word_p95,
                "wer": round(p.wer, 4),
                "offline_wer": round(offline, 4),
                "compute_x": p.compute,
                "cpu_x": round(cpu[name], 3),
            },
        )
        for name, p in chosen.items()
    }
    tuned = {
        "speech": str(speech_dir),
        "utterances": len(speech),
        "audio_s": round(sum(s.size for s, _ in speech) / RATE, 1),
        "precision": precision,
        "grid_points": len(points),
        "budgets": budgets.__dict__,
        "rules": rules(offline, budgets),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    section = StreamingSection(chosen["balanced"].windows, "balanced", presets, tuned)
    figures = {"offline_wer": offline, "points": [p.__dict__ for p in raw], "tuned": tuned}
    return section, {**figures, "table": table(points, chosen)}


def write_section(model: Path, section: StreamingSection) -> Path:
    """Replace the ``streaming`` section of ``model``'s manifest."""
    manifest = read_manifest(model)
    return write_manifest(replace(manifest, streaming=section), model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model", action=fixtures.ExportFolder, required=True, help="asr-export folder"
    )
    parser.add_argument("--speech", type=Path, required=True, help="audio + transcripts.tsv")
    parser.add_argument("--budget-compute", type=float, default=Budgets.compute)
    parser.add_argument("--budget-latency-p95", type=float, default=Budgets.latency_p95)
    parser.add_argument("--grid", choices=("quick", "default", "full"), default="default")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--limit", type=int, default=None, help="first N utterances only")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved CPU-time repeats")
    parser.add_argument("--dry-run", action="store_true", help="print, leave the manifest")
    parser.add_argument("--out", type=Path, default=None, help="raw figures (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    grids = {
        "quick": QUICK_TUNE_GRID,
        "default": TUNE_GRID,
        "full": tuple(stream_grid.grid_points("full")),
    }
    budgets = Budgets(args.budget_compute, args.budget_latency_p95)
    section, figures = tune(
        args.model,
        args.speech,
        budgets,
        grid=grids[args.grid],
        precision=args.precision,
        limit=args.limit,
        repeats=args.repeats,
    )
    tuned = section.tuned
    print(
        f"\n### Tuning {args.model.name} on {tuned['utterances']} utterances "
        f"({tuned['audio_s']} s) of {args.speech}, {args.precision}, one stream in real time, "
        f"gate off; offline WER {figures['offline_wer']:.4f}\n"
    )
    print(figures["table"])
    print("\nRules:\n")
    for name, rule in tuned["rules"].items():
        print(f"* {name}: {rule}")
    print("\nPresets (defaults: balanced):\n")
    print(preset_table(section))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    if not args.dry_run:
        path = write_section(args.model, section)
        print(f"\nwrote the streaming section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
