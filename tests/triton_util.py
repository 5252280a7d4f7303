"""Helpers of the tests that start a real ``asr-triton``: free ports and the command."""

from __future__ import annotations

import socket
import sys
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """``count`` loopback ports free right now (bound together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def triton_command() -> list[str]:
    """``asr-triton`` from this environment (its console script, else the module)."""
    script = Path(sys.executable).with_name("asr-triton")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "streamasr.server.triton_local"]
