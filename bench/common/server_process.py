"""The websocket server (``python -m streamasr.server.app.cli``) in a subprocess for the benchmarks:
started on a free port, waited for until it listens and ``/healthz`` answers 200, its output in a
log file, its CPU and memory read from ``/proc``, stopped with SIGTERM (SIGKILL if it lingers).
:class:`LoggedProcess` is the same harness for other servers (``bench.triton.bench``)."""

from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from .proc import Usage, read_usage

log = logging.getLogger("bench.service_bench")  # its log lines are service_bench's

SERVER_MODULE = "streamasr.server.app.cli"
LISTENING = re.compile(r"listening on (ws://\S+)")
START_TIMEOUT_S = 120.0


class LoggedProcess:
    """A command in a subprocess with its output in ``log_path``; a context manager that starts
    it, waits for :meth:`_wait_ready`, and stops it with SIGTERM (SIGKILL after ``stop_s``)."""

    name = "the process"
    stop_s = 20.0

    def __init__(self, command: Sequence[str], log_path: Path) -> None:
        self.command = list(command)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._process.pid

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as sink:
            self._process = subprocess.Popen(
                self.command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        raise NotImplementedError

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self.stop_s)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s %d ignored SIGTERM for %g s: killing it", self.name, process.pid, self.stop_s
            )
            process.kill()
            process.wait()

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self._process.returncode}:\n{self.log_tail()}"
            )


class ServerProcess(LoggedProcess):
    """``python -m streamasr.server.app.cli`` on a free port; ready once it logged
    ``listening on ws://HOST:PORT`` and ``/healthz`` answers 200."""

    name = "the server"

    def __init__(self, args: Sequence[str], log_path: Path) -> None:
        super().__init__([sys.executable, "-m", SERVER_MODULE, *args], log_path)
        self.url = ""

    def _wait_ready(self) -> None:
        self.url = self._wait_listening()
        self._wait_healthy()
        log.info("server %d ready at %s", self.pid, self.url)

    def usage(self) -> Usage | None:
        return read_usage(self.pid)

    def _wait_listening(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = LISTENING.search(self.log_text())
            if match:
                return match.group(1).rstrip("/.,")
            self._check_alive()
            time.sleep(0.1)
        raise RuntimeError(f"the server did not log 'listening on' in {START_TIMEOUT_S:.0f} s")

    def _wait_healthy(self) -> None:
        health = self.url.replace("ws://", "http://", 1) + "/healthz"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(health, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # 503 while loading, or not accepting yet
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(f"{health} did not answer 200 in {START_TIMEOUT_S:.0f} s")
