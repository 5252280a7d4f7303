"""The Triton benchmark's processes: the Triton interpreter check, ``asr-triton`` on free
ports, and a setup's processes (server and Triton) while the levels run, with their CPU."""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from streamasr.server.inference import triton_contract as tc
from streamasr.server.manifest import read_manifest

from ..common import server_process
from ..common.proc import read_usage, tree_cpu, tree_pids
from .setup import Setup

log = logging.getLogger("bench.triton_bench")

TRITON_START_TIMEOUT_S = 180.0
TRITON_STOP_TIMEOUT_S = 60.0


def triton_unavailable() -> str | None:
    """Why ``asr-triton`` cannot run here (no usable Triton interpreter), or None."""
    from streamasr.server.triton.launcher import TritonPythonError, check_python, find_python

    try:
        check_python(find_python(None))
    except TritonPythonError as exc:
        return exc.problem
    return None


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class TritonServer(server_process.LoggedProcess):
    """``asr-triton FOLDER`` on free ports; ready once it logged ``serving NAME on grpc`` for its
    model. Stopped with SIGTERM (SIGKILL after 60 s)."""

    name = "asr-triton"
    stop_s = TRITON_STOP_TIMEOUT_S

    def __init__(self, folder: Path, setup: Setup, log_path: Path) -> None:
        self.grpc_port, http_port, metrics_port = free_ports(3)
        command = [sys.executable, "-m", "streamasr.server.triton.launcher", str(folder)]
        command += ["--grpc-port", str(self.grpc_port), "--http-port", str(http_port)]
        command += ["--metrics-port", str(metrics_port), *setup.triton_args()]
        super().__init__(command, log_path)
        self.model = tc.model_name(read_manifest(folder).name, setup.precision)

    @property
    def url(self) -> str:
        return f"triton://127.0.0.1:{self.grpc_port}"

    def _wait_ready(self) -> None:
        ready = f"serving {self.model} on grpc"
        deadline = time.monotonic() + TRITON_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready in self.log_text():
                log.info("asr-triton %d serving %s at %s", self.pid, self.model, self.url)
                return
            self._check_alive()
            time.sleep(0.2)
        raise RuntimeError(f"asr-triton did not serve {self.model} in {TRITON_START_TIMEOUT_S} s")


def serving(folder: Path, precisions: Sequence[str], log_path: Path) -> TritonServer:
    """One ``asr-triton`` (not started yet) that serves the export at every precision of
    ``precisions`` (their default instances and threads); ready once the last one is served."""
    if not precisions:
        raise ValueError("asr-triton: no precision to serve")
    triton = TritonServer(folder, Setup("triton", precisions[-1]), log_path)
    at = triton.command.index("--precision") + 1
    triton.command[at] = ",".join(precisions)
    return triton


@dataclass
class Running:
    """A setup's processes while the levels run."""

    setup: Setup
    server: server_process.ServerProcess
    triton: TritonServer | None

    def pids(self) -> list[int]:
        return [self.server.pid] + ([self.triton.pid] if self.triton else [])

    def cpu_s(self) -> float:
        return sum(tree_cpu(pid)[0] for pid in self.pids())

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds of the setup's processes by role: ``frontends`` (the server's tree),
        and Triton's tree by executable name (``tritonserver``, the Python-backend stubs, the
        serving interpreter that runs onnxruntime)."""
        roles: dict[str, float] = {}
        for pid in tree_pids(self.server.pid):
            roles["frontends"] = roles.get("frontends", 0.0) + _cpu_s(pid)
        if self.triton is not None:
            for pid in tree_pids(self.triton.pid):
                role = "triton: " + _comm(pid)
                roles[role] = roles.get(role, 0.0) + _cpu_s(pid)
        return roles


def _cpu_s(pid: int) -> float:
    usage = read_usage(pid)
    return usage.cpu_s if usage is not None else 0.0


def _comm(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text(encoding="utf-8").strip()
    except OSError:
        return "?"


@contextmanager
def running(setup: Setup, folder: Path, work: Path, lm: Path | None = None) -> Iterator[Running]:
    slug = f"{setup.inference}-{setup.precision}-w{setup.workers}-i{setup.instances}"
    slug += f"-t{setup.threads}" + ("-lm" if setup.lm else "")
    with ExitStack() as stack:
        triton = None
        if setup.inference == "triton":
            triton = stack.enter_context(TritonServer(folder, setup, work / f"triton-{slug}.log"))
        args = setup.server_args(folder, triton.url if triton else None, lm)
        server = stack.enter_context(
            server_process.ServerProcess(args, work / f"server-{slug}.log")
        )
        yield Running(setup, server, triton)
