"""Helpers of the tests that start a real ``asr-triton``: free ports (the benchmark's) and the
command."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.triton.process import free_ports

__all__ = ["free_ports", "triton_command"]


def triton_command() -> list[str]:
    """``asr-triton`` from this environment (its console script, else the module)."""
    script = Path(sys.executable).with_name("asr-triton")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "streamasr.server.triton.launcher"]
