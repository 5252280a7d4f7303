"""The Triton-vs-local benchmark's bookkeeping, and the report's Triton section skipping cleanly
without the Triton interpreter (the smoke report runs the section itself where it is present)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gpu import sweep as gpu_sweep
from bench.triton.ratios import ratios
from bench.triton.setup import Setup, parse_setup

from .timeouts import timeout

REPO = Path(__file__).resolve().parents[1]


def test_setups_parse_with_their_defaults() -> None:
    assert parse_setup("local:int8") == Setup("local", "int8", workers=1)
    assert parse_setup("triton:int8") == Setup("triton", "int8", workers=2)
    assert parse_setup("triton:fp32:w1:i2:t2") == Setup("triton", "fp32", 1, 2, 2)
    for bad in ("remote:int8", "local:fp8", "local:int8:i2", "triton:fp32:w0", "triton:int8:x2"):
        with pytest.raises(ValueError, match="setup"):
            parse_setup(bad)
    folder = Path("/m")
    args = parse_setup("triton:int8").server_args(folder, "triton://127.0.0.1:9")
    assert args[-4:] == ["--workers", "2", "--inference", "triton://127.0.0.1:9"]
    assert "--inference" not in parse_setup("local:int8").server_args(folder, None)


def test_ratios_compare_each_triton_setup_with_local_at_its_precision() -> None:
    setups = {
        "L8": {"inference": "local", "precision": "int8", "workers": 1},
        "L8w2": {"inference": "local", "precision": "int8", "workers": 2},
        "T8": {"inference": "triton", "precision": "int8", "workers": 2},
        "T32": {"inference": "triton", "precision": "fp32", "workers": 2},
    }
    out = ratios({"setups": setups, "held": {"L8": 20, "L8w2": 10, "T8": 16, "T32": 5}})
    assert out == {"T8": {"against": "L8", "ratio": 0.8, "met": False}}  # no local fp32


def test_gpu_levels_hold_on_final_latency_and_skip_past_the_budget() -> None:
    def level(final_p95: float, failed: int = 0) -> dict[str, object]:
        return {"final": {"p95": final_p95}, "failed_streams": failed}

    levels = {
        "500": level(0.4),
        "1000": level(0.9),
        "2000": {"streams": 2000, "skipped": "time budget"},
        "1500": level(1.2),
    }
    assert gpu_sweep.held(levels) == 1000
    assert not gpu_sweep.holds(level(0.2, failed=1))
    assert not gpu_sweep.holds(level(float("nan")))


def test_report_skips_the_triton_section_without_its_interpreter(
    shared_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    command = [sys.executable, "-m", "bench", "report", "--smoke", "--sections", "triton"]
    command += ["--out", str(out), "--shared", str(shared_dir), "--work", str(tmp_path / "w")]
    env = {**os.environ, "ASR_TRITON_PYTHON": str(tmp_path / "no-such-python")}
    done = subprocess.run(
        command,
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout(300),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "section triton skipped: no Triton interpreter" in done.stdout
    assert "no-such-python" in done.stdout
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Through Triton on CPU vs local" in report and "**Skipped**" in report
    assert "Section failed" not in report
