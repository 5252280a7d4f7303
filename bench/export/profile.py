"""export_bench's profiling by part: share of onnxruntime's node time spent in the conv
encoder, the positional conv, the transformer and the rest."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from .results import Workload
from .speed import WARM_UP_RUNS, cpu_session, session_options

PROFILED = ("int8", "fp32")
PARTS = ("conv encoder", "positional conv", "transformer", "other")


def profiling_options(prefix: Path) -> Any:
    """Session settings that also write a profile trace and the optimised graph."""
    options = session_options()
    options.enable_profiling = True
    options.profile_file_prefix = str(prefix)
    options.optimized_model_filepath = str(optimized_graph(prefix))
    data = optimized_graph(prefix).name + ".data"
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", data
    )
    return options


def optimized_graph(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".optimized.onnx")


def part_of(node: str) -> str:
    """Which part of the network a graph node belongs to, by its scoped name."""
    if "pos_conv" in node:
        return "positional conv"
    if "feature_extractor" in node or "conv_layers" in node:
        return "conv encoder"
    if "encoder/layers." in node:
        return "transformer"
    return "other"


def profile_split(path: Path, work: Workload, scratch: Path) -> dict[str, float]:
    """Share of node time per part of the network in the run after the warm-up runs."""
    prefix = scratch / f"profile_{path.stem}"
    session = cpu_session(path, profiling_options(prefix))
    for _ in range(WARM_UP_RUNS + 1):
        session.run(None, {work.name: work.x})
    trace = Path(session.end_profiling())
    times = last_run_node_times(json.loads(trace.read_text(encoding="utf-8")))
    return shares(times, node_scopes(optimized_graph(prefix)))


def node_scopes(graph: Path) -> dict[str, str]:
    """The scoped name of each node of an optimised graph: its own, or for nodes that
    onnxruntime created by fusion (``Gelu_token_3``), the name of their first output."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    return {
        node.name: node.name if node.name.startswith("/") else next(iter(node.output), node.name)
        for node in model.graph.node
    }


def last_run_node_times(events: list[dict[str, Any]]) -> dict[str, float]:
    """Microseconds per node in the trace's last ``model_run``."""
    last = [e for e in events if e.get("name") == "model_run"][-1]
    start, end = last["ts"], last["ts"] + last["dur"]
    times: dict[str, float] = defaultdict(float)
    for event in events:
        label = str(event.get("name", ""))
        node = event.get("cat") == "Node" and label.endswith("_kernel_time")
        if node and start <= event["ts"] <= end:
            times[label.removesuffix("_kernel_time")] += float(event["dur"])
    return times


def shares(times: dict[str, float], scopes: dict[str, str]) -> dict[str, float]:
    """Fraction of the total per part of the network."""
    totals = dict.fromkeys(PARTS, 0.0)
    for node, micros in times.items():
        totals[part_of(scopes.get(node, node))] += micros
    whole = sum(totals.values()) or 1.0
    return {part: value / whole for part, value in totals.items()}
