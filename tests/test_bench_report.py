"""The benchmark report end to end in its smoke mode, and the service benchmark's bookkeeping."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.common.levels import Criterion, Levels, held, interleaved, level_sequence
from bench.common.proc import read_usage
from bench.service.clients import ClientRun, audio_extent
from bench.service.frontend_server import Setup
from bench.service.frontend_sweep import PLANS, FrontendFigures, setups, unavailable
from bench.service.frontend_tables import summary_lines, table
from bench.service.levels import holds
from bench.triton.process import triton_unavailable

from .timeouts import timeout

REPO = Path(__file__).resolve().parents[1]
SECTIONS = (
    "## Machine",
    "## Fidelity",
    "## Latency / accuracy",
    "## Offline speed",
    "## Capacity",
    "## Punctuation and casing",
)
PLOTS = ("latency_accuracy.png", "offline_speed.png", "capacity.png", "frontend.png")


def test_smoke_report_writes_every_section(shared_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    command = [sys.executable, "-m", "bench", "report", "--smoke", "--out", str(out)]
    command += ["--shared", str(shared_dir), "--work", str(tmp_path / "work")]
    done = subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout(600)
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = (out / "report.md").read_text(encoding="utf-8")
    for title in SECTIONS:
        assert title in report
    assert "Section failed" not in report
    assert "SMOKE TEST" in report
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000, name
        assert f"]({name})" in report

    figures = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert figures["machine"]["cores"] >= 1
    assert figures["machine"]["packages"]["onnxruntime"]
    sections = figures["sections"]
    assert set(sections["fidelity"]["offline"]) == {"torch", "fp32", "fp16", "int8"}
    assert {"fp32", "int8"} <= set(sections["fidelity"]["streaming"])
    assert len(sections["grid"]["points"]) == 2
    speeds = sections["speed"]["results"][0]["speeds"]
    assert {"torch", "pipeline", "optimum", "fp32", "int8"} <= set(speeds)
    capacity = sections["capacity"]
    assert list(capacity["levels"]["engine"]) == ["1", "2"]
    assert capacity["server_unavailable"] is None
    server = capacity["levels"]["server"]
    assert list(server) == ["1", "2"]
    for level in server.values():
        assert level["failed_streams"] == 0, level["errors"]
        assert level["partial"]["n"] > 0 and level["final"]["n"] > 0
        assert level["partial"]["p95"] > 0
        assert level["cpu"] > 0 and level["peak_rss_mib"] > 10
    assert "| server | 2 |" in report

    frontend = sections["frontend"]
    rows = {row["model"]: row for row in frontend["setups"] if row["frame_ms"] == 20}
    assert {"instant", "local"} <= set(rows)
    reason = triton_unavailable()  # the Triton row is measured, or says why it is not
    if reason is None:
        assert "triton" in rows and frontend["unavailable"] == {}
    else:
        assert "triton" not in rows
        assert list(frontend["unavailable"].values()) == [f"no Triton interpreter: {reason}"]
        assert "not measured: no Triton interpreter" in report
    for model, row in rows.items():
        assert row["cpu_ms_per_audio_s"] > 0, model
        assert row["streams_per_core"] == pytest.approx(1000 / row["cpu_ms_per_audio_s"])
        assert all(level["failed_streams"] == 0 for level in row["levels"].values()), model
        assert f"| {row['label']} | {row['cpu_ms_per_audio_s']:.2f} |" in report

    punctuation = sections["punctuation"]
    held_out = punctuation["held_out"]
    assert held_out["segments"] == 40
    assert set(held_out["scores"]) == {"baseline", "int8 stream"}
    assert set(held_out["f1_gain"]) == {".", ",", "?", "upper"}
    engine = punctuation["engine"]
    assert engine["utterances"] == 3 and engine["words_per_pass"] > 0
    latency = engine["final_latency_s"]  # each utterance ends in a final at least
    assert latency["caption_step"]["n"] >= 3 and latency["paired"]["n"] >= 3
    assert engine["model_calls_per_pass"] > 0  # the model ran in the batcher thread
    assert engine["cpu_per_audio_s"]["batcher"] >= 0  # thread CPU ticks: 0 for a short smoke run
    assert engine["base"]["model"] == "tiny" and engine["base"]["cpu_per_audio_s"] > 0


def drive(sequence: Levels, limit: int) -> list[int]:
    """Run a level sequence against a system that holds up to ``limit`` streams."""
    tried = [next(sequence)]
    try:
        while True:
            tried.append(sequence.send(tried[-1] <= limit))
    except StopIteration:
        return tried


def test_level_sequence_climbs_then_bisects() -> None:
    tried = drive(level_sequence([1, 5, 8], step=3, most=60), limit=12)
    assert tried == [1, 5, 8, 11, 14, 12, 13]
    assert drive(level_sequence([1, 5], step=3, most=60), limit=2) == [1, 5, 3, 2]
    assert drive(level_sequence([1, 2], step=1, most=0, refine=0), limit=0) == [1]
    assert drive(level_sequence([1, 4], step=4, most=10), limit=100) == [1, 4, 8]


def test_held_is_the_top_of_the_unbroken_run() -> None:
    def level(p95: float, failed: int = 0) -> dict[str, object]:
        return {"partial": {"p50": p95 / 2, "p95": p95, "n": 10}, "failed_streams": failed}

    levels = {"1": level(0.1), "8": level(0.4), "10": level(2.0), "9": level(1.2)}
    assert held(levels, holds) == 9
    assert held({"1": level(0.1), "2": level(0.1, failed=1)}, holds) == 1
    assert held({"1": level(float("nan"))}, holds) == 0
    assert held(levels, Criterion("partial", 0.3)) == 1
    skipped = {"1": level(0.1), "2": {"streams": 2, "skipped": "time budget"}, "3": level(0.2)}
    assert held(skipped, holds) == 3


def test_interleaved_runs_each_path_in_turn_until_the_time_is_out() -> None:
    """Two paths, one level of each in turn; each level's p95 is its stream count (holds up to
    the path's limit); after four levels run, the time budget is spent."""
    order: list[tuple[str, int]] = []

    def path(name: str, limit: int) -> Callable[[int], dict[str, Any]]:
        def run(n: int) -> dict[str, Any]:
            order.append((name, n))
            return {"streams": n, "final": {"p95": 0.5 if n <= limit else 2.0}}

        return run

    levels = interleaved(
        {"a": path("a", 3), "b": path("b", 10)},
        lambda: level_sequence([2, 4], step=2, most=20),
        Criterion("final", 1.0),
        describe=lambda level: "",
        out_of_time=lambda: len(order) >= 4,
    )
    assert order == [("a", 2), ("b", 2), ("a", 4), ("b", 4)]
    assert list(levels["a"]) == ["2", "3", "4"]  # by stream count; 3 was skipped
    assert levels["a"]["3"] == {"streams": 3, "skipped": "time budget"}
    assert levels["b"]["6"] == {"streams": 6, "skipped": "time budget"}
    assert held(levels["a"], Criterion("final", 1.0)) == 2
    assert held(levels["b"], Criterion("final", 1.0)) == 4


