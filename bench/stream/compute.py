"""``bench.stream.bench``'s compute section: model compute per audio second, offline and streaming.

A random-weight wav2vec2-base-960h (95M, ``../shared/models/configs``) exported int8, on the
human dev speech: compute time per audio second offline (one window per utterance) and streaming
(the defaults and a few other geometries, gate on and off), single stream, as 1 worker x 2
intra-op threads and as 2 workers x 1 thread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.engine.engine import Engine
from streamasr.server.engine.offline import stream_array, transcribe
from streamasr.server.options.stream import StreamOptions

from ..common.fixtures import THREADS, Utterance, engine, plan_options
from .sim import RATE


def timed(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


COMPUTE_SETUPS: dict[str, StreamOptions | None] = {
    "offline": None,
    "stream defaults (C=1.0 L=0.32 R=0.32), gate off": StreamOptions(gate=None),
    "stream defaults, gate on": StreamOptions(),
    "stream C=1.0 L=0.32 R=0.16": plan_options(1.0, 0.32, 0.16, gate=None),
    "stream C=1.28 L=0.32 R=0.32": plan_options(1.28, 0.32, 0.32, gate=None),
    "stream C=1.0 L=1.0 R=0.32": plan_options(1.0, 1.0, 0.32, gate=None),
    "stream C=2.0 L=1.0 R=0.32": plan_options(2.0, 1.0, 0.32, gate=None),
}


def run_setup(e: Engine, samples: NDArray[np.float32], options: StreamOptions | None) -> float:
    if options is None:
        return timed(transcribe, e, samples, RATE)
    return timed(stream_array, e, samples, RATE, options, [320])


def compute(folder: Path, speech: list[Utterance], repeats: int) -> dict[str, Any]:
    """Each repeat runs every setup on each utterance back to back, in a rotating order; ratios
    to offline are taken within a repeat and their median reported, because this machine's
    speed drifts by up to 2x over minutes (shared host)."""
    audio = sum(s.size for s, _ in speech) / RATE
    figures: dict[str, Any] = {"audio_s": audio}
    labels = list(COMPUTE_SETUPS)
    for threads, workers in ((THREADS, 1), (1, THREADS)):
        key = f"{workers} worker(s) x {threads} thread(s)"
        times: dict[str, list[float]] = {label: [] for label in labels}
        with engine(folder, "int8", threads=threads, workers=workers) as e:
            run_setup(e, speech[0][0], None)  # warm-up
            for r in range(repeats):
                totals = dict.fromkeys(labels, 0.0)
                for i, (samples, _) in enumerate(speech):
                    k = (r + i) % len(labels)
                    for label in labels[k:] + labels[:k]:
                        totals[label] += run_setup(e, samples, COMPUTE_SETUPS[label])
                for label, seconds in totals.items():
                    times[label].append(seconds)
        offline = times["offline"]
        figures[key] = {
            label: {
                "seconds": t,
                "per_audio_s": float(np.median(t)) / audio,
                "ratio": float(np.median([a / b for a, b in zip(t, offline, strict=True)])),
            }
            for label, t in times.items()
        }
    print(
        f"\n### Compute (random-weight wav2vec2-base-960h, int8, {audio:.1f} s of human "
        f"speech, single stream, median of {repeats} rotated repeats)\n"
    )
    keys = [k for k in figures if k != "audio_s"]
    print("| mode | " + " | ".join(f"{k}: s per audio s | x offline" for k in keys) + " |")
    print("| --- |" + " --- | --- |" * len(keys))
    for label in labels:
        cells = [
            f"{figures[k][label]['per_audio_s']:.4f} | {figures[k][label]['ratio']:.2f}"
            for k in keys
        ]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return figures
