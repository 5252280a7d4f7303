"""One command that measures the whole product and draws it.

    python -m bench report --out DIR [--quick | --full] [--sections ...] [--shared ../shared]
                           [--work DIR]

Writes ``DIR/report.md`` (machine, then one section per figure, each with its table and plot),
``DIR/report.json`` (every raw figure) and the PNG plots it links. Sections:

* ``fidelity``: WER and CER on ``speech/dev/tts`` of the fixture checkpoint offline through
  PyTorch fp32 and our ONNX fp32 / fp16 / int8 files, and streamed at the default settings
  (fp32 and int8 on CPU, fp16 on CUDA when onnxruntime has it); streaming-vs-offline character
  agreement on ``speech/dev/human`` (``bench.export_fixture``, ``bench.stream_bench``).
* ``grid``: WER against p95 latency over the hop / left context / lookahead grid
  (``bench.stream_bench``).
* ``speed``: offline audio seconds per wall second of PyTorch eager, the transformers ASR
  pipeline (``chunk_length_s=10``), ORTModelForCTC and our files, at base-960h and large-lv60
  size with random weights, in one process (``bench.export_bench``).
* ``capacity``: concurrent real-time streams through the websocket server and through the
  engine alone against p95 partial and final latency, the server's CPU and memory, and the raw
  onnxruntime ceiling (``bench.service_bench``).
* ``triton``: streams held through a real Triton server on CPU (``asr-triton``, int8, 2
  instances) behind ``asr-server --workers 2`` against the local backend in one process, same
  model, clients and criterion as ``capacity``, levels interleaved; skipped, with the reason,
  without the Triton interpreter (``bench.triton_bench``).
* ``frontend``: the server's CPU per audio second per stream and the streams one worker holds
  with an instant model (only the frontend works), 20 and 100 ms frames, ``--workers`` 1 and 2
  (``bench.frontend_bench``).
* ``lm``: beam search with an n-gram LM built by ``asr-lm`` from ``text/ljspeech-train.txt``:
  WER/CER offline and streamed against greedy, decoder CPU per audio second at the default beam
  and at 32 beside the model's, CPU-bound streams per core, hotword recall (``bench.lm_bench``).
* ``noise``: no gate / energy gate / Silero VAD on the dev sets with 2 s pauses, quiet and under
  white noise and babble at 20, 10 and 5 dB SNR: model input saved, tts WER, human
  streaming-vs-offline agreement, words lost at the edges of speech, the VAD's CPU per audio
  second (``bench.noise``).

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamasr.server.stream import DEFAULT_HOP_S, DEFAULT_LEFT_S, DEFAULT_LOOKAHEAD_S

from . import (
    export_bench,
    frontend_sweep,
    frontend_tables,
    lm_bench,
    noise,
    plots,
    service_bench,
    stream_bench,
    triton_measure,
    triton_process,
    triton_setup,
    triton_tables,
)
from .machine import Machine, describe

log = logging.getLogger("bench.report")

DEFAULT_SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_WORK = Path(tempfile.gettempdir()) / "bench_report"
SECTIONS = ("fidelity", "grid", "speed", "capacity", "triton", "frontend", "noise", "lm")
BASE = "wav2vec2-base-960h"
LARGE = "wav2vec2-large-960h-lv60-self"
DEFAULTS = (DEFAULT_HOP_S, DEFAULT_LEFT_S, DEFAULT_LOOKAHEAD_S)
"""(hop, left, lookahead) of ``StreamOptions``: marked on the latency/accuracy plot."""
SMOKE_GRID = (DEFAULTS, (0.64, 0.32, 0.16))
QUICK_GRID = (*stream_bench.QUICK_GRID, DEFAULTS)


@dataclass(frozen=True)
class Mode:
    """How much of each section to run."""

    name: str
    tts: int | None
    """tts utterances for fidelity and the grid (None: all 30)."""
    human: int | None
    """human utterances for the agreement figure (None: all 10)."""
    grid: tuple[tuple[float, float, float], ...]
    speed_configs: tuple[str, ...]
    speed_seconds: float
    speed_repeats: int
    profile: bool
    capacity_model: str
    capacity: service_bench.CapacityPlan
    leaves_out: tuple[str, ...] = ()
    """What the report should say this mode skips."""


MODES = {
    "full": Mode(
        "full",
        tts=None,
        human=None,
        grid=tuple(stream_bench.grid_points("full")),
        speed_configs=(BASE, LARGE),
        speed_seconds=20.0,
        speed_repeats=3,
        profile=True,
        capacity_model=BASE,
        capacity=service_bench.CapacityPlan(20.0),
    ),
    "quick": Mode(
        "quick",
        tts=None,
        human=None,
        grid=QUICK_GRID,
        speed_configs=(BASE,),
        speed_seconds=10.0,
        speed_repeats=2,
        profile=False,
        capacity_model=BASE,
        capacity=service_bench.CapacityPlan(
            6.0, first=(0.0, 0.6), step=0.2, refine=3, ceiling_s=2.0
        ),
        leaves_out=(
            f"the grid's {len(QUICK_GRID)} points instead of "
            f"{len(stream_bench.grid_points('full'))}",
            "offline speed at base-960h size only (no large-lv60), 10 s of audio, 2 timed runs, "
            "no profile",
            "capacity with 6 s streams (20 s in full), levels 20 % of the ceiling apart "
            "refined by 3 bisection steps (8 in full), so the streams held are known to about "
            "2 streams",
        ),
    ),
    "smoke": Mode(
        "smoke",
        tts=3,
        human=2,
        grid=SMOKE_GRID,
        speed_configs=(stream_bench.TINY,),
        speed_seconds=4.0,
        speed_repeats=1,
        profile=False,
        capacity_model=stream_bench.TINY,
        capacity=service_bench.CapacityPlan(3.0, fixed=(1, 2), ceiling_s=0.5),
        leaves_out=(
            "SMOKE TEST: a tiny random model for speed and capacity, 3 tts and 2 human "
            "utterances, 2 grid points, 2 stream levels of 3 s: the figures check the "
            "machinery, they measure nothing",
        ),
    ),
}


@dataclass
class Context:
    """Inputs shared by the sections."""

    shared: Path
    work: Path
    out: Path
    mode: Mode
    machine: Machine
    tts: list[stream_bench.Utterance] = field(default_factory=list)
    tts_files: list[Path] = field(default_factory=list)
    human: list[stream_bench.Utterance] = field(default_factory=list)

    @property
    def fixture(self) -> Path:
        return self.shared / "models" / "tts-en-ctc-small"


# --- sections -----------------------------------------------------------------------------------


def fidelity(ctx: Context) -> dict[str, Any]:
    """Offline WER/CER per runtime and streaming WER/agreement per precision."""
    from streamasr.export.evaluate import transcribe_offline

    from .scoring import cer, wer

    folder = stream_bench.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    refs = [r for _, r in ctx.tts]
    texts = transcribe_offline(str(ctx.fixture), folder, ctx.tts_files)
    offline = {
        runtime: {"wer": wer(refs, hyps).rate, "cer": cer(refs, hyps).rate}
        for runtime, hyps in texts.items()
    }
    streaming = stream_bench.fidelity_figures(folder, ctx.tts, ctx.human, ("fp32", "int8"))
    if ctx.machine.cuda:
        streaming |= {
            f"{p} (CUDA)": f
            for p, f in stream_bench.fidelity_figures(
                folder, ctx.tts, ctx.human, ("fp16",), device="cuda"
            ).items()
        }
    return {
        "utterances": {"tts": len(ctx.tts), "human": len(ctx.human)},
        "offline": offline,
        "streaming": streaming,
    }


def grid(ctx: Context) -> dict[str, Any]:
    folder = stream_bench.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    figures = stream_bench.grid_figures(folder, ctx.tts, ctx.mode.grid)
    plots.latency_accuracy(figures, DEFAULTS, ctx.out / "latency_accuracy.png")
    return figures


def speed(ctx: Context) -> dict[str, Any]:
    signal = export_bench.test_signal(ctx.mode.speed_seconds, human_dir(ctx.shared))
    results = []
    for name in ctx.mode.speed_configs:
        arch = stream_bench.architecture(ctx.shared, name)
        result = export_bench.bench_config(
            name, signal, ctx.mode.speed_repeats, arch=arch, profile=ctx.mode.profile
        )
        results.append(result.to_dict())
    figures = {
        "seconds": ctx.mode.speed_seconds,
        "repeats": ctx.mode.speed_repeats,
        "threads": export_bench.THREADS,
        "results": results,
    }
    plots.offline_speed(figures, ctx.out / "offline_speed.png")
    return figures


def capacity(ctx: Context) -> dict[str, Any]:
    precision = "fp16" if ctx.machine.cuda else "int8"
    folder = stream_bench.export_random(
        ctx.shared, ctx.work, ctx.mode.capacity_model, ("fp32", precision)
    )
    figures = service_bench.measure_capacity(
        folder,
        service_bench.dev_audio(ctx.shared),
        ctx.mode.capacity,
        ctx.work,
        precision=precision,
    )
    figures["model"] = ctx.mode.capacity_model
    plots.capacity(figures, ctx.out / "capacity.png")
    return figures


def triton(ctx: Context) -> dict[str, Any]:
    """Triton on CPU against the local backend: the capacity section's model and levels."""
    unavailable = triton_process.triton_unavailable()
    if unavailable is not None:
        reason = f"no Triton interpreter: {unavailable}"
        print(f"section triton skipped: {reason}", flush=True)
        return {"skipped": reason}
    setups = [triton_setup.parse_setup(s) for s in triton_setup.DEFAULT_SETUPS]
    folder = stream_bench.export_random(ctx.shared, ctx.work, ctx.mode.capacity_model)
    audio = service_bench.dev_audio(ctx.shared)
    figures = triton_measure.measure(folder, audio, ctx.mode.capacity, ctx.work / "triton", setups)
    figures["model"] = ctx.mode.capacity_model
    return figures


