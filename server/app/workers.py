"""``asr-server --workers N``: N worker processes, each with its own event loop, on one port.

The parent binds one listening socket per worker slot, all on the same port with
``SO_REUSEPORT`` (Linux spreads new connections over them), and starts each worker as a fresh
interpreter running the parent's own command line with that socket passed down
(``STREAMASR_WORKER_*`` in its environment says which slot it is). A worker is a whole
single-process server (:func:`.cli.serve`) on its slot's socket, with its own model session
(``--inference local``) or its own client of the shared Triton pool. It accepts only once its
model is loaded, so connections the kernel hands to a worker that is (re)starting wait for it.

The parent

* creates (or empties) ``PROMETHEUS_MULTIPROC_DIR`` for prometheus_client's multiprocess mode
  and passes it to the workers, so ``/metrics`` of any worker sums all of them; when a worker
  dies its live gauges are dropped (:func:`.metrics.worker_exited`);
* creates the status table (:mod:`.worker_table`) through which any worker answers
  ``/healthz`` for all;
* restarts a worker that exits on its own, after a backoff that doubles with each quick
  failure (0.5 s up to 30 s; reset once a worker ran 30 s); the slot's socket stays open
  meanwhile, so its queued connections are served by the replacement; if no worker ever became
  ready and all of them failed, it gives up with status 1 (the model cannot be loaded);
* forwards SIGTERM / SIGINT to every worker (which drains: finals, then close 1001; a second
  signal cuts the wait short) and exits 0 once all have exited.

Workers run in their own process group, so a terminal's Ctrl-C reaches only the parent, which
forwards it once. A worker whose parent dies, even by SIGKILL, gets SIGTERM from the kernel
(``PR_SET_PDEATHSIG``) and drains and exits, so no orphan keeps serving on the port. Linux
only (``SO_REUSEPORT`` load balancing, ``prctl``); the first address HOST resolves to is bound.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from streamasr.server.app import loop
from streamasr.server.app.single import serve
from streamasr.server.app.worker_table import StatusTable, WorkerService
from streamasr.server.service.config import ServerConfig
from streamasr.server.service.metrics import MULTIPROC_ENV, prepare_multiprocess_dir, worker_exited

log = logging.getLogger(__name__)

SLOT_ENV = "STREAMASR_WORKER_SLOT"
FD_ENV = "STREAMASR_WORKER_FD"
TABLE_ENV = "STREAMASR_WORKER_TABLE"
PARENT_ENV = "STREAMASR_WORKER_PARENT"
PR_SET_PDEATHSIG = 1
"""prctl(2) option: the signal a process gets when its parent dies."""
BACKLOG = 1024
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_S = 30.0
"""A worker that ran this long before it exited is restarted without delay growth."""


def run(config: ServerConfig, argv: Sequence[str] | None) -> int:
    """The parent of ``config.workers`` workers, or, in a worker's environment, that worker."""
    if SLOT_ENV in os.environ:
        return run_worker(config)
    command = [sys.executable, *sys.orig_argv[1:]]
    if argv is not None:  # called with its own arguments, not the process's command line
        command = [sys.executable, "-m", "streamasr.server.app.cli", *argv]
    return Supervisor(config, command).run()


# -- a worker -------------------------------------------------------------------------------------


