"""What the figures were measured on: CPU, cores, memory, GPU and package versions."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .proc import cores

PACKAGES = (
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "soxr",
    "websockets",
    "matplotlib",
)


@dataclass(frozen=True)
class Machine:
    """The host of a benchmark run."""

    cpu: str
    cores: int
    """Logical CPUs this process may run on."""
    memory_gib: float
    gpus: tuple[str, ...]
    """``nvidia-smi`` names, or empty."""
    onnxruntime_providers: tuple[str, ...]
    system: str
    python: str
    packages: dict[str, str]
    """Installed versions of :data:`PACKAGES` (absent ones left out)."""

    @property
    def cuda(self) -> bool:
        """Whether onnxruntime can run on a GPU here."""
        return "CUDAExecutionProvider" in self.onnxruntime_providers

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cuda": self.cuda}

    def markdown(self) -> str:
        """A short table for the top of a report."""
        versions = ", ".join(f"{k} {v}" for k, v in self.packages.items())
        rows = [
            ("CPU", self.cpu),
            ("cores", str(self.cores)),
            ("memory", f"{self.memory_gib:.1f} GiB"),
            ("GPU", ", ".join(self.gpus) or "none"),
            ("onnxruntime providers", ", ".join(self.onnxruntime_providers)),
            ("system", self.system),
            ("python", self.python),
            ("packages", versions),
        ]
        return "\n".join(["| | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)])


def describe() -> Machine:
    """Read the machine description from /proc, nvidia-smi and package metadata."""
    import onnxruntime as ort

    return Machine(
        cpu=cpu_model(),
        cores=cores(),
        memory_gib=memory_gib(),
        gpus=gpu_names(),
        onnxruntime_providers=tuple(ort.get_available_providers()),
        system=f"{platform.system()} {platform.release()} {platform.machine()}",
        python=sys.version.split()[0],
        packages=versions(PACKAGES),
    )


def cpu_model() -> str:
    """``model name`` of the first CPU in /proc/cpuinfo (else ``platform.processor()``)."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    """MemTotal of /proc/meminfo in GiB (0 when unreadable)."""
    info = Path("/proc/meminfo")
    if info.is_file():
        for line in info.read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return 0.0


def gpu_names() -> tuple[str, ...]:
    """GPU names from ``nvidia-smi`` (empty without it)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(line.strip() for line in out.splitlines() if line.strip())


def versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of the named distributions."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
