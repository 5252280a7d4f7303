"""The Triton benchmark's Markdown: summary lines, the setups' commands, the levels and the
CPU by process."""

from __future__ import annotations

from typing import Any

from ..service import capacity as service_bench
from .ratios import RATIO_GOAL


def summary_lines(figures: dict[str, Any]) -> list[str]:
    if "skipped" in figures:
        return [f"- Triton on CPU: skipped ({figures['skipped']})"]
    lines = [
        f"- raw onnxruntime int8 ceiling (2 threads x 1): {figures['ceiling_before']:.1f} "
        f"streams before, {figures['ceiling_after']:.1f} after"
    ]
    for label, held in figures["held"].items():
        line = f"- {label}: holds {held} streams (p95 partial <= {figures['budget_s']:g} s)"
        ratio = figures["ratios"].get(label)
        if ratio is not None:
            line += (
                f", {ratio['ratio']:.0%} of {ratio['against']} (goal >= {RATIO_GOAL:.0%}: "
                f"{'met' if ratio['met'] else 'NOT met'})"
            )
            if "cpu_ratio" in ratio:
                levels = ", ".join(ratio["cpu_ratio_levels"])
                line += (
                    f"; CPU per stream {ratio['cpu_ratio']:.2f}x the local setup's (median at "
                    f"levels {levels}), so {1 / ratio['cpu_ratio']:.0%} of its streams where "
                    "the setups' cores are their own and capacity is CPU-bound"
                )
        lm = figures.get("lm_ratios", {}).get(label)
        if lm is not None:
            line += f", {lm['ratio']:.0%} of {lm['against']}'s (greedy)"
            if "cpu_ratio" in lm:
                levels = ", ".join(lm["cpu_ratio_levels"])
                line += (
                    f"; CPU per stream {lm['cpu_ratio']:.2f}x greedy's (median at levels {levels})"
                )
        w = figures["setups"].get(label, {}).get("windows")
        if w:
            line += f"; windows {w['left_s']:g}/{w['hop_s']:g}/{w['lookahead_s']:g} s"
        lines.append(line)
    return lines


def commands_lines(figures: dict[str, Any]) -> list[str]:
    lines = []
    for label, s in figures.get("setups", {}).items():
        commands = [s["triton_command"], s["server_command"]] if s["triton_command"] else []
        commands = commands or [s["server_command"]]
        lines.append(f"- {label}: " + " + ".join(f"`{c}`" for c in commands))
    return lines


def markdown(figures: dict[str, Any]) -> str:
    if "skipped" in figures:
        return f"**Skipped**: {figures['skipped']}."
    return "\n".join(
        [
            f"Model: {figures.get('model', '?')} (an architecture with random weights, or "
            "`fixture`, the trained tts-en-ctc-small); the capacity section's "
            f"clients, levels and criterion ({figures['seconds']:g} s real-time streams, 20 ms "
            f"frames; a level holds at p95 partial latency <= {figures['budget_s']:g} s with no "
            "stream failed); the setups' levels interleaved in one run on the same "
            f"{figures['cores']} cores. CPU: the whole setup (frontends, Triton and its model "
            "stubs) as a share of all cores. Goal: Triton >= "
            f"{RATIO_GOAL:.0%} of the local backend's streams at the same precision "
            "(`python -m bench triton_bench` runs it alone, `--setups` adds knobs).",
            "",
            *summary_lines(figures),
            "",
            "Setups:",
            "",
            *commands_lines(figures),
            "",
            service_bench.capacity_table(figures["levels"]),
            "",
            "CPU by process, ms per audio second per stream:",
            "",
            cpu_table(figures),
        ]
    )


def cpu_table(figures: dict[str, Any]) -> str:
    """Each level's CPU per audio second per stream, by role (frontends, Triton's processes)."""
    roles = sorted(
        {
            r
            for levels in figures["levels"].values()
            for f in levels.values()
            for r in f.get("cpu_ms_per_audio_s", {})
        },
        key=lambda r: (r != "frontends", r),
    )
    lines = [
        "| path | streams | " + " | ".join(roles) + " | total |",
        "| --- | ---: | " + " | ".join("---:" for _ in roles) + " | ---: |",
    ]
    for label, levels in figures["levels"].items():
        for n, f in levels.items():
            ms = f.get("cpu_ms_per_audio_s", {})
            cells = [f"{ms[r]:.2f}" if r in ms else "" for r in roles]
            lines.append(f"| {label} | {n} | {' | '.join(cells)} | {sum(ms.values()):.2f} |")
    return "\n".join(lines)