def frontend(ctx: Context) -> dict[str, Any]:
    folder = stream_bench.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    audio = service_bench.dev_audio(ctx.shared)
    plan = frontend_sweep.PLANS[ctx.mode.name]
    return frontend_sweep.measure(folder, audio, plan, ctx.work / "frontend")


def noise_section(ctx: Context) -> dict[str, Any]:
    folder = stream_bench.export_fixture(ctx.shared, ctx.work, ("fp32", "fp16", "int8"))
    return noise.measure(folder, ctx.tts, ctx.human)


def lm(ctx: Context) -> dict[str, Any]:
    return lm_bench.measure(ctx.shared, ctx.work, ctx.tts)


SECTION_RUNS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "fidelity": fidelity,
    "grid": grid,
    "speed": speed,
    "capacity": capacity,
    "triton": triton,
    "frontend": frontend,
    "lm": lm,
    "noise": noise_section,
}


# --- Markdown -----------------------------------------------------------------------------------

OFFLINE_LABELS = {
    "torch": "PyTorch fp32",
    "fp32": "ONNX fp32",
    "fp16": "ONNX fp16 (CPU)",
    "int8": "ONNX int8",
}


def fidelity_md(f: dict[str, Any]) -> str:
    n = f["utterances"]
    lines = [
        f"Fixture checkpoint `tts-en-ctc-small`, greedy CTC; WER/CER on {n['tts']} utterances of "
        f"`speech/dev/tts`, agreement on {n['human']} of `speech/dev/human`.",
        "",
        "| runtime | mode | WER | CER | human char agreement with offline (all / worst) |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for runtime, o in f["offline"].items():
        label = OFFLINE_LABELS.get(runtime, runtime)
        lines.append(f"| {label} | offline (whole utterance) | {o['wer']:.4f} | {o['cer']:.4f} | |")
    for precision, s in f["streaming"].items():
        lines.append(
            f"| ONNX {precision} | streaming, defaults, 20 ms frames | {s['tts_stream_wer']:.4f} "
            f"| {s['tts_stream_cer']:.4f} | {s['human_agreement']:.4f} / "
            f"{s['human_agreement_min']:.4f} |"
        )
    lines += [
        "",
        "Streaming through the engine against the engine's own offline run (same precision):",
        "",
        stream_bench.fidelity_table(f["streaming"]),
    ]
    return "\n".join(lines)


def grid_md(f: dict[str, Any]) -> str:
    return "\n".join(
        [
            "Fixture int8, tts set, gate off, one stream played in 20 ms frames; offline WER "
            f"{f['offline_wer']:.4f}. The plot puts WER against the p95 *word* latency (end of "
            "a word's audio to the first partial showing it): the latency a reader sees, which "
            "grows with the hop and the lookahead. The partial latency of the capacity section "
            "starts when the window's audio is complete, so on one stream it is inference time "
            "only (column `partial p95`).",
            "",
            "![latency/accuracy](latency_accuracy.png)",
            "",
            stream_bench.grid_table(f),
            "",
            "partial p95 per point (s): "
            + ", ".join(
                f"C{p['hop']:g}/L{p['left']:g}/R{p['lookahead']:g} {p['partial']['p95']:.3f}"
                for p in f["points"]
            ),
        ]
    )


def speed_md(f: dict[str, Any]) -> str:
    lines = [
        f"Random weights at true size, {f['seconds']:g} s of human dev speech, "
        f"{f['threads']} threads, median of {f['repeats']} timed run(s) after warm-up, every "
        "runtime loaded in one process and timed in turn. Ratios: how many times faster than "
        "the runtime named.",
        "",
        "![offline speed](offline_speed.png)",
        "",
        "| config | runtime | x real time | vs PyTorch eager | vs transformers pipeline "
        "| vs ORTModelForCTC |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in f["results"]:
        speeds = result["speeds"]
        for runtime in (r for r in export_bench.RUNTIMES if r in speeds):
            median = speeds[runtime]["median_s"]
            ratios = [
                f"{speeds[base]['median_s'] / median:.2f}x" if base in speeds else "n/a"
                for base in ("torch", "pipeline", "optimum")
            ]
            failed = " †" if runtime in result["export"]["failures"] else ""
            lines.append(
                f"| {result['name']} | {export_bench.RUNTIMES[runtime]}{failed} "
                f"| {speeds[runtime]['x_real_time']:.1f}x | {' | '.join(ratios)} |"
            )
    failures = [
        f"† {r['name']} {p}: failed validation on random weights ({why}); measured anyway"
        for r in f["results"]
        for p, why in r["export"]["failures"].items()
    ]
    return "\n".join(lines + (["", *failures] if failures else []))


def capacity_md(f: dict[str, Any]) -> str:
    lines = [
        f"Model: random-weight {f['model']} exported {f['precision']} ({f['provider']}); "
        "default stream settings; each client "
        f"sends {f['seconds']:g} s of the human dev speech as 16 kHz s16le in 20 ms frames "
        f"paced in real time, start phases spread over one hop; {f['layout']}. "
        "**Partial latency**: arrival of a `partial` message minus the moment the last "
        "sample its window needed was due (window end = (k+1) hop + lookahead + overhang); "
        "**final latency**: arrival of a `final` minus the moment its segment's end was due. "
        "The engine-alone rows run the same levels in-process (same scheduler settings, "
        "audio, phases and definitions, `bench.stream_sim`), interleaved with the server's. "
        f"A level holds when p95 partial latency <= {f['budget_s']} s and no stream failed. "
        "Caveats: a level slightly above capacity still holds while its backlog stays under "
        f"the budget, i.e. about {overload_tolerance(f):.0%} overload with "
        f"{f['seconds']:g} s streams; and this host's speed drifts (the raw ceiling measured "
        f"before and after: {f['ceiling_before']:.1f} and {f['ceiling_after']:.1f} streams), "
        "so compare the two paths at levels run close together.",
        "",
    ]
    if f.get("server_unavailable"):
        lines += [f"**Server not available**: {f['server_unavailable']}.", ""]
    else:
        lines += [
            f"Server: `{f.get('server_command', '?')}`; partial extents from the messages' "
            "`audio_end`.",
            "",
        ]
    lines += [
        "![capacity](capacity.png)",
        "",
        *service_bench.summary_lines(f),
        "",
        service_bench.capacity_table(f),
    ]
    return "\n".join(lines)


def overload_tolerance(f: dict[str, Any]) -> float:
    """Overload (offered / served - 1) whose backlog after ``seconds`` still fits the budget
    left above a light-load p95 of about 0.3 s."""
    return max(0.0, float(f["budget_s"]) - 0.3) / float(f["seconds"])


def frontend_md(f: dict[str, Any]) -> str:
    plan = f["plan"]
    return "\n".join(
        [
            "Instant model: the fixture's first window through onnxruntime, its logits reused for "
            "every later window, so only the frontend works (websocket I/O, JSON, resampling, "
            f"windowing, scheduling, CTC decoding). {plan['seconds']:g} s streams of human dev "
            "speech in real time from a separate client process; server CPU from /proc (the "
            "whole process tree) while the streams play, at the first level "
            f"({plan['first']} streams); a level holds at p95 partial latency <= "
            f"{f['budget_s']:g} s after the window's audio was complete. "
            "`python -m bench.frontend_bench --before LINK_TREE` adds an older checkout.",
            "",
            *frontend_tables.summary_lines(f),
            "",
            frontend_tables.table(f),
            "",
            frontend_tables.levels_table(f),
        ]
    )


SECTION_MD: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "fidelity": ("Fidelity", fidelity_md),
    "grid": ("Latency / accuracy", grid_md),
    "speed": ("Offline speed", speed_md),
    "capacity": ("Capacity: concurrent real-time streams", capacity_md),
    "triton": ("Through Triton on CPU vs local", triton_tables.markdown),
    "frontend": ("Frontend cost per stream (instant model)", frontend_md),
    "lm": ("Language model and hotwords", lm_bench.markdown),
    "noise": ("Gates under noise", noise.markdown),
}


def report_md(ctx: Context, figures: dict[str, Any]) -> str:
    mode = ctx.mode
    parts = [
        f"# streamasr benchmark report ({mode.name})",
        "",
        f"Generated by `python -m bench report --{mode.name}` in "
        f"{figures['wall_s'] / 60:.1f} min; raw figures in `report.json`.",
        "",
        "## Machine",
        "",
        ctx.machine.markdown(),
        "",
    ]
    if mode.leaves_out:
        parts += ["This mode leaves out:", "", *(f"- {x}" for x in mode.leaves_out), ""]
    for name in figures["sections"]:
        title, render = SECTION_MD[name]
        section = figures["sections"][name]
        parts += [f"## {title}", ""]
        if "error" in section:
            parts += [f"**Section failed**: `{section['error']}`", ""]
            continue
        parts += [render(section), "", f"({section['wall_s']:.0f} s)", ""]
    return "\n".join(parts)


# --- running ------------------------------------------------------------------------------------


def human_dir(shared: Path) -> Path:
    return shared / "speech" / "dev" / "human"


def load_inputs(ctx: Context) -> None:
    tts_dir = ctx.shared / "speech" / "dev" / "tts"
    ctx.tts = stream_bench.load_set(tts_dir)[: ctx.mode.tts]
    ctx.tts_files = [path for path, _ in stream_bench.dev_set(tts_dir)][: ctx.mode.tts]
    ctx.human = stream_bench.load_set(human_dir(ctx.shared))[: ctx.mode.human]


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
            section = SECTION_RUNS[name](ctx)
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
    logging.getLogger("streamasr.server.stream").setLevel(logging.ERROR)
    mode = MODES[args.mode or "full"]
    figures = run_report(args.shared, args.work, args.out, mode, args.sections)
    print("\n".join(headline(figures)))
    print(f"report: {args.out / 'report.md'}")
    return 1 if any("error" in s for s in figures["sections"].values()) else 0
