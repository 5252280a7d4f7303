"""How an export is served by Triton: model names, tensor names, shapes and batch sizes.

One contract for three parties: ``asr-export --triton-repository`` writes ``config.pbtxt`` files
from it, ``asr-triton`` serves an export under the same names locally, and the frontend's Triton
client builds its requests from it. This module imports nothing but the standard library at run
time (the manifest type is only named for the type checker), so any of them can load it.

Per precision of a manifest called ``NAME``:

=========  ====================  ========  ================  ==============================
precision  Triton model          device    max_batch_size    batching
=========  ====================  ========  ================  ==============================
fp32       ``NAME-fp32``         CPU       64                dynamic batching
fp16       ``NAME-fp16``         GPU       64                dynamic batching (+ TensorRT)
int8       ``NAME-int8``         CPU       1                 none: one window per execution
=========  ====================  ========  ================  ==============================

Input: the manifest's ``input.name``, FP32, dims ``[-1]`` (waveform samples) or ``[-1, F]``
(fbank rows of ``F = input.feature_size`` features). Output: the manifest's ``output_name``, FP32,
dims ``[-1, V]`` (frames x vocabulary size). The batch dimension is implicit (``max_batch_size >
0``), so a request carries ``[batch, *dims]``; windows of one request share their length.

int8 is never batched inside an execution: its dynamic quantisation takes one activation scale
per input tensor, so a window's logits would depend on the windows Triton merged it with. A
client sends int8 windows one per request; concurrency comes from several model instances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamasr.server.manifest import Manifest

PLATFORM = "onnxruntime_onnx"
"""Triton's onnxruntime backend."""
MODEL_VERSION = "1"
"""The one version folder of every generated model."""
MODEL_FILE = "model.onnx"
"""The graph's name inside the version folder (Triton's default for onnxruntime_onnx)."""
CONFIG_FILE = "config.pbtxt"
CONFIG_DATA_TYPE = "TYPE_FP32"
"""Data type of every input and output in ``config.pbtxt``."""
WIRE_DATA_TYPE = "FP32"
"""The same data type as the gRPC/HTTP clients name it (``InferInput(name, shape, "FP32")``)."""

MAX_BATCH_SIZE: dict[str, int] = {"fp32": 64, "fp16": 64, "int8": 1}
"""Most windows per request and per execution, by precision (int8: one, see the module doc)."""
DEVICE: dict[str, str] = {"fp32": "cpu", "fp16": "gpu", "int8": "cpu"}
"""Where each precision's model instances run."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def model_name(manifest_name: str, precision: str) -> str:
    """The Triton model name of one precision of an export (``tts-en-ctc-small-int8``)."""
    if precision not in MAX_BATCH_SIZE:
        raise ValueError(f"precision {precision!r}: one of {', '.join(MAX_BATCH_SIZE)}")
    return _UNSAFE.sub("_", f"{manifest_name}-{precision}")


def input_dims(kind: str, feature_size: int = 0) -> tuple[int, ...]:
    """Dims of the input without the batch dim: ``(-1,)`` waveform, ``(-1, F)`` fbank."""
    if kind == "waveform":
        return (-1,)
    if kind == "fbank":
        if feature_size <= 0:
            raise ValueError(f"fbank input needs its feature size; got {feature_size}")
        return (-1, feature_size)
    raise ValueError(f"input kind {kind!r}: waveform or fbank")


def output_dims(vocab_size: int) -> tuple[int, ...]:
    """Dims of the logits without the batch dim: ``(-1, V)``."""
    if vocab_size <= 0:
        raise ValueError(f"vocabulary size {vocab_size}")
    return (-1, vocab_size)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its graph name and its dims without the batch dim."""

    name: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelContract:
    """What one Triton model of an export takes and returns."""

    name: str
    precision: str
    input: TensorSpec
    output: TensorSpec
    max_batch_size: int
    device: str
    """``cpu`` or ``gpu``."""

    @property
    def batched(self) -> bool:
        """Whether windows may share one request (and Triton may merge requests)."""
        return self.max_batch_size > 1


def contract(manifest: Manifest, precision: str) -> ModelContract:
    """The Triton model of ``precision`` for ``manifest``."""
    spec = manifest.input
    return ModelContract(
        name=model_name(manifest.name, precision),
        precision=precision,
        input=TensorSpec(spec.name, input_dims(spec.kind, spec.feature_size)),
        output=TensorSpec(manifest.output_name, output_dims(len(manifest.vocabulary.tokens))),
        max_batch_size=MAX_BATCH_SIZE[precision],
        device=DEVICE[precision],
    )
