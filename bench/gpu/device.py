"""Where the GPU capacity model runs (CUDA, else the CPU path, said so), and the GPU's
utilisation and memory sampled from ``nvidia-smi`` while a level plays."""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from ..common.machine import gpu_names
from .bundle import Bundle

CUDA = "CUDAExecutionProvider"


class GpuFigures(TypedDict):
    """What ``nvidia-smi`` said while a level played (percent, MiB)."""

    gpu_util_mean: float
    gpu_util_max: float
    gpu_memory_mib: float


@dataclass(frozen=True)
class Device:
    """Where the capacity model runs."""

    name: str
    """``cuda`` or ``cpu``."""
    precision: str
    gpus: tuple[str, ...]
    providers: tuple[str, ...]
    note: str


def choose_device(bundle: Bundle, forced: str | None) -> Device:
    import onnxruntime as ort

    providers = tuple(ort.get_available_providers())
    gpus = gpu_names()
    if forced != "cpu" and CUDA in providers:
        note = f"CUDA: {', '.join(gpus) or 'GPU name unknown (no nvidia-smi)'}"
        return Device("cuda", "fp16", gpus, providers, note)
    if forced == "cuda":
        raise SystemExit(f"--device cuda: onnxruntime offers only {', '.join(providers)}")
    precision = "int8" if "int8" in bundle.precisions else "fp16"
    why = "--device cpu" if forced == "cpu" else f"no CUDA (onnxruntime offers {providers})"
    note = f"{why}: running the CPU path ({precision} on CPU); these are NOT GPU figures"
    return Device("cpu", precision, gpus, providers, note)


class GpuSampler:
    """``nvidia-smi`` utilisation and memory, sampled each second in a thread while active."""

    def __init__(self) -> None:
        self.smi = shutil.which("nvidia-smi")
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if self.smi is not None:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        query = "--query-gpu=utilization.gpu,memory.used"
        while not self._stop.wait(1.0):
            try:
                out = subprocess.run(
                    [str(self.smi), query, "--format=csv,noheader,nounits", "--id=0"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=True,
                ).stdout
                util, memory = (float(x) for x in out.strip().split(",")[:2])
            except (OSError, subprocess.SubprocessError, ValueError):
                continue
            self.samples.append((util, memory))

    def figures(self) -> GpuFigures | None:
        """Utilization and memory over the samples; None when none was read."""
        if not self.samples:
            return None
        utils = [u for u, _ in self.samples]
        return {
            "gpu_util_mean": float(np.mean(utils)),
            "gpu_util_max": max(utils),
            "gpu_memory_mib": max(m for _, m in self.samples),
        }
