"""Real-time streams per GPU through the websocket server, with the frontend's own cost beside it.

Issue 10, item 6 (GPU): base-960h-size fp16 (random weights, exported by the project's
exporter) served by ``asr-server --device cuda --precision fp16 --workers N`` (N up to 8, one
onnxruntime CUDA session per worker, every worker batching its own streams); real-time clients
in several client processes; a level holds when the p95 *final* latency is within 1 s and no
stream failed. Beside it, the instant-model frontend figure (``bench.service.frontend``: server
CPU per audio second per stream and the streams one worker holds, 20 ms frames), the GPU's name
(``nvidia-smi``) and its utilisation during each level. Goal: >= 2,000 streams on one
H100/H200.

The GPU machine needs no internet: everything comes from a folder prepared beforehand.

    # 1. here (the checkout's .venv, ../shared beside it): export and copy what the run needs
    python -m bench gpu_capacity prepare --out gpu-bundle           # ~250 MB, about a minute
    # 2. copy the checkout and gpu-bundle/ to the GPU host; there, once, in a venv:
    #    pip install -e . 'onnxruntime-gpu==<the onnxruntime version of .venv>'
    #    (wheels downloaded here with `pip download` when the host has no internet)
    # 3. on the GPU host (at most --budget-s, 540 s by default, plus the servers' start)
    python -m bench gpu_capacity run --bundle gpu-bundle --out gpu-out

``run`` prints the tables and writes ``gpu-out/gpu_capacity.json``. Without CUDA in onnxruntime
it says so and runs the CPU path (int8 when the bundle has it, else the GPU file on CPU): its
figures are then no GPU figures. ``--smoke`` (with ``prepare --smoke``: a tiny random model)
checks the machinery end to end in about a minute on CPU (tests/test_gpu_script.py).

Knobs: ``--workers`` (the setups, interleaved level by level; default 4 and 8), ``--frame-ms``
(client frame size, default 20), ``--client-procs`` (client processes, default a quarter of the
cores, at least 2), ``--seconds`` (audio per stream), ``--levels`` (exact levels instead of the
sweep), ``--max-batch`` / ``--max-wait-ms`` (the server's batching per worker).
"""

# This module: the command line and the tables. The bundle and ``prepare`` live in
# ``bench.gpu.bundle``, the device choice and GPU sampler in ``bench.gpu.device``, the client
# processes in ``bench.gpu.clients``, and the plans and the sweep in ``bench.gpu.sweep``.

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..common import fixtures
from ..common.proc import cores
from ..service import frontend_tables
from .bundle import prepare
from .sweep import FINAL_BUDGET_S, FRONTEND_PLANS, PLANS, holds, measure

STREAMS_GOAL = 2000
"""Issue 10: real-time streams on one H100/H200."""


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
    parser = argparse.ArgumentParser(prog="python -m bench gpu_capacity", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="export the models and copy the audio (here)")
    prep.add_argument("--out", type=Path, required=True, help="the bundle folder")
    prep.add_argument("--model", default="wav2vec2-base-960h", help="architecture (random)")
    prep.add_argument("--smoke", action="store_true", help="a tiny model instead")
    prep.add_argument("--shared", type=Path, default=fixtures.DEFAULT_SHARED)
    prep.add_argument("--work", type=Path, default=Path("/tmp/gpu_capacity"))
    run = commands.add_parser("run", help="measure (on the GPU host)")
    run.add_argument("--bundle", type=Path, required=True)
    run.add_argument("--out", type=Path, default=fixtures.DEFAULT_OUT)
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
    logging.getLogger("streamasr.server.engine.stream").setLevel(logging.ERROR)
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
    name = "gpu_capacity-smoke.json" if args.smoke else "gpu_capacity.json"
    fixtures.write_figures(args.out, name, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
