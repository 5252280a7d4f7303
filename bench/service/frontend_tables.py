"""The frontend benchmark's tables: cost and streams held per setup (the setups that could not
run named, with the reason), every level, summary."""

from __future__ import annotations

import math

from .frontend_server import Setup
from .frontend_sweep import FrontendFigures, holds

GOAL_STREAMS_PER_CORE = 300
"""Issue 10: real-time streams per CPU core of frontend work with 20 ms frames."""
ISSUE_FIGURES_MS = {20: 6.7, 100: 3.1}
"""Event-loop CPU ms per audio second measured from outside when the issue was filed."""


def table(figures: FrontendFigures) -> str:
    lines = [
        "| setup | server CPU ms per audio s per stream | of it event loops | streams per "
        f"core (1 / cost) | streams held (p95 partial <= {figures['budget_s']:g} s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in figures["setups"]:
        lines.append(
            f"| {row['label']} | {row['cpu_ms_per_audio_s']:.2f} "
            f"| {row['loop_cpu_ms_per_audio_s']:.2f} | {row['streams_per_core']:.0f} "
            f"| {row['held']} |"
        )
    for label, reason in figures["unavailable"].items():
        lines.append(f"| {label} | not measured: {reason} | | | |")
    return "\n".join(lines)


def levels_table(figures: FrontendFigures) -> str:
    lines = [
        "| setup | streams | partial p50 s | partial p95 s | client late p95 s | server CPU "
        "(all cores) | client CPU (all cores) | CPU ms / audio s | holds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in figures["setups"]:
        for n, f in sorted(row["levels"].items(), key=lambda kv: int(kv[0])):
            fails = f" ({f['failed_streams']} failed)" if f["failed_streams"] else ""
            lines.append(
                f"| {row['label']} | {n} | {f['partial']['p50']:.3f} | {f['partial']['p95']:.3f} "
                f"| {f['late']['p95']:.3f} | {f['server_cpu']:.0%} | {f['client_cpu']:.0%} "
                f"| {f['cpu_per_audio_s'] * 1000:.2f} | {'yes' if holds(f) else 'no'}{fails} |"
            )
    return "\n".join(lines)


def summary_lines(figures: FrontendFigures) -> list[str]:
    lines = []
    by_label = {row["label"]: row for row in figures["setups"]}
    for row in figures["setups"]:
        if row["tree"] != "after" or row["workers"] != 1 or row["model"] != "instant":
            continue
        goal = ""
        if row["frame_ms"] == 20:
            met = row["streams_per_core"] >= GOAL_STREAMS_PER_CORE
            goal = f" (goal >= {GOAL_STREAMS_PER_CORE}: {'met' if met else 'NOT met'})"
        before = by_label.get(Setup("before", row["frame_ms"], 1).label)
        ratio = ""
        if before is not None:
            cost = row["cpu_ms_per_audio_s"] / before["cpu_ms_per_audio_s"]
            ratio = (
                f"; before: {before['cpu_ms_per_audio_s']:.2f} ms, "
                f"{before['streams_per_core']:.0f} per core, held {before['held']}; "
                f"after / before cost {cost:.2f}"
            )
        lines.append(
            f"- {row['frame_ms']} ms frames: {row['cpu_ms_per_audio_s']:.2f} ms server CPU per "
            f"audio second per stream, {row['streams_per_core']:.0f} streams per core{goal}; "
            f"one worker holds {row['held']}{ratio} (issue, event loop only: "
            f"{ISSUE_FIGURES_MS.get(row['frame_ms'], math.nan)} ms)"
        )
    lines += model_lines(figures)
    for row in figures["setups"]:
        if row["workers"] > 1:
            one = by_label.get(Setup(row["tree"], row["frame_ms"], 1).label)
            scale = f" ({row['held'] / one['held']:.2f}x one worker)" if one and one["held"] else ""
            lines.append(f"- {row['label']}: holds {row['held']}{scale}")
    return lines


MODEL_COSTS = {
    "local": "server CPU (frontend and model)",
    "triton": "frontend CPU (the server process: frontend and gRPC client; Triton's not counted)",
}


def model_lines(figures: FrontendFigures) -> list[str]:
    """One line per real configuration: its cost beside the instant model's at its frame size,
    or why it was not measured."""
    rows = [r for r in figures["setups"] if r["model"] != "instant"]
    instant = {
        r["frame_ms"]: r
        for r in figures["setups"]
        if r["model"] == "instant" and r["tree"] == "after" and r["workers"] == 1
    }
    lines = []
    for row in rows:
        base = instant.get(row["frame_ms"])
        ratio = ""
        if base is not None:
            times = row["cpu_ms_per_audio_s"] / base["cpu_ms_per_audio_s"]
            ratio = f", {times:.2f}x the instant model's"
        lines.append(
            f"- {row['label']}: {row['cpu_ms_per_audio_s']:.2f} ms {MODEL_COSTS[row['model']]} "
            f"per audio second per stream{ratio}, {row['streams_per_core']:.0f} streams per core; "
            f"one worker holds {row['held']}"
        )
    lines += [
        f"- {label}: NOT MEASURED ({reason})" for label, reason in figures["unavailable"].items()
    ]
    return lines
