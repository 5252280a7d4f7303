"""The report's figures, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from ..common.levels import Latency
from ..export.speed import RUNTIMES
from ..service import capacity as service_bench
from ..service import frontend_sweep
from ..stream import grid as stream_grid

DPI = 110


def latency_accuracy(
    grid: stream_grid.GridFigures, default: tuple[float, float, float], path: Path
) -> Path:
    """WER against p95 word latency (and frame latency) for every point of the grid."""
    points = grid["points"]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    series: tuple[tuple[Literal["word", "frame"], str, str], ...] = (
        ("word", "o", "word latency p95 (shown in a partial)"),
        ("frame", "x", "frame latency p95"),
    )
    for key, marker, label in series:
        ax.scatter(
            [p[key]["p95"] for p in points],
            [p["wer"] for p in points],
            marker=marker,
            label=label,
            alpha=0.8,
        )
    for p in points:
        ax.annotate(
            f"C{p['hop']:g} L{p['left']:g} R{p['lookahead']:g}",
            (p["word"]["p95"], p["wer"]),
            fontsize=6,
            alpha=0.7,
            xytext=(3, 2),
            textcoords="offset points",
        )
    chosen = [p for p in points if (p["hop"], p["left"], p["lookahead"]) == default]
    if chosen:
        ax.scatter(
            [chosen[0]["word"]["p95"]],
            [chosen[0]["wer"]],
            s=160,
            facecolors="none",
            edgecolors="red",
            label="defaults",
        )
    ax.axhline(grid["offline_wer"], color="grey", linestyle="--", label="offline WER")
    ax.set_xlabel("p95 latency, s (single stream)")
    ax.set_ylabel("WER")
    ax.set_title("Latency / accuracy over hop C, left context L, lookahead R")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def offline_speed(speed: dict[str, Any], path: Path) -> Path:
    """Audio seconds per wall second of every runtime, per architecture (log scale)."""
    results = speed["results"]
    runtimes = [r for r in RUNTIMES if any(r in res["speeds"] for res in results)]
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(results) * len(runtimes) / 3), 5))
    width = 0.8 / max(1, len(runtimes))
    for i, runtime in enumerate(runtimes):
        xs, heights = [], []
        for j, result in enumerate(results):
            if runtime in result["speeds"]:
                xs.append(j + (i - (len(runtimes) - 1) / 2) * width)
                heights.append(result["speeds"][runtime]["x_real_time"])
        bars = ax.bar(xs, heights, width, label=RUNTIMES[runtime])
        ax.bar_label(bars, [f"{h:.0f}" if h >= 10 else f"{h:.1f}" for h in heights], fontsize=7)
    ax.set_xticks(range(len(results)), [r["name"] for r in results])
    ax.set_ylabel("audio s per wall s (x real time)")
    ax.set_title(f"Offline speed, {speed['seconds']:g} s of audio, {speed['threads']} threads")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def capacity(figures: service_bench.CapacityFigures, path: Path) -> Path:
    """p50/p95 partial latency and p95 final latency against concurrent streams, for the server
    and the engine alone, with the budget and the raw onnxruntime ceiling; below, the server's
    CPU utilisation and resident memory."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, height_ratios=(3, 2))
    _latency_panel(top, figures)
    _usage_panel(bottom, figures)
    bottom.set_xlabel("concurrent streams")
    bottom.grid(alpha=0.3)
    return _save(fig, path)


