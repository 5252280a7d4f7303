"""The process behind ``asr-triton``: a real Triton server (pytriton) whose models run onnxruntime.

``asr-triton`` (:mod:`.triton_local`) works out everything from the manifest with the rules of
:mod:`.triton_contract` and replaces itself with this file run as a script, in isolated mode, under
an interpreter where pytriton works::

    PYTHON -I .../streamasr/server/triton/serve.py --spec '{"grpc_port": 8001, "models": [...]}'

Run that way it imports only the standard library, numpy, onnxruntime and pytriton, never the
rest of this package (``-I`` also keeps this folder off ``sys.path``, where ``http.py`` would
shadow the standard library), so the Triton virtual environment needs nothing else.

Each model is one pytriton inference callable around one onnxruntime CPU session, opened with
the local runner's settings (:func:`.runtime.load_runner`), so the logits are the same. A call
gets the requests Triton's dynamic batcher merged; requests of one shape run as one batch, except
with ``split_batches`` (int8), where every window runs alone, as the local runner does.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

log = logging.getLogger("streamasr.triton")

START_DEADLINE_S = 60.0
"""How long failed Triton starts are retried (see :func:`start`): a last try that begins by then
still ends within the 90 s the tests wait for ``serving NAME`` (180 s: the benchmarks,
``bench.triton_process.TRITON_START_TIMEOUT_S``); one try takes 5 to 30 s here."""
RETRY_PAUSE_S = 1.0
"""Pause after a failed start, so the next try does not meet the same burst of load."""
RESTRICTED_ENDPOINTS = ("shared-memory", "model-repository", "trace", "logging")
"""Triton APIs that need pytriton's per-run access token: its defaults less ``statistics``,
which stays open as in the stock container (clients and benchmarks read batch counts)."""


@dataclass(frozen=True)
class ModelSpec:
    """One Triton model: its name, its ONNX file and its tensors (dims without the batch dim)."""

    name: str
    file: str
    input_name: str
    input_dims: tuple[int, ...]
    output_name: str
    output_dims: tuple[int, ...]
    max_batch_size: int
    dynamic_batching: bool
    split_batches: bool
    """Run the windows of a batch one by one (int8: one activation scale per batch)."""
    instances: int = 1
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_delay_us: int = 0


@dataclass(frozen=True)
class ServeSpec:
    """Everything the serving process needs, passed as JSON on its command line."""

    models: tuple[ModelSpec, ...]
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    intra_op_threads: int = 1
    log_level: str = "INFO"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ServeSpec:
        raw = json.loads(text)
        models = tuple(_model_spec(m) for m in raw.pop("models"))
        return cls(models=models, **raw)


def _model_spec(raw: Mapping[str, Any]) -> ModelSpec:
    fields = dict(raw)
    for key in ("input_dims", "output_dims", "preferred_batch_sizes"):
        fields[key] = tuple(int(d) for d in fields.get(key, ()))
    return ModelSpec(**fields)


class OnnxCallable:
    """A pytriton inference callable: a list of requests in, one logits dict per request out."""

    def __init__(self, spec: ModelSpec, intra_op_threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.spec = spec
        self.session = ort.InferenceSession(spec.file, options, providers=["CPUExecutionProvider"])
        kind = self.session.get_inputs()[0].type
        self._dtype = np.float16 if kind == "tensor(float16)" else np.float32

    def __call__(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, NDArray[Any]]]:
        inputs = [np.asarray(r[self.spec.input_name], dtype=np.float32) for r in requests]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, array in enumerate(inputs):
            by_shape.setdefault(array.shape[1:], []).append(index)
        logits: list[NDArray[np.float32]] = [np.empty(0, np.float32)] * len(inputs)
        for indices in by_shape.values():
            batch = np.concatenate([inputs[i] for i in indices])
            out = self.run(batch)
            start = 0
            for i in indices:
                size = inputs[i].shape[0]
                logits[i] = out[start : start + size]
                start += size
        return [{self.spec.output_name: x} for x in logits]

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.spec.split_batches and batch.shape[0] > 1:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self._run(batch)

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        feed = {self.spec.input_name: batch.astype(self._dtype, copy=False)}
        (out,) = self.session.run([self.spec.output_name], feed)
        return np.asarray(out, dtype=np.float32)


def bind(triton: Any, spec: ModelSpec, infer: OnnxCallable) -> None:
    """Bind one model to a pytriton ``Triton``: its callable(s), tensors and batching."""
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    batcher = None
    if spec.dynamic_batching:
        batcher = DynamicBatcher(
            max_queue_delay_microseconds=spec.max_queue_delay_us,
            preferred_batch_size=list(spec.preferred_batch_sizes) or None,
        )
    triton.bind(
        model_name=spec.name,
        infer_func=[infer] * spec.instances,
        inputs=[Tensor(name=spec.input_name, dtype=np.float32, shape=spec.input_dims)],
        outputs=[Tensor(name=spec.output_name, dtype=np.float32, shape=spec.output_dims)],
        config=ModelConfig(batching=True, max_batch_size=spec.max_batch_size, batcher=batcher),
        strict=True,
    )


def start(spec: ServeSpec) -> Any:
    """A started pytriton ``Triton`` with every model loaded and ready.

    The sessions open once. A failed start is retried until :data:`START_DEADLINE_S`
    (:func:`retry_until`), because pytriton's model load races on a busy machine. The instances
    of a model (int8 has two) are separate Python-backend stubs that Triton initialises in
    parallel; every instance but the first reads its configuration from the first one's
    handshake server (``pytriton/proxy/communication.py``, ``get_config_from_handshake_server``):
    it polls for the unix socket's file for at most 1 s, then connects once, without retry. The
    first instance creates the file with ``asyncio.start_unix_server``, which binds (the file
    appears) and only then listens; ``bind`` releases the GIL, so on a loaded machine that
    thread can wait for the CPU between the two calls while the other stub sees the file and
    its connect fails with ``ConnectionRefusedError`` (or the 1 s passes while the first stub
    starts its tensor-store process: ``TimeoutError``). Triton then fails the whole model and
    pytriton's ``run()`` raises within seconds. A fixed three tries could all lose the race
    under sustained load; tries until a deadline rarely do, and each failed one is cheap.
    """
    from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

    config = TritonConfig(
        grpc_port=spec.grpc_port,
        http_port=spec.http_port,
        metrics_port=spec.metrics_port,
        exit_on_error=True,
    )
    security = TritonSecurityConfig(restricted_endpoints=list(RESTRICTED_ENDPOINTS))
    callables = [(m, OnnxCallable(m, spec.intra_op_threads)) for m in spec.models]

    def launch() -> Any:
        triton = Triton(config=config, security_config=security)
        try:
            for model, infer in callables:
                bind(triton, model, infer)
            triton.run()
        except BaseException:
            triton.stop()
            raise
        return triton

    return retry_until(launch, START_DEADLINE_S)


T = TypeVar("T")


class StartFailedError(RuntimeError):
    """Every try of :func:`retry_until` failed; ``__cause__`` is the last failure."""

    def __init__(self, attempts: int, seconds: float, last: BaseException) -> None:
        self.attempts = attempts
        super().__init__(
            f"{attempts} tries in {seconds:.0f} s failed; the last: {_first_line(last)}"
        )


def retry_until(
    launch: Callable[[], T],
    deadline_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> T:
    """``launch()``, tried again :data:`RETRY_PAUSE_S` after each failure while a new try can
    still begin within ``deadline_s`` of the first; :class:`StartFailedError` after the last."""
    began = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return launch()
        except Exception as exc:  # pytriton raises untyped errors from several layers
            elapsed = clock() - began
            if elapsed + RETRY_PAUSE_S >= deadline_s:
                raise StartFailedError(attempt, elapsed, exc) from exc
            log.warning("Triton start %d failed (%s); retrying", attempt, _first_line(exc))
        pause(RETRY_PAUSE_S)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def serve(spec: ServeSpec, stop: threading.Event) -> int:
    """Start Triton with every model, log readiness, run until ``stop`` is set or Triton dies."""
    try:
        triton = start(spec)
    except Exception as exc:  # pytriton raises untyped errors from several layers
        log.error("Triton did not start: %s", exc)
        return 1
    try:
        for model in spec.models:
            log.info("serving %s on grpc :%d", model.name, spec.grpc_port)
        while not stop.wait(1.0):
            if not triton.is_alive():
                log.error("Triton or a model's proxy stopped; exiting")
                return 1
        log.info("stopping")
        return 0
    finally:
        triton.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve ONNX models through pytriton (asr-triton).")
    parser.add_argument("--spec", required=True, help="ServeSpec as JSON (asr-triton writes it)")
    spec = ServeSpec.from_json(parser.parse_args(argv).spec)
    logging.basicConfig(
        level=spec.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pytriton").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, _frame: _on_signal(received, stop))
    return serve(spec, stop)


def _on_signal(signum: int, stop: threading.Event) -> None:
    log.info("received %s", signal.Signals(signum).name)
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
