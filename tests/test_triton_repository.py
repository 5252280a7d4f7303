"""asr-export --triton-repository: every config.pbtxt parses into Triton's ModelConfig and matches
the manifest; model files, external data, refusals and the CLI path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from streamasr.export.cli import main as export_main
from streamasr.export.pipeline import ExportConfig, run_export
from streamasr.export.random_checkpoint import save_random_checkpoint
from streamasr.export.triton_repository import (
    TritonOptions,
    TritonRepositoryError,
    write_repository,
)
from streamasr.server.inference import triton_contract as tc
from streamasr.server.manifest import Manifest, read_manifest, sha256_file

from .tiny import TINY

FAMILIES = ("wav2vec2-group", "wav2vec2-bert")
"""One waveform and one fbank model: the two input shapes of the contract."""


@pytest.fixture(scope="module", params=FAMILIES)
def tiny_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model exported in every precision; its export folder."""
    root = tmp_path_factory.mktemp(str(request.param))
    checkpoint = save_random_checkpoint(TINY[str(request.param)], root / "tiny", seed=7)
    return run_export(ExportConfig(model=str(checkpoint), out_root=root / "models")).folder


def parse_config(folder: Path) -> Any:
    config = mc.ModelConfig()
    text_format.Parse((folder / tc.CONFIG_FILE).read_text(), config)
    return config


def check_against_manifest(config: Any, manifest: Manifest, precision: str, trt: bool) -> None:
    """The fields of one parsed ModelConfig against the manifest and the contract."""
    assert config.name == tc.model_name(manifest.name, precision)
    assert config.platform == "onnxruntime_onnx"
    (inp,) = config.input
    (out,) = config.output
    features = manifest.input.feature_size
    want_in = [-1] if manifest.input.kind == "waveform" else [-1, features]
    assert (inp.name, list(inp.dims), inp.data_type) == (manifest.input.name, want_in, mc.TYPE_FP32)
    vocab = len(manifest.vocabulary.tokens)
    assert (out.name, list(out.dims), out.data_type) == (
        manifest.output_name,
        [-1, vocab],
        mc.TYPE_FP32,
    )
    (group,) = config.instance_group
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    if precision == "int8":
        assert config.max_batch_size == 1 and not config.HasField("dynamic_batching")
        assert group.kind == mc.ModelInstanceGroup.KIND_CPU and group.count >= 2
    else:
        assert config.max_batch_size == 64
        batching = config.dynamic_batching
        assert list(batching.preferred_batch_size)
        assert max(batching.preferred_batch_size) <= config.max_batch_size
        assert batching.max_queue_delay_microseconds > 0
        gpu = precision == "fp16"
        kind = mc.ModelInstanceGroup.KIND_GPU if gpu else mc.ModelInstanceGroup.KIND_CPU
        assert group.kind == kind and group.count == 1
    if precision == "fp16" and trt:
        (accelerator,) = accelerators
        assert accelerator.name == "tensorrt"
        assert accelerator.parameters["precision_mode"] == "FP16"
    else:
        assert not accelerators


@pytest.mark.parametrize("trt", [False, True], ids=["plain", "tensorrt"])
def test_every_config_parses_and_matches_the_manifest(
    tiny_export: Path, tmp_path: Path, trt: bool
) -> None:
    manifest = read_manifest(tiny_export)
    folders = write_repository(tiny_export, tmp_path / "repo", options=TritonOptions(tensorrt=trt))
    assert sorted(f.name for f in folders) == sorted(
        tc.model_name(manifest.name, p) for p in ("fp32", "fp16", "int8")
    )
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == sorted(f.name for f in folders)
    for precision in manifest.precisions:
        folder = tmp_path / "repo" / tc.model_name(manifest.name, precision)
        check_against_manifest(parse_config(folder), manifest, precision, trt)
        graph = folder / tc.MODEL_VERSION / tc.MODEL_FILE
        assert sha256_file(graph) == manifest.precisions[precision].sha256
        assert sorted(p.name for p in graph.parent.iterdir()) == [tc.MODEL_FILE]


def test_int8_config_says_why_it_is_unbatched(tiny_export: Path, tmp_path: Path) -> None:
    (folder,) = write_repository(tiny_export, tmp_path, precisions=("int8",))
    text = (folder / tc.CONFIG_FILE).read_text()
    assert "activation scale" in text and "max_batch_size: 1" in text


