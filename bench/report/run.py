"""One command that measures the whole product and draws it.

    python -m bench report --out DIR [--quick | --full] [--sections ...] [--shared ../shared]
                           [--work DIR]

Writes ``DIR/report.md`` (machine, then one section per figure, each with its table and plot),
``DIR/report.json`` (every raw figure) and the PNG plots it links. Sections:

* ``fidelity``: WER and CER on ``speech/dev/tts`` of the fixture checkpoint offline through
  PyTorch fp32 and our ONNX fp32 / fp16 / int8 files, and streamed at the default settings
  (fp32 and int8 on CPU, fp16 on CUDA when onnxruntime has it); streaming-vs-offline character
  agreement on ``speech/dev/human`` (``bench.export.fixture``, ``bench.stream.bench``).
* ``grid``: WER against p95 latency over the hop / left context / lookahead grid
  (``bench.stream.bench``).
* ``speed``: offline audio seconds per wall second of PyTorch eager, the transformers ASR
  pipeline (``chunk_length_s=10``), ORTModelForCTC and our files, at base-960h and large-lv60
  size with random weights, in one process (``bench.export.bench``).
* ``capacity``: concurrent real-time streams through the websocket server and through the
  engine alone against p95 partial and final latency, the server's CPU and memory, and the raw
  onnxruntime ceiling (``bench.service.capacity``).
* ``triton``: streams held through a real Triton server on CPU (``asr-triton``, int8, 2
  instances) behind ``asr-server --workers 2`` against the local backend in one process, same
  model, clients and criterion as ``capacity``, levels interleaved; skipped, with the reason,
  without the Triton interpreter (``bench.triton.bench``).
* ``frontend``: the server's CPU per audio second per stream and the streams one worker holds
  with an instant model (only the frontend works), 20 and 100 ms frames, ``--workers`` 1 and 2;
  beside it the real configurations at 20 ms, one worker, fixture int8: the model in the
  server's process, and the frontend in front of a local Triton (its row says why when the
  Triton interpreter is missing) (``bench.service.frontend``).
* ``lm``: beam search with an n-gram LM built by ``asr-lm`` from ``text/ljspeech-train.txt``:
  WER/CER offline and streamed against greedy, decoder CPU per audio second at the default beam
  and at 32 beside the model's, CPU-bound streams per core, hotword recall (``bench.stream.lm``).
* ``noise``: no gate / energy gate / Silero VAD on the dev sets with 2 s pauses, quiet and under
  white noise and babble at 20, 10 and 5 dB SNR: model input saved, tts WER, human
  streaming-vs-offline agreement, words lost at the edges of speech, the VAD's CPU per audio
  second (``bench.stream.noise``).
* ``punctuation``: the fixture punctuation model's per-mark and casing P/R/F1 on held-out text
  (int8, the engine's streaming rule) beside the trivial baseline, and what captions cost in
  the engine: CPU per audio second and per 1,000 words, added final latency, and the added CPU
  against the base-size acoustic model's int8 CPU (``bench.punctuation.section``).

``--quick`` (the default is ``--full``) finishes in a few minutes on 2 cores; the report says
what it leaves out. A section that fails is reported as failed; the others still run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..common.fixtures import DEFAULT_SHARED
from ..common.machine import describe
from ..punctuation import section as punctuation_section
from ..service import capacity as service_bench
from ..service import frontend_tables
from ..stream import lm as lm_bench
from ..triton import tables as triton_tables
from .markdown import report_md
from .modes import MODES, Mode
from .sections import SECTION_RUNS, Context, load_inputs

log = logging.getLogger("bench.report")

DEFAULT_WORK = Path(tempfile.gettempdir()) / "bench_report"
SECTIONS = (
    "fidelity",
    "grid",
    "speed",
    "capacity",
    "triton",
    "frontend",
    "noise",
    "lm",
    "punctuation",
)


def run_report(
    shared: Path, work: Path, out: Path, mode: Mode, sections: Sequence[str] = SECTIONS
) -> dict[str, Any]:
    """Run the sections, write report.md, report.json and the plots into ``out``."""
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(shared, work, out, mode, describe())
    load_inputs(ctx)
    figures: dict[str, Any] = {
        "mode": asdict(mode),
        "machine": ctx.machine.to_dict(),
        "sections": {},
    }
    for name in (s for s in SECTIONS if s in sections):
        log.info("section %s ...", name)
        section_started = time.perf_counter()
        try:
            section: dict[str, object] = dict(SECTION_RUNS[name](ctx))
        except Exception as exc:  # one failing section must not lose the others' figures
            log.exception("section %s failed", name)
            section = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        section["wall_s"] = time.perf_counter() - section_started
        figures["sections"][name] = section
        log.info("section %s: %.0f s", name, section["wall_s"])
    figures["wall_s"] = time.perf_counter() - started
    (out / "report.json").write_text(json.dumps(figures, indent=2, default=_json) + "\n")
    (out / "report.md").write_text(report_md(ctx, figures) + "\n", encoding="utf-8")
    return figures


def _json(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def headline(figures: dict[str, Any]) -> list[str]:
    """A few lines for the terminal."""
    lines = [f"wall time {figures['wall_s']:.0f} s"]
    sections = figures["sections"]
    for name, section in sections.items():
        if "error" in section:
            lines.append(f"{name}: FAILED ({section['error']})")
    if "capacity" in sections and "held" in sections["capacity"]:
        lines += service_bench.summary_lines(sections["capacity"])
    if "triton" in sections and ("held" in sections["triton"] or "skipped" in sections["triton"]):
        lines += triton_tables.summary_lines(sections["triton"])
    if "frontend" in sections and "setups" in sections["frontend"]:
        lines += frontend_tables.summary_lines(sections["frontend"])
    if "lm" in sections and "passes" in sections["lm"]:
        lines += lm_bench.summary_lines(sections["lm"])
    if "punctuation" in sections and "engine" in sections["punctuation"]:
        lines += punctuation_section.summary_lines(sections["punctuation"])
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md etc.")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", dest="mode", const="quick")
    size.add_argument("--full", action="store_const", dest="mode", const="full")
    size.add_argument(
        "--smoke", action="store_const", dest="mode", const="smoke", help=argparse.SUPPRESS
    )
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="cache of exports (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    # the in-process engine's "behind real time" warnings are expected past saturation
    logging.getLogger("streamasr.server.engine.stream").setLevel(logging.ERROR)
    mode = MODES[args.mode or "full"]
    figures = run_report(args.shared, args.work, args.out, mode, args.sections)
    print("\n".join(headline(figures)))
    print(f"report: {args.out / 'report.md'}")
    return 1 if any("error" in s for s in figures["sections"].values()) else 0
