"""``python -m bench gpu_capacity`` end to end in its smoke mode: a bundle prepared with a tiny
model, then one level through ``asr-server --workers 2`` from two client processes, and the
instant-model frontend figure. Without CUDA (here) it must say so and run the CPU path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort

from bench.gpu import bundle as gpu_bundle

from .timeouts import timeout

REPO = Path(__file__).resolve().parents[1]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", "gpu_capacity", *args]
    return subprocess.run(
        command, check=False, cwd=REPO, capture_output=True, text=True, timeout=timeout(600)
    )


def test_smoke_run_from_a_prepared_bundle(shared_dir: Path, tmp_path: Path) -> None:
    bundle_dir, out, work = tmp_path / "bundle", tmp_path / "out", tmp_path / "work"
    prepared = bench(
        "prepare", "--smoke", "--out", str(bundle_dir), "--shared", str(shared_dir),
        "--work", str(work),
    )  # fmt: skip
    assert prepared.returncode == 0, prepared.stdout[-3000:] + prepared.stderr[-3000:]
    bundle = gpu_bundle.Bundle.read(bundle_dir)
    assert (bundle_dir / bundle.capacity_model / "manifest.json").is_file()
    assert (bundle_dir / bundle.frontend_model / "model.fp32.onnx").is_file()
    assert list((bundle_dir / bundle.audio).glob("*.flac"))

    # the run reads only the bundle: no --shared, a work folder of its own
    done = bench("run", "--smoke", "--bundle", str(bundle_dir), "--out", str(out),
                 "--work", str(tmp_path / "run"))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if not cuda:
        assert "no CUDA" in done.stdout and "NOT GPU figures" in done.stdout
    assert "### Streams per GPU" in done.stdout

    figures = json.loads((out / "gpu_capacity-smoke.json").read_text(encoding="utf-8"))
    assert figures["device"]["name"] == ("cuda" if cuda else "cpu")
    ((label, levels),) = figures["levels"].items()
    assert "2 worker(s)" in label and "--workers 2" in figures["commands"][label]
    level = levels["2"]
    assert level["failed_streams"] == 0, level["errors"]
    assert level["final"]["n"] > 0 and level["partial"]["n"] > 0
    assert level["server_cpu_ms_per_audio_s"] > 0
    (frontend,) = figures["frontend"]["setups"]
    assert frontend["frame_ms"] == 20 and frontend["cpu_ms_per_audio_s"] > 0
    assert f"| {label} | 2 |" in done.stdout
