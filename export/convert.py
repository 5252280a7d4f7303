"""Write the ONNX files: fp32 from PyTorch, then fp16 and int8 from the fp32 graph."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .source import Checkpoint

log = logging.getLogger(__name__)

OPSET = 18
PROTOBUF_LIMIT = 2**31 - 1
"""Protobuf's 2 GB ceiling: larger graphs keep their weights in a side file."""

FP16_KEEP_FLOAT = (
    "LayerNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "ReduceMean",
    "ReduceSum",
    "Pow",
    "Sqrt",
    "Reciprocal",
    "Softmax",
    "Range",
    "Einsum",
)
"""Normalisation and reduction ops whose fp16 sums or squares overflow or lose
too much precision on real activations (variance over a whole utterance, x²):
they stay float32, with casts around them. Einsum too: w2v-BERT's relative
position term mixes it with a float32 Cast the converter does not retype."""

INT8_OPS = ("MatMul", "Gemm")
"""Dynamic quantisation touches only the transformer's matrix products; the conv
feature encoder stays float (it carries most of the int8 loss and ConvInteger
has no CUDA kernel)."""


def fp32_file(checkpoint: Checkpoint, out: Path) -> Path:
    """Export the PyTorch model to ``out`` (dynamic batch and time axes)."""
    if checkpoint.family == "wav2vec2-bert":
        _torch_onnx_export(checkpoint, out)
    else:
        _optimum_export(checkpoint, out)
    consolidate_external_data(out)
    return out


def _optimum_export(checkpoint: Checkpoint, out: Path) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx_export_from_model(
            checkpoint.model,
            output=tmp,
            opset=OPSET,
            task="automatic-speech-recognition",
            do_validation=False,
            preprocessors=[],
        )
        produced = Path(tmp) / "model.onnx"
        if not produced.is_file():
            raise RuntimeError(f"optimum wrote no model.onnx in {tmp}")
        _move_with_data(produced, out)


def _torch_onnx_export(checkpoint: Checkpoint, out: Path) -> None:
    """torch.onnx (TorchScript exporter): optimum has no ONNX config for Wav2Vec2-BERT."""
    import torch

    class LogitsOnly(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_features: torch.Tensor) -> torch.Tensor:
            return self.model(input_features=input_features).logits

    # The wrapper must be in eval mode: the exporter restores the wrapper's
    # training flag afterwards, recursively, which would switch dropout on.
    wrapper = LogitsOnly(checkpoint.model).eval()
    spec = checkpoint.input
    example = torch.randn(1, 50, spec.feature_size)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        target = Path(tmp) / "model.onnx"
        torch.onnx.export(
            wrapper,
            (example,),
            str(target),
            input_names=["input_features"],
            output_names=["logits"],
            dynamic_axes={
                "input_features": {0: "batch_size", 1: "feature_frames"},
                "logits": {0: "batch_size", 1: "frames"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
        _move_with_data(target, out)
    checkpoint.model.eval()


def _move_with_data(produced: Path, out: Path) -> None:
    """Move an exported graph and any external-data files beside it to ``out``'s folder."""
    siblings = [p for p in produced.parent.iterdir() if p != produced and _is_tensor_data(p)]
    if not siblings:
        shutil.move(produced, out)
        return
    import onnx

    model = onnx.load(str(produced), load_external_data=True)
    _save(model, out, external=True)


def _is_tensor_data(path: Path) -> bool:
    return path.is_file() and not path.name.endswith((".json", ".txt", ".model"))


def consolidate_external_data(path: Path) -> None:
    """Keep one side file ``<name>.data`` when the graph is too big for one protobuf."""
    import onnx

    if path.stat().st_size < PROTOBUF_LIMIT and not data_file(path).exists():
        return
    model = onnx.load(str(path), load_external_data=True)
    _save(model, path, external=True)


def data_file(path: Path) -> Path:
    """Name of a graph's external-data side file."""
    return path.with_name(path.name + ".data")


def _save(model: Any, path: Path, external: bool) -> None:
    import onnx

    if external:
        data_file(path).unlink(missing_ok=True)
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_file(path).name,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))


def fp16_file(fp32: Path, out: Path) -> Path:
    """Convert weights and activations to float16, keeping float32 inputs and outputs."""
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(fp32), load_external_data=True)
    inline_identity_initializers(model)
    block = list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP16_KEEP_FLOAT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    # The converter leaves stale float32 value_info on some Cast outputs (w2v-BERT's
    # relative positions); types are implied by the nodes, so drop the annotations.
    del converted.graph.value_info[:]
    _save(converted, out, external=converted.ByteSize() >= PROTOBUF_LIMIT)
    return out


def inline_identity_initializers(model: Any) -> int:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer.

    The exporter deduplicates equal weights (zero biases of random models, tied
    weights) into Identity nodes; the fp16 converter casts the initializer but not
    the Identity's declared output type, leaving a graph that does not load.
    """
    from onnx import numpy_helper

    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    inlined = [n for n in graph.node if n.op_type == "Identity" and n.input[0] in weights]
    for node in inlined:
        copy = numpy_helper.from_array(
            numpy_helper.to_array(weights[node.input[0]]), node.output[0]
        )
        graph.initializer.append(copy)
        graph.node.remove(node)
    names = {n.output[0] for n in inlined}
    kept = [v for v in graph.value_info if v.name not in names]
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return len(inlined)


def int8_file(fp32: Path, out: Path) -> Path:
    """Dynamic int8 quantisation of MatMul/Gemm weights (per output channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    large = fp32.stat().st_size >= PROTOBUF_LIMIT or data_file(fp32).exists()
    quantize_dynamic(
        str(fp32),
        str(out),
        op_types_to_quantize=list(INT8_OPS),
        weight_type=QuantType.QInt8,
        per_channel=False,
        use_external_data_format=large,
        extra_options={"MatMulConstBOnly": True},
    )
    if large:
        consolidate_external_data(out)
    return out


def side_files(path: Path) -> list[Path]:
    """The graph file and its external-data file, when it has one."""
    extra = data_file(path)
    return [path, extra] if extra.exists() else [path]