def test_model_names_are_sanitised_and_tensors_follow_the_input_kind() -> None:
    assert tc.model_name("tts-en-ctc-small", "int8") == "tts-en-ctc-small-int8"
    assert tc.model_name("mms 1b.all/fra", "fp16") == "mms_1b_all_fra-fp16"
    assert tc.input_dims("waveform") == (-1,)
    assert tc.input_dims("fbank", 160) == (-1, 160)
    assert tc.output_dims(32) == (-1, 32)
    with pytest.raises(ValueError, match="feature size"):
        tc.input_dims("fbank")
    with pytest.raises(ValueError, match="precision"):
        tc.model_name("x", "bf16")


def test_external_data_travels_under_the_name_the_graph_references(
    tiny_export: Path, tmp_path: Path
) -> None:
    """An fp32 graph past 2 GB keeps its weights in ``model.fp32.onnx.data``: simulated by
    re-saving the tiny graph with external data; onnxruntime loads the repository's copy."""
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    model = onnx.load(str(export / "model.fp32.onnx"))
    onnx.save_model(
        model,
        str(export / "model.fp32.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.fp32.onnx.data",
        size_threshold=0,
    )
    (folder,) = write_repository(export, tmp_path / "repo", precisions=("fp32",))
    version = folder / tc.MODEL_VERSION
    assert sorted(p.name for p in version.iterdir()) == ["model.fp32.onnx.data", tc.MODEL_FILE]
    manifest = read_manifest(export)
    shape = (2, 8000) if manifest.input.kind == "waveform" else (2, 49, manifest.input.feature_size)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    original = ort.InferenceSession(str(tiny_export / "model.fp32.onnx"))
    served = ort.InferenceSession(str(version / tc.MODEL_FILE))
    feed = {manifest.input.name: x}
    np.testing.assert_array_equal(served.run(None, feed)[0], original.run(None, feed)[0])


def test_a_graph_off_the_contract_is_refused(tiny_export: Path, tmp_path: Path) -> None:
    export = tmp_path / "export"
    shutil.copytree(tiny_export, export)
    raw = json.loads((export / "manifest.json").read_text())
    raw["output_name"] = "scores"
    (export / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(TritonRepositoryError, match="no tensor 'scores'"):
        write_repository(export, tmp_path / "repo")
    raw["output_name"] = "logits"
    raw["vocabulary"]["tokens"].append("extra")
    (export / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(TritonRepositoryError, match="dims"):
        write_repository(export, tmp_path / "repo")
    assert not [p for p in (tmp_path / "repo").iterdir()]
    with pytest.raises(TritonRepositoryError, match="no manifest"):
        write_repository(tmp_path, tmp_path / "repo")


def test_rewriting_replaces_a_model_and_keeps_the_others(tiny_export: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "other-model" / "1").mkdir(parents=True)
    (folder,) = write_repository(tiny_export, repo, precisions=("fp16",))
    (folder / "stale").write_text("left from an old version")
    write_repository(tiny_export, repo, precisions=("fp16",), options=TritonOptions(tensorrt=True))
    assert sorted(p.name for p in repo.iterdir()) == sorted(["other-model", folder.name])
    assert not (folder / "stale").exists()
    assert "tensorrt" in (folder / tc.CONFIG_FILE).read_text()
    with pytest.raises(TritonRepositoryError, match="no precision"):
        write_repository(tiny_export, repo, precisions=("bf16",))


def test_cli_exports_then_writes_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole path once: checkpoint -> export -> repository; then an export folder as MODEL."""
    checkpoint = save_random_checkpoint(TINY["wav2vec2-group"], tmp_path / "ckpt", seed=9)
    repo = tmp_path / "repo"
    args = [str(checkpoint), "--out", str(tmp_path / "models"), "--precision", "fp32", "int8"]
    assert export_main([*args, "--triton-repository", str(repo)]) == 0
    manifest = read_manifest(tmp_path / "models" / "ckpt")
    assert sorted(p.name for p in repo.iterdir()) == ["ckpt-fp32", "ckpt-int8"]
    for precision in ("fp32", "int8"):
        check_against_manifest(parse_config(repo / f"ckpt-{precision}"), manifest, precision, False)
    assert "ckpt-int8" in capsys.readouterr().out

    again = tmp_path / "repo2"
    export_folder = str(tmp_path / "models" / "ckpt")
    assert export_main([export_folder, "--triton-repository", str(again), "--triton-tensorrt"]) == 0
    assert sorted(p.name for p in again.iterdir()) == ["ckpt-fp32", "ckpt-int8"]