def test_partial_latency_from_the_messages_audio_end() -> None:
    run = ClientRun(samples=3 * 16_000)
    run.partials = [(1.4, audio_extent({"audio_end": 1.325})), (2.5, 2.325)]
    assert run.partial_latencies() == pytest.approx([0.075, 0.175])
    with pytest.raises(ValueError, match="audio_end"):
        audio_extent({"type": "partial", "text": "A"})


def test_process_usage_reads_proc() -> None:
    if not Path("/proc/self/stat").is_file():
        pytest.skip("no /proc on this system")
    sum(i * i for i in range(200_000))
    usage = read_usage(os.getpid())
    assert usage is not None
    assert usage.cpu_s > 0 and usage.peak_rss_mib >= usage.rss_mib > 1
    assert read_usage(2**22 + 12345) is None


def test_frontend_triton_row_without_its_interpreter_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASR_TRITON_PYTHON", str(tmp_path / "no-such-python"))
    runs = setups(PLANS["smoke"], before=None)
    assert [s.model for s in runs] == ["instant", "instant", "local", "triton"]
    missing = unavailable(runs)
    (label,) = missing
    assert label == Setup("after", 20, 1, model="triton").label
    assert "no Triton interpreter" in missing[label] and "no-such-python" in missing[label]

    figures: FrontendFigures = {
        "plan": PLANS["smoke"].figures(),
        "budget_s": 0.3,
        "cores": 2,
        "setups": [],
        "unavailable": missing,
    }
    assert f"| {label} | not measured: {missing[label]} |" in table(figures)
    assert summary_lines(figures) == [f"- {label}: NOT MEASURED ({missing[label]})"]


def test_frontend_setups_run_the_real_models_through_the_plain_server(tmp_path: Path) -> None:
    instant, local, triton = (
        Setup("after", 20, 1, model=m) for m in ("instant", "local", "triton")
    )
    assert instant.command(tmp_path)[2:5] == ["bench", "frontend_bench", "serve"]
    for setup in (local, triton):
        assert setup.command(tmp_path, "triton://h:1" if setup is triton else None)[2] == (
            "streamasr.server.app.cli"
        )
    assert "--precision int8" in " ".join(local.command(tmp_path))
    assert "--inference triton://h:1" in " ".join(triton.command(tmp_path, "triton://h:1"))
    with pytest.raises(ValueError, match="Triton URL"):
        triton.command(tmp_path)
    with pytest.raises(ValueError, match="Triton URL"):
        local.command(tmp_path, "triton://h:1")
    with pytest.raises(ValueError, match="one of instant"):
        Setup("after", 20, 1, model="gpu")
