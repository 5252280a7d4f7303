"""``asr-triton``: a real Triton server (pytriton, CPU) serving the fixture export, checked against
the local onnxruntime runner.

The server starts once for the module, under the interpreter ``asr-triton`` finds by itself
(``.venv-triton``, ``$ASR_TRITON_PYTHON``, ...). Without one the server tests skip, or fail under
``ASR_REQUIRE_TOOLS=1``; the inference callable's own tests need no Triton.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from tritonclient import grpc

from streamasr.server.inference import triton_contract as tc
from streamasr.server.inference.runtime import Runner, RuntimeConfig, load_runner
from streamasr.server.manifest import Manifest, read_manifest
from streamasr.server.triton.launcher import find_python, main, model_spec
from streamasr.server.triton.serve import OnnxCallable, ServeSpec

from .timeouts import timeout, wait_until
from .triton_util import free_ports, triton_command

START_TIMEOUT_S = timeout(90.0)
STOP_TIMEOUT_S = timeout(60.0)
LENGTHS = (16000, 12345)
"""Window lengths in samples (one odd, so the conv stack's rounding is exercised)."""


def windows(length: int, count: int, seed: int) -> NDArray[np.float32]:
    return np.random.default_rng(seed).standard_normal((count, length)).astype(np.float32)


class TritonProcess:
    """``asr-triton`` in a subprocess; collects its log and waits for every ``serving`` line."""

    def __init__(self, args: list[str], names: list[str]) -> None:
        self.process = subprocess.Popen(
            [*triton_command(), *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.lines: list[str] = []
        self._waiting = {f"serving {name} on grpc" for name in names}
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            self._waiting = {w for w in self._waiting if w not in line}
            if not self._waiting:
                self._ready.set()
        self._ready.set()

    def wait_serving(self) -> None:
        if not self._ready.wait(START_TIMEOUT_S) or self._waiting:
            self.kill()
            raise AssertionError("asr-triton did not get ready:\n" + self.log())

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(STOP_TIMEOUT_S)
        self._reader.join(timeout(5))
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout(10))

    def log(self) -> str:
        return "\n".join(self.lines[-60:])


class Server:
    def __init__(self, process: TritonProcess, grpc_port: int, manifest: Manifest) -> None:
        self.process = process
        self.manifest = manifest
        self.client = grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")

    def name(self, precision: str) -> str:
        return tc.model_name(self.manifest.name, precision)

    def request(self, precision: str, batch: NDArray[np.float32]) -> Any:
        model = tc.contract(self.manifest, precision)
        request = grpc.InferInput(model.input.name, list(batch.shape), tc.WIRE_DATA_TYPE)
        request.set_data_from_numpy(batch)
        return request

    def infer(self, precision: str, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        result = self.client.infer(self.name(precision), [self.request(precision, batch)])
        return np.asarray(result.as_numpy(self.manifest.output_name))

    def infer_concurrently(
        self, precision: str, rows: NDArray[np.float32]
    ) -> list[NDArray[np.float32]]:
        """One request per row, all sent before any answer (so Triton may merge them)."""
        futures: list[Future[NDArray[np.float32]]] = [Future() for _ in rows]
        requests = [[self.request(precision, row[None])] for row in rows]
        for future, request in zip(futures, requests, strict=True):
            self.client.async_infer(self.name(precision), request, _settle(future, self.manifest))
        return [f.result(timeout=timeout(30)) for f in futures]

    def counts(self, precision: str) -> tuple[int, int]:
        """(inferences, executions) so far: more inferences than executions means merging."""
        stats = self.client.get_inference_statistics(self.name(precision), as_json=True)
        entry: dict[str, Any] = stats["model_stats"][0]
        return int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0))

    def counts_reaching(self, precision: str, inferences: int) -> tuple[int, int]:
        """:meth:`counts` once at least ``inferences`` are counted: Triton updates its
        statistics after the responses have gone out, so a client that has every answer can
        read counts that lack the last executions (seen on a loaded 2-core machine)."""
        wait_until(
            lambda: self.counts(precision)[0] >= inferences, f"{inferences} inferences", 10.0
        )
        return self.counts(precision)


def _settle(future: Future[NDArray[np.float32]], manifest: Manifest) -> Any:
    def callback(result: Any, error: Exception | None) -> None:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(np.asarray(result.as_numpy(manifest.output_name)))

    return callback


@pytest.fixture(scope="module")
def manifest(fixture_export: Path) -> Manifest:
    return read_manifest(fixture_export)


@pytest.fixture(scope="module")
def runners(fixture_export: Path, manifest: Manifest) -> dict[str, Runner]:
    return {
        p: load_runner(fixture_export, manifest, RuntimeConfig(device="cpu", precision=p))
        for p in ("fp32", "int8")
    }


@pytest.fixture(scope="module")
def server(fixture_export: Path, manifest: Manifest, triton_python: Path) -> Iterator[Server]:
    grpc_port, http_port, metrics_port = free_ports(3)
    args = [str(fixture_export), "--python", str(triton_python), "--precision", "fp32,int8"]
    args += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    args += ["--metrics-port", str(metrics_port)]
    names = [tc.model_name(manifest.name, p) for p in ("fp32", "int8")]
    started = time.monotonic()
    process = TritonProcess(args, names)
    try:
        process.wait_serving()
        print(f"asr-triton ready in {time.monotonic() - started:.1f} s")
        yield Server(process, grpc_port, manifest)
    finally:
        process.kill()


def test_models_follow_the_contract(server: Server) -> None:
    for precision in ("fp32", "int8"):
        model = tc.contract(server.manifest, precision)
        config = server.client.get_model_config(model.name, as_json=True)["config"]
        assert config["max_batch_size"] == model.max_batch_size
        (inp,) = config["input"]
        (out,) = config["output"]
        assert tc.TensorSpec(inp["name"], tuple(int(d) for d in inp["dims"])) == model.input
        assert tc.TensorSpec(out["name"], tuple(int(d) for d in out["dims"])) == model.output
        assert inp["data_type"] == out["data_type"] == tc.CONFIG_DATA_TYPE
        assert ("dynamic_batching" in config) == model.batched


def test_fp32_one_window_per_request_is_exact(server: Server, runners: dict[str, Runner]) -> None:
    for seed, length in enumerate(LENGTHS):
        window = windows(length, 1, seed)
        np.testing.assert_array_equal(server.infer("fp32", window), runners["fp32"].run(window))


def test_fp32_batches_match_within_tolerance(server: Server, runners: dict[str, Runner]) -> None:
    rows = windows(LENGTHS[0], 8, seed=7)
    expected = np.concatenate([runners["fp32"].run(row[None]) for row in rows])
    for _attempt in range(3):  # a loaded machine may space the requests past the queue delay
        inferences, executions = server.counts("fp32")
        merged = np.concatenate(server.infer_concurrently("fp32", rows))
        after_inferences, after_executions = server.counts_reaching("fp32", inferences + len(rows))
        assert after_inferences - inferences == len(rows)
        if after_executions - executions < len(rows):
            break
    else:
        raise AssertionError("Triton merged none of the concurrent requests")
    np.testing.assert_allclose(merged, expected, rtol=0, atol=1e-4)
    np.testing.assert_allclose(server.infer("fp32", rows[:4]), expected[:4], rtol=0, atol=1e-4)


def test_int8_is_exact_under_concurrency(server: Server, runners: dict[str, Runner]) -> None:
    rows = windows(LENGTHS[1], 8, seed=11)
    for row, logits in zip(rows, server.infer_concurrently("int8", rows), strict=True):
        np.testing.assert_array_equal(logits, runners["int8"].run(row[None]))


def test_sigterm_stops_cleanly(server: Server) -> None:
    assert server.process.stop() == 0, server.process.log()
    assert any("stopping" in line for line in server.process.lines)


def test_callable_runs_merged_int8_windows_one_by_one(
    fixture_export: Path, manifest: Manifest, runners: dict[str, Runner]
) -> None:
    """The split the local runner does, on requests as Triton would merge them (no Triton)."""
    spec = model_spec(fixture_export, manifest, "int8", instances=1)
    infer = OnnxCallable(spec, intra_op_threads=1)
    short, long = windows(LENGTHS[1], 3, seed=3), windows(LENGTHS[0], 2, seed=4)
    requests = [{spec.input_name: short[:2]}, {spec.input_name: long}, {spec.input_name: short[2:]}]
    out = [r[spec.output_name] for r in infer(requests)]
    np.testing.assert_array_equal(out[0], runners["int8"].run(short[:2]))
    np.testing.assert_array_equal(out[1], runners["int8"].run(long))
    np.testing.assert_array_equal(out[2], runners["int8"].run(short[2:]))
    alone = [runners["int8"].run(row[None]) for row in short]
    np.testing.assert_array_equal(np.concatenate([out[0], out[2]]), np.concatenate(alone))


def test_spec_survives_the_command_line(fixture_export: Path, manifest: Manifest) -> None:
    models = tuple(model_spec(fixture_export, manifest, p, instances=2) for p in ("fp32", "int8"))
    spec = ServeSpec(models=models, grpc_port=9001, intra_op_threads=2)
    assert ServeSpec.from_json(spec.to_json()) == spec
    assert [m.split_batches for m in models] == [False, True]
    assert [m.dynamic_batching for m in models] == [True, False]


def test_missing_interpreter_is_a_clear_error(
    fixture_export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(fixture_export), "--python", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "not an executable file" in err
    assert "/usr/bin/python3 -m venv" in err


def test_interpreter_without_pytriton_is_a_clear_error(
    fixture_export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if any(Path(p, "pytriton").is_dir() for p in sys.path if p):
        pytest.skip("this interpreter has pytriton")
    monkeypatch.delenv("ASR_TRITON_PYTHON", raising=False)
    assert main([str(fixture_export), "--python", sys.executable]) == 2
    assert "lacks pytriton" in capsys.readouterr().err


def test_environment_names_the_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\n")
    python.chmod(0o755)
    assert find_python(None, {"ASR_TRITON_PYTHON": str(python)}) == python
    assert find_python(str(python), {"ASR_TRITON_PYTHON": "/nonexistent"}) == python
