"""Streaming recognition figures: fidelity, the latency/accuracy curve, compute and capacity.

    python -m bench stream_bench [--quick] [--sections fidelity grid gate compute capacity]
                                 [--shared ../shared] [--work DIR] [--out bench/out]

* ``fidelity``: the fixture checkpoint (``../shared/models/tts-en-ctc-small``, exported fp32 and
  int8) on ``speech/dev/tts``: WER and CER of the offline reference (whole utterance, one
  window) and of streaming at the default settings, gate on and off; on ``speech/dev/human``,
  character agreement of the streaming transcripts with the offline ones.
* ``grid``: for hop C x left context L x lookahead R (the issue's grid, plus the candidates for
  the defaults), fixture int8 on ``speech/dev/tts`` with the gate off: WER, and the word and frame
  latencies of ``bench.stream.sim`` (single stream, 2 CPU threads).
* ``gate``: the energy gate on the tts utterances separated by 2 s of quiet noise: windows
  skipped, model input saved, WER with and without it.
* ``compute``: a random-weight wav2vec2-base-960h (95M, ``../shared/models/configs``) exported
  int8, on the human dev speech: compute time per audio second offline (one window per
  utterance) and streaming (defaults), on 2 CPU threads.
* ``capacity``: the same model, N concurrent real-time streams (asyncio clients, 20 ms frames)
  for increasing N: p50/p95 frame latency (partial and final latencies are recorded too); the
  most streams held with p95 <= 1.5 s, next to the ceiling implied by raw onnxruntime throughput
  on the same steady windows. ``bench.service.capacity`` runs the same levels through the websocket
  server.

Markdown tables go to stdout, raw figures to ``OUT/stream_bench.json``. ``--quick`` runs a
reduced grid and shorter capacity runs; the full grid (64 points) takes about 10 minutes.

This module is the command line; the sections live in ``bench.stream.accuracy`` (fidelity, gate),
``bench.stream.grid``, ``bench.stream.compute`` and ``bench.stream.capacity``, and what the
benchmarks share (speech sets, exported models, the engine) in ``bench.common.fixtures``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common.fixtures import (
    DEFAULT_OUT,
    DEFAULT_SHARED,
    THREADS,
    export_fixture,
    export_random,
    load_set,
    write_figures,
)
from .accuracy import fidelity, gate
from .capacity import LAYOUTS, capacity
from .compute import compute
from .grid import grid

log = logging.getLogger("bench.stream_bench")  # also the grid's and capacity's log lines

SECTIONS = ("fidelity", "grid", "gate", "compute", "capacity")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="reduced grid, short capacity runs")
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--work", type=Path, default=Path("/tmp/stream_bench"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--layouts",
        nargs="+",
        choices=list(LAYOUTS),
        default=list(LAYOUTS),
        help="capacity: workers x intra-op threads (and int8 batching) to sweep",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("streamasr.export", "root"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger().setLevel(logging.WARNING)
    log.setLevel(logging.INFO)

    tts = load_set(args.shared / "speech" / "dev" / "tts")
    human = load_set(args.shared / "speech" / "dev" / "human")
    figures: dict[str, Any] = {"threads": THREADS, "quick": args.quick}
    if {"fidelity", "grid", "gate"} & set(args.sections):
        fixture = export_fixture(args.shared, args.work)
        if "fidelity" in args.sections:
            figures["fidelity"] = fidelity(fixture, tts, human)
        if "grid" in args.sections:
            figures["grid"] = grid(fixture, tts, "quick" if args.quick else "full")
        if "gate" in args.sections:
            figures["gate"] = gate(fixture, tts)
    if {"compute", "capacity"} & set(args.sections):
        base = export_random(args.shared, args.work, "wav2vec2-base-960h")
        if "compute" in args.sections:
            figures["compute"] = compute(base, human, args.repeats)
        if "capacity" in args.sections:
            figures["capacity"] = capacity(base, human, args.quick, args.layouts)
    parts = ["stream_bench", *(["quick"] if args.quick else [])]
    parts += [] if set(args.sections) == set(SECTIONS) else sorted(args.sections)
    name = "-".join(parts) + ".json"
    write_figures(args.out, name, figures)


if __name__ == "__main__":
    main()