def follow_parent(parent: int) -> bool:
    """Have the kernel send this worker SIGTERM (drain, then exit) when its parent dies, so a
    parent killed with SIGKILL leaves no orphan serving on the port; False if the parent is
    already gone."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("cannot follow the parent's death: %s", os.strerror(ctypes.get_errno()))
    return os.getppid() == parent


def run_worker(config: ServerConfig) -> int:
    if not follow_parent(int(os.environ[PARENT_ENV])):
        log.warning("the parent exited before this worker started: exiting")
        return 0
    slot = int(os.environ[SLOT_ENV])
    listener = socket.socket(fileno=int(os.environ[FD_ENV]))
    table = StatusTable(Path(os.environ[TABLE_ENV]), config.workers)
    try:
        status = loop.run(
            serve(config, lambda c: WorkerService(c, table, slot, listener)), config.loop
        )
    finally:
        table.close()
    for signum in (signal.SIGTERM, signal.SIGINT):  # drained: a late signal must not kill it
        signal.signal(signum, signal.SIG_IGN)
    return status


# -- the parent -----------------------------------------------------------------------------------


@dataclass
class Slot:
    index: int
    listener: socket.socket
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restart_at: float | None = None
    failures: int = 0
    ever_ready: bool = False


@dataclass
class Supervisor:
    config: ServerConfig
    command: list[str]
    slots: list[Slot] = field(default_factory=list)
    stopping: int = 0
    status: int = 0

    def run(self) -> int:
        metrics_dir, own_metrics_dir = self._metrics_dir()
        state_dir = Path(tempfile.mkdtemp(prefix="asr-workers-"))
        self.table = StatusTable(state_dir / "status", self.config.workers, create=True)
        wake_r, wake_w = socket.socketpair()
        wake_w.setblocking(False)
        previous = {s: signal.signal(s, _wake) for s in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, _wake)
        old_wakeup = signal.set_wakeup_fd(wake_w.fileno())
        try:
            self._bind()
            for slot in self.slots:
                self._start(slot, metrics_dir, state_dir)
            self._loop(wake_r, metrics_dir, state_dir)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for slot in self.slots:
                slot.listener.close()
            self.table.close()
            shutil.rmtree(state_dir, ignore_errors=True)
            if own_metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        log.info("all workers stopped")
        return self.status

    def _metrics_dir(self) -> tuple[Path, bool]:
        given = os.environ.get(MULTIPROC_ENV)
        path = Path(given) if given else Path(tempfile.mkdtemp(prefix="asr-metrics-"))
        prepare_multiprocess_dir(path)
        return path, not given

    def _bind(self) -> None:
        family, kind, proto, _, address = socket.getaddrinfo(
            self.config.host, self.config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        for index in range(self.config.workers):
            listener = socket.socket(family, kind, proto)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind(address)
            listener.listen(BACKLOG)
            listener.set_inheritable(True)
            address = listener.getsockname()  # port 0: the port the first one got
            self.slots.append(Slot(index, listener))
        host, port = str(address[0]), int(address[1])
        scheme = "wss" if self.config.tls else "ws"
        shown = f"[{host}]" if ":" in host else host
        log.info("listening on %s://%s:%d (%d workers)", scheme, shown, port, len(self.slots))

    def _start(self, slot: Slot, metrics_dir: Path, state_dir: Path) -> None:
        fd = slot.listener.fileno()
        env = {
            **os.environ,
            MULTIPROC_ENV: str(metrics_dir),
            SLOT_ENV: str(slot.index),
            FD_ENV: str(fd),
            TABLE_ENV: str(state_dir / "status"),
            PARENT_ENV: str(os.getpid()),
        }
        slot.process = subprocess.Popen(self.command, env=env, pass_fds=(fd,), process_group=0)
        slot.started, slot.restart_at = time.monotonic(), None
        self.table.write(slot.index, slot.process.pid, "starting")
        log.info("worker %d started (pid %d)", slot.index, slot.process.pid)

    def _loop(self, wake: socket.socket, metrics_dir: Path, state_dir: Path) -> None:
        selector = selectors.DefaultSelector()
        selector.register(wake, selectors.EVENT_READ)
        while any(s.process is not None or s.restart_at is not None for s in self.slots):
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            timeout = max(0.0, min(due) - time.monotonic()) if due else None
            if selector.select(timeout):
                for signum in wake.recv(256):
                    self._signal(signum)
            self._reap(metrics_dir)
            now = time.monotonic()
            for slot in self.slots:
                if slot.restart_at is not None and slot.restart_at <= now and not self.stopping:
                    self._start(slot, metrics_dir, state_dir)
        selector.close()

    def _signal(self, signum: int) -> None:
        if signum not in (signal.SIGTERM, signal.SIGINT):
            return
        self.stopping += 1
        log.info("received %s: draining %d worker(s)", signal.Signals(signum).name, self._alive())
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signum)

    def _alive(self) -> int:
        return sum(s.process is not None and s.process.poll() is None for s in self.slots)

    def _reap(self, metrics_dir: Path) -> None:
        states = {s.slot: s.state for s in self.table.read()}
        for slot in self.slots:
            process = slot.process
            if process is None:
                continue
            slot.ever_ready = slot.ever_ready or states.get(slot.index) == "ready"
            code = process.poll()
            if code is None:
                continue
            slot.process = None
            worker_exited(process.pid, metrics_dir)
            self.table.write(slot.index, process.pid, "exited")
            if self.stopping:
                log.info("worker %d (pid %d) exited with %d", slot.index, process.pid, code)
                self.status = self.status or (0 if code == 0 else 1)
                continue
            self._schedule_restart(slot, process.pid, code)

    def _schedule_restart(self, slot: Slot, pid: int, code: int) -> None:
        if not any(s.ever_ready for s in self.slots) and all(s.process is None for s in self.slots):
            log.error("no worker could start (the last exited with %d): giving up", code)
            self.status = 1
            self.stopping += 1
            for other in self.slots:
                other.restart_at = None
            return
        ran = time.monotonic() - slot.started
        slot.failures = 0 if ran >= STABLE_S else slot.failures + 1
        delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, slot.failures - 1))
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "worker %d (pid %d) exited with %d after %.0f s: restarting in %.1f s",
            slot.index,
            pid,
            code,
            ran,
            delay,
        )


def _wake(signum: int, frame: object) -> None:
    """Signal handler: nothing to do here; the wakeup fd carries the signal to the loop."""
