"""export_bench's Markdown output: per-architecture sections (export steps, speeds, profile
split) and the summary table."""

from __future__ import annotations

from streamasr.server.manifest import PRECISIONS

from .results import BenchOptions, ConfigResult, Speed
from .speed import RUNTIMES, THREADS


def x_real_time(result: ConfigResult, runtime: str) -> str:
    speed = result.speeds.get(runtime)
    return f"{speed.x_real_time:.1f}x" if speed is not None else "n/a"


def speedup(result: ConfigResult, runtime: str, baseline: str) -> str:
    """How many times faster ``runtime`` is than ``baseline``."""
    fast, slow = result.speeds.get(runtime), result.speeds.get(baseline)
    if fast is None or slow is None:
        return "n/a"
    return f"{slow.median_s / fast.median_s:.2f}x"


def size_cell(result: ConfigResult, precision: str) -> str:
    """MB of one precision, with its share of fp32 and a mark when it failed validation."""
    sizes = result.export.bytes
    mark = " †" if precision in result.export.failures else ""
    if precision == "fp32":
        return f"{sizes[precision] / 1e6:,.0f}{mark}"
    share = 100 * sizes[precision] / sizes["fp32"]
    return f"{sizes[precision] / 1e6:,.0f} ({share:.0f}%){mark}"


def summary_table(results: list[ConfigResult]) -> str:
    """One row per architecture, for the README."""
    lines = [
        "| config | params | export s | MB fp32 | MB fp16 | MB int8 | PyTorch eager "
        "| transformers pipeline | ORTModelForCTC | ours fp32 | ours int8 | int8 vs eager "
        "| int8 vs ORTModelForCTC |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for r in results:
        cells = [
            r.name,
            f"{r.params / 1e6:.0f}M",
            f"{r.export.total_s:.0f}",
            *(size_cell(r, p) for p in PRECISIONS),
            *(x_real_time(r, k) for k in ("torch", "pipeline", "optimum", "fp32", "int8")),
            speedup(r, "int8", "torch"),
            speedup(r, "int8", "optimum"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def speed_table(result: ConfigResult) -> str:
    """Every runtime of one architecture side by side."""
    lines = [
        "| runtime | median s | runs s | x real time | vs PyTorch eager | vs ORTModelForCTC "
        "| other processes' CPU share |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for runtime, speed in sorted(result.speeds.items(), key=lambda kv: list(RUNTIMES).index(kv[0])):
        runs = ", ".join(f"{t:.2f}" for t in speed.runs_s)
        cells = [
            RUNTIMES[runtime] + (" †" if runtime in result.export.failures else ""),
            f"{speed.median_s:.2f}",
            runs,
            f"{speed.x_real_time:.1f}x",
            speedup(result, runtime, "torch"),
            speedup(result, runtime, "optimum"),
            busy_cell(speed),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def busy_cell(speed: Speed) -> str:
    """The largest share of the CPUs other processes used during a kept run; retaken runs."""
    known = [b for b in speed.others_busy if b is not None]
    share = f"{100 * max(known):.0f}%" if known else "?"
    return f"{share} ({speed.retakes} retaken)" if speed.retakes else share


def export_table(result: ConfigResult) -> str:
    """The pipeline's steps with their seconds."""
    lines = ["| export step | s |", "| --- | ---: |"]
    lines += [f"| {step} | {s:.1f} |" for step, s in result.export.steps_s.items()]
    lines.append(f"| total (wall) | {result.export.total_s:.1f} |")
    if result.optimum_export_s is not None:
        lines.append(f"| for comparison: optimum's fp32 export | {result.optimum_export_s:.1f} |")
    return "\n".join(lines)


def split_line(precision: str, split: dict[str, float]) -> str:
    """E.g. ``int8 time: conv encoder 41%, positional conv 6%, transformer 50%, other 3%``."""
    parts = ", ".join(f"{part} {100 * share:.0f}%" for part, share in split.items())
    return f"{precision} time: {parts}"


def config_report(result: ConfigResult, opts: BenchOptions) -> str:
    """Everything measured for one architecture."""
    failures = [f"† {p} failed validation: {why}" for p, why in result.export.failures.items()]
    if failures:
        failures.append("  († files were converted again outside the pipeline and measured anyway)")
    rss = ", ".join(f"after {stage} {mib:,.0f} MiB" for stage, mib in result.peak_rss_mib.items())
    return "\n\n".join(
        [
            f"### {result.name} ({result.params / 1e6:.1f}M parameters, {opts.seconds:g} s of "
            f"audio, median of {opts.repeats}, {THREADS} threads, PyTorch attention: "
            f"{result.torch_attention})",
            export_table(result),
            speed_table(result),
            "\n".join(split_line(p, s) for p, s in result.splits.items()),
            *(["\n".join(failures)] if failures else []),
            f"peak RSS of the process: {rss}",
        ]
    )


def report(results: list[ConfigResult], opts: BenchOptions) -> str:
    """The printed output: one section per architecture, then the summary table."""
    sections = [config_report(r, opts) for r in results]
    return "\n\n".join([*sections, "### Summary (x real time on CPU)", summary_table(results)])
