"""``asr-triton``'s start: failed tries are retried until the deadline (server/triton/serve.py,
``start``: pytriton's handshake race between the instances of a model)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from streamasr.server.triton import serve as triton_serve
from streamasr.server.triton.serve import RETRY_PAUSE_S, StartFailedError, retry_until

from .timeouts import timeout
from .triton_util import free_ports


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def refused() -> ConnectionRefusedError:
    return ConnectionRefusedError(111, "Connection refused")


def test_failed_starts_are_retried_until_one_serves() -> None:
    clock = FakeClock()
    outcomes: list[Exception | str] = [refused(), TimeoutError("config file"), "triton"]

    def launch() -> str:
        clock.now += 5.0  # one try
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert retry_until(launch, 60.0, clock=clock, pause=clock.pause) == "triton"
    assert not outcomes and clock.now == pytest.approx(15.0 + 2 * RETRY_PAUSE_S)


def test_no_try_begins_past_the_deadline() -> None:
    clock = FakeClock()
    began: list[float] = []

    def launch() -> str:
        began.append(clock.now)
        clock.now += 7.0
        raise refused()

    with pytest.raises(StartFailedError, match="Connection refused") as failed:
        retry_until(launch, 30.0, clock=clock, pause=clock.pause)
    assert failed.value.attempts == len(began) == 4
    assert all(t < 30.0 for t in began) and isinstance(failed.value.__cause__, OSError)


def test_an_interrupt_is_not_retried() -> None:
    tries = []

    def launch() -> str:
        tries.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retry_until(launch, 60.0, pause=lambda _: None)
    assert len(tries) == 1


SCRIPT = """
import importlib.util, logging, pathlib, sys, tempfile
import numpy as np
from pytriton.client import ModelClient
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

logging.basicConfig(level=logging.WARNING)
found = importlib.util.spec_from_file_location("triton_serve", sys.argv[1])
serve = sys.modules["triton_serve"] = importlib.util.module_from_spec(found)
found.loader.exec_module(serve)
grpc, http, metrics = (int(p) for p in sys.argv[2:5])
# First try: a workspace whose socket paths pass the AF_UNIX limit (107 bytes), so the first
# instance's handshake server never listens and the second instance's stub fails in
# get_config_from_handshake_server, as in the race; the second try has pytriton's own.
too_long = pathlib.Path(tempfile.mkdtemp(prefix="w" * 80)) / ("w" * 40)
workspaces = iter([too_long, None])

def echo(requests):
    return [{"y": r["x"]} for r in requests]

def launch():
    config = TritonConfig(grpc_port=grpc, http_port=http, metrics_port=metrics, exit_on_error=True)
    triton = Triton(config=config, workspace=next(workspaces))
    try:
        triton.bind(
            model_name="echo",
            infer_func=[echo, echo],
            inputs=[Tensor(name="x", dtype=np.float32, shape=(-1,))],
            outputs=[Tensor(name="y", dtype=np.float32, shape=(-1,))],
            config=ModelConfig(batching=True, max_batch_size=4),
            strict=True,
        )
        triton.run()
    except BaseException:
        triton.stop()
        raise
    return triton

triton = serve.retry_until(launch, 60.0)
try:
    with ModelClient(f"grpc://127.0.0.1:{grpc}", "echo", init_timeout_s=30) as client:
        print("served", client.infer_sample(x=np.arange(3, dtype=np.float32))["y"].tolist())
finally:
    triton.stop()
"""


def test_a_model_load_failed_in_the_handshake_is_retried(
    triton_python: Path, tmp_path: Path
) -> None:
    script = tmp_path / "start.py"
    script.write_text(SCRIPT, encoding="utf-8")
    command = [str(triton_python), "-I", str(script), triton_serve.__file__]
    done = subprocess.run(
        [*command, *(str(p) for p in free_ports(3))],
        capture_output=True,
        text=True,
        timeout=timeout(180),
        check=False,
        cwd=tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "get_config_from_handshake_server" in output
    assert "Triton start 1 failed ([400] load failed for model 'echo'" in output
    assert "Triton start 2 failed" not in output
    assert "served [0.0, 1.0, 2.0]" in done.stdout
