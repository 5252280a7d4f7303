"""The benchmark report's Markdown: one renderer per section and the whole report.md."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..export import speed as export_speed
from ..punctuation import section as punctuation_section
from ..service import capacity as service_bench
from ..service import frontend_sweep, frontend_tables
from ..stream import accuracy as stream_accuracy
from ..stream import grid as stream_grid
from ..stream import lm as lm_bench
from ..stream import noise
from ..triton import tables as triton_tables
from .sections import Context

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
        stream_accuracy.fidelity_table(f["streaming"]),
    ]
    return "\n".join(lines)


def grid_md(f: stream_grid.GridFigures) -> str:
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
            stream_grid.grid_table(f),
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
        for runtime in (r for r in export_speed.RUNTIMES if r in speeds):
            median = speeds[runtime]["median_s"]
            ratios = [
                f"{speeds[base]['median_s'] / median:.2f}x" if base in speeds else "n/a"
                for base in ("torch", "pipeline", "optimum")
            ]
            failed = " †" if runtime in result["export"]["failures"] else ""
            lines.append(
                f"| {result['name']} | {export_speed.RUNTIMES[runtime]}{failed} "
                f"| {speeds[runtime]['x_real_time']:.1f}x | {' | '.join(ratios)} |"
            )
    failures = [
        f"† {r['name']} {p}: failed validation on random weights ({why}); measured anyway"
        for r in f["results"]
        for p, why in r["export"]["failures"].items()
    ]
    return "\n".join(lines + (["", *failures] if failures else []))


def capacity_md(f: service_bench.CapacityFigures) -> str:
    lines = [
        f"Model: random-weight {f['model']} exported {f['precision']} ({f['provider']}); "
        "default stream settings; each client "
        f"sends {f['seconds']:g} s of the human dev speech as 16 kHz s16le in 20 ms frames "
        f"paced in real time, start phases spread over one hop; {f['layout']}. "
        "**Partial latency**: arrival of a `partial` message minus the moment the last "
        "sample its window needed was due (window end = (k+1) hop + lookahead + overhang); "
        "**final latency**: arrival of a `final` minus the moment its segment's end was due. "
        "The engine-alone rows run the same levels in-process (same scheduler settings, "
        "audio, phases and definitions, `bench.stream.sim`), interleaved with the server's. "
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
        service_bench.capacity_table(f["levels"]),
    ]
    return "\n".join(lines)


def overload_tolerance(f: service_bench.CapacityFigures) -> float:
    """Overload (offered / served - 1) whose backlog after ``seconds`` still fits the budget
    left above a light-load p95 of about 0.3 s."""
    return max(0.0, float(f["budget_s"]) - 0.3) / float(f["seconds"])


def frontend_md(f: frontend_sweep.FrontendFigures) -> str:
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
            "`python -m bench frontend_bench --before LINK_TREE` adds an older checkout.",
            "",
            "Beside it, the real configurations (same clients, levels and energy gate, "
            f"{plan['frames_ms'][0]} ms frames, one worker, the fixture exported int8): "
            "**in-process**, the model in the server's own process (its CPU counts the model "
            "too), and **Triton**, `asr-server --inference triton://...` in front of one local "
            "`asr-triton` (the server process's CPU: the frontend and its gRPC client, which is "
            "what a frontend host spends per stream; Triton's own CPU is not counted). Streams "
            "per core = 1000 / (ms CPU per audio second per stream).",
            "",
            "![frontend cost](frontend.png)",
            "",
            *frontend_tables.summary_lines(f),
            "",
            frontend_tables.table(f),
            "",
            frontend_tables.levels_table(f),
        ]
    )


SECTION_MD: dict[str, tuple[str, Callable[[Any], str]]] = {
    # each renderer takes its own section's figures (the type its ``SECTION_RUNS`` entry returns)
    "fidelity": ("Fidelity", fidelity_md),
    "grid": ("Latency / accuracy", grid_md),
    "speed": ("Offline speed", speed_md),
    "capacity": ("Capacity: concurrent real-time streams", capacity_md),
    "triton": ("Through Triton on CPU vs local", triton_tables.markdown),
    "frontend": ("Frontend cost per stream (instant model, in-process, Triton)", frontend_md),
    "lm": ("Language model and hotwords", lm_bench.markdown),
    "noise": ("Gates under noise", noise.markdown),
    "punctuation": ("Punctuation and casing", punctuation_section.markdown),
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