def _latency_panel(top: Any, figures: service_bench.CapacityFigures) -> None:
    """Latency quantiles per path and level, the budget and the raw ceilings."""
    styles = {"server": "tab:blue", "engine": "tab:orange"}
    for name, levels in figures["levels"].items():
        ns = [int(n) for n in levels]
        color = styles.get(name, "tab:green")
        label = "server (websocket)" if name == "server" else "engine alone"
        curves: tuple[tuple[Latency, Literal["p50", "p95"], str, float], ...] = (
            ("partial", "p95", "o-", 1.0),
            ("partial", "p50", "o:", 0.6),
            ("final", "p95", "s--", 0.4),
        )
        for kind, q, style, alpha in curves:
            top.plot(
                ns,
                [lv[kind][q] for lv in levels.values()],
                style,
                color=color,
                alpha=alpha,
                label=f"{label}: {kind} {q}",
            )
    top.axhline(figures["budget_s"], color="red", linestyle="--", label="budget (p95)")
    most = max((int(n) for levels in figures["levels"].values() for n in levels), default=1)
    ceilings = (
        ("ceiling_before", figures.get("ceiling_before", math.nan), "-"),
        ("ceiling_after", figures.get("ceiling_after", math.nan), ":"),
        ("ceiling_batched", figures.get("ceiling_batched", math.nan), "-."),
    )
    for key, value, style in ceilings:
        if math.isnan(value):
            continue
        if value > 2 * most + 2:  # far off the levels run (a tiny model): say it, don't draw it
            top.annotate(
                f"raw onnxruntime ceiling ({key.split('_')[1]}): {value:.0f} streams",
                (0.02, 0.95 if key == "ceiling_before" else 0.89),
                xycoords="axes fraction",
                fontsize=8,
            )
        else:
            top.axvline(
                value,
                color="black",
                linestyle=style,
                alpha=0.6,
                label=f"raw onnxruntime ceiling ({key.split('_')[1]})",
            )
    top.set_yscale("log")
    top.set_ylabel("latency, s")
    top.set_title(
        f"Concurrent real-time streams, {figures.get('model', '')} {figures['precision']}\n"
        f"{figures['layout']}",
        fontsize=9,
    )
    top.legend(fontsize=6, loc="upper left")
    top.grid(alpha=0.3)


def _usage_panel(bottom: Any, figures: service_bench.CapacityFigures) -> None:
    """The server's CPU, its clients' CPU and its resident memory per level."""
    server = figures["levels"].get("server", {})
    if server:
        ns = [int(n) for n in server]
        bottom.plot(
            ns,
            [100 * lv.get("cpu", math.nan) for lv in server.values()],
            "o-",
            label="server CPU, % of all cores",
        )
        bottom.plot(
            ns,
            [100 * lv.get("client_cpu", math.nan) for lv in server.values()],
            "x:",
            label="clients' CPU (same host), %",
        )
        bottom.set_ylabel("CPU %")
        memory = bottom.twinx()
        memory.plot(
            ns,
            [lv.get("rss_mib", math.nan) for lv in server.values()],
            "s--",
            color="tab:purple",
            label="server RSS, MiB",
        )
        memory.set_ylabel("RSS, MiB")
        memory.legend(fontsize=7, loc="lower right")
        bottom.legend(fontsize=7, loc="upper left")
    else:
        bottom.text(
            0.5,
            0.5,
            figures.get("server_unavailable") or "no server run",
            ha="center",
            va="center",
            transform=bottom.transAxes,
        )


def frontend(figures: frontend_sweep.FrontendFigures, path: Path) -> Path:
    """CPU per audio second per stream of every setup (instant model, in-process, Triton), with
    the streams per core it gives; a setup that could not run is named with its reason."""
    rows = figures["setups"]
    missing = figures["unavailable"]
    labels = [row["label"] for row in rows] + list(missing)
    costs = [row["cpu_ms_per_audio_s"] for row in rows] + [0.0] * len(missing)
    colors = {"instant": "tab:blue", "local": "tab:orange", "triton": "tab:green"}
    fig, ax = plt.subplots(figsize=(10, 1.6 + 0.6 * len(labels)))
    bars = ax.barh(
        range(len(labels)),
        costs,
        color=[colors[row["model"]] for row in rows] + ["lightgrey"] * len(missing),
    )
    notes = [f"{row['streams_per_core']:.0f} streams per core" for row in rows]
    reasons = [textwrap.fill(f"not measured: {why}", 70) for why in missing.values()]
    ax.bar_label(bars, notes + reasons, fontsize=7)
    ax.set_yticks(range(len(labels)), [textwrap.fill(x, 34) for x in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"ms of server CPU per audio second per stream, at {figures['plan']['first']} streams\n"
        "(in-process: frontend and model; Triton: the frontend's process only)"
    )
    ax.set_title("Frontend cost per stream")
    ax.set_xlim(0, 1.4 * max(costs, default=1.0) or 1.0)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
