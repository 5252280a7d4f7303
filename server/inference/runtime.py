"""onnxruntime sessions: provider and file choice, and runners that turn a batch into logits.

* CPU: the int8 file (dynamic quantisation of the transformer's matrix products), falling back
  to fp32; ``intra_op_threads`` / ``inter_op_threads`` configurable.
* CUDA: the fp16 file (falling back to fp32) with IO binding: per batch shape, device buffers for
  the input and the logits are allocated once and reused, the batch is copied in place and only
  the logits come back to the host. This path is written and selectable (``device="cuda"``) but
  has not been measured on a GPU yet.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from streamasr.server.errors import InferenceError, ProviderError, StreamConfigError
from streamasr.server.manifest import (
    FBANK_HOP,
    FBANK_WINDOW,
    PRECISIONS,
    InputSpec,
    Manifest,
    model_path,
)

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
PREFERRED_PRECISION: dict[str, tuple[str, ...]] = {
    "cpu": ("int8", "fp32"),
    "cuda": ("fp16", "fp32"),
}
MAX_BOUND_SHAPES = 16
"""Batch shapes whose device buffers the CUDA runner keeps (least recently used go first)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the model runs."""

    device: Device = "auto"
    """``auto``: CUDA when onnxruntime offers it, else CPU."""
    precision: str | None = None
    """``fp32``, ``fp16`` or ``int8``; None: fp16 on CUDA, int8 on CPU (fp32 if absent)."""
    intra_op_threads: int = 1
    """Threads inside one operator. 1, with one scheduler worker per core, held the most
    streams on 2 CPU cores (``bench.stream_bench`` capacity); 0 (onnxruntime's default, every
    core) suits one long file."""
    inter_op_threads: int = 1
    """Threads running independent operators in parallel."""
    cuda_device_id: int = 0
    split_int8_batches: bool = True
    """Run the windows of a batch one by one on the int8 file. Its dynamic quantisation takes
    one activation scale per tensor, so a batched window's logits would depend on the other
    windows in its batch; on CPU batching gains nothing measurable (``bench.stream_bench``)."""

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "cuda"):
            raise StreamConfigError("device", self.device, "auto, cpu or cuda")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise StreamConfigError("precision", self.precision, "fp32, fp16 or int8")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise StreamConfigError(
                "threads", (self.intra_op_threads, self.inter_op_threads), "0 or more"
            )


class Runner(Protocol):
    """Runs a batch of equal-length model inputs; returns (batch, frames, vocab) logits."""

    provider: str
    precision: str
    batched: bool
    """Whether one call runs the windows of several streams together (False: one at a time),
    so trimmed runs are worth rounding to few lengths (:mod:`.gate`)."""

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]: ...


def resolve_device(device: Device) -> Literal["cpu", "cuda"]:
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise ProviderError(f"CUDA requested but onnxruntime offers only {', '.join(available)}")
    if device == "auto":
        return "cuda" if CUDA in available else "cpu"
    return device


def choose_precision(manifest: Manifest, device: Literal["cpu", "cuda"], wanted: str | None) -> str:
    if wanted is not None:
        manifest.entry(wanted)  # raises ManifestError when absent
        return wanted
    for precision in PREFERRED_PRECISION[device]:
        if precision in manifest.precisions:
            return precision
    return next(iter(manifest.precisions))


def load_runner(folder: Path, manifest: Manifest, config: RuntimeConfig) -> Runner:
    """Open the session the config asks for."""
    device = resolve_device(config.device)
    precision = choose_precision(manifest, device, config.precision)
    path = model_path(folder, manifest, precision)
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if device == "cuda":
        providers: list[Any] = [(CUDA, {"device_id": config.cuda_device_id}), CPU]
        session = ort.InferenceSession(str(path), options, providers=providers)
        runner: Runner = CudaRunner(session, manifest, precision, config.cuda_device_id)
    else:
        session = ort.InferenceSession(str(path), options, providers=[CPU])
        split = config.split_int8_batches and precision == "int8"
        runner = CpuRunner(session, manifest, precision, split_batches=split)
    log.info("loaded %s (%s) on %s", path, precision, runner.provider)
    return runner


class CpuRunner:
    """Plain ``session.run`` with host arrays; with ``split_batches`` one call per window."""

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: Manifest,
        precision: str,
        *,
        split_batches: bool = False,
    ) -> None:
        self.session = session
        self.split_batches = split_batches
        self.batched = not split_batches
        self.precision = precision
        self.provider = session.get_providers()[0]
        self._input = manifest.input.name
        self._output = manifest.output_name
        self._dtype = _input_dtype(session)

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        if self.split_batches and batch.shape[0] > 1:
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(batch.shape[0])])
        return self._run(batch)

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        try:
            feed = {self._input: batch.astype(self._dtype, copy=False)}
            (logits,) = self.session.run([self._output], feed)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(f"batch {batch.shape}: {exc}") from exc
        return np.asarray(logits, dtype=np.float32)


class CudaRunner:
    """IO binding with device buffers preallocated per batch shape (unmeasured on a GPU)."""

    def __init__(
        self, session: ort.InferenceSession, manifest: Manifest, precision: str, device_id: int
    ) -> None:
        self.session = session
        self.precision = precision
        self.batched = True
        self.provider = session.get_providers()[0]
        self._input = manifest.input.name
        self._output = manifest.output_name
        self._vocab = len(manifest.vocabulary.tokens)
        self._spec = manifest.input
        self._device_id = device_id
        self._dtype = _input_dtype(session)
        self._lock = threading.Lock()
        self._bound: OrderedDict[tuple[int, ...], tuple[Any, Any, Any]] = OrderedDict()

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        host = np.ascontiguousarray(batch, dtype=self._dtype)
        try:
            with self._lock:
                binding, inp, out = self._buffers(host.shape)
                inp.update_inplace(host)
                self.session.run_with_iobinding(binding)
                logits = out.numpy()
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceError(f"batch {batch.shape} on CUDA: {exc}") from exc
        return np.asarray(logits, dtype=np.float32)

    def _buffers(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        cached = self._bound.get(shape)
        if cached is not None:
            self._bound.move_to_end(shape)
            return cached
        frames = self._spec.num_frames(_samples_of(shape, self._spec))
        out_dtype = np.float16 if self._output_is_fp16() else np.float32
        inp = ort.OrtValue.ortvalue_from_shape_and_type(shape, self._dtype, "cuda", self._device_id)
        out = ort.OrtValue.ortvalue_from_shape_and_type(
            (shape[0], frames, self._vocab), out_dtype, "cuda", self._device_id
        )
        binding = self.session.io_binding()
        binding.bind_ortvalue_input(self._input, inp)
        binding.bind_ortvalue_output(self._output, out)
        self._bound[shape] = (binding, inp, out)
        if len(self._bound) > MAX_BOUND_SHAPES:
            self._bound.popitem(last=False)
        return binding, inp, out

    def _output_is_fp16(self) -> bool:
        return any(
            o.name == self._output and o.type == "tensor(float16)"
            for o in self.session.get_outputs()
        )


def _samples_of(shape: tuple[int, ...], spec: InputSpec) -> int:
    """Samples behind a batch shape: (batch, samples) or (batch, fbank rows, features)."""
    if spec.kind == "waveform":
        return shape[1]
    return FBANK_WINDOW + FBANK_HOP * (shape[1] * spec.stack_stride - 1)


def _input_dtype(session: ort.InferenceSession) -> type[np.floating[Any]]:
    """Graph input dtype: fp16 files usually keep float32 inputs, but not always."""
    kind = session.get_inputs()[0].type
    return np.float16 if kind == "tensor(float16)" else np.float32
