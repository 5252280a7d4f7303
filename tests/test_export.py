"""asr-export on tiny random models of every family: files, manifest, numerics, refusals."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from streamasr.export import pipeline, validate
from streamasr.export.cli import main as export_main
from streamasr.export.errors import (
    ModelNotFoundError,
    NoCtcHeadError,
    UnsupportedModelError,
    ValidationFailedError,
)
from streamasr.export.pipeline import ExportConfig, run_export
from streamasr.export.random_checkpoint import save_random_checkpoint
from streamasr.export.source import load_checkpoint
from streamasr.server.engine.frontend import model_input
from streamasr.server.manifest import read_manifest, sha256_file

from .tiny import TINY

EXPECTED = {
    "wav2vec2-group": ("wav2vec2", "group", "waveform", 320),
    "wav2vec2-layer": ("wav2vec2", "layer", "waveform", 320),
    "hubert": ("hubert", "group", "waveform", 320),
    "data2vec-audio": ("data2vec-audio", "layer", "waveform", 320),
    "wav2vec2-bert": ("wav2vec2-bert", "fbank", "fbank", 320),
    "wav2vec2-bert-adapter": ("wav2vec2-bert", "fbank", "fbank", 640),
}


@pytest.fixture(scope="module", params=sorted(TINY))
def tiny_export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    name = str(request.param)
    root = tmp_path_factory.mktemp(name)
    checkpoint = save_random_checkpoint(TINY[name], root / "checkpoint", seed=3)
    result = run_export(ExportConfig(model=str(checkpoint), out_root=root / "models"))
    return name, checkpoint, result


def test_every_precision_is_written_and_described(tiny_export: Any) -> None:
    name, _, result = tiny_export
    manifest = read_manifest(result.folder)
    family, layout, kind, stride = EXPECTED[name]
    assert (manifest.family, manifest.layout, manifest.input.kind) == (family, layout, kind)
    assert manifest.input.frame_stride == stride
    assert manifest.input.sample_rate == 16000
    assert manifest.vocabulary.tokens[manifest.vocabulary.blank_id] == "<pad>"
    assert manifest.vocabulary.word_delimiter == "|"
    assert manifest.source.kind == "local" and manifest.source.folder_sha256
    assert set(manifest.precisions) == {"fp32", "fp16", "int8"}
    for precision, entry in manifest.precisions.items():
        path = result.folder / entry.file
        assert path.stat().st_size == entry.bytes
        assert sha256_file(path) == entry.sha256
        assert entry.validation["passed"] is True
        assert entry.validation["transcripts"] == 6
        assert entry.provider == pipeline.INTENDED_PROVIDER[precision]
    assert {"torch", "transformers", "onnx", "onnxruntime"} <= set(manifest.tools)
    assert not [p for p in result.folder.parent.iterdir() if p.name.startswith(".")]


def _torch_logits(checkpoint: Path, spec: Any, x: np.ndarray) -> np.ndarray:
    loaded = load_checkpoint(str(checkpoint))
    with torch.inference_mode():
        out = loaded.model(**{spec.name: torch.from_numpy(x)}).logits
    return np.asarray(out.numpy(), dtype=np.float32)


@pytest.mark.parametrize("length", [3_217, 20_011])
def test_onnx_matches_pytorch_at_unseen_lengths(tiny_export: Any, length: int) -> None:
    _, checkpoint, result = tiny_export
    manifest = read_manifest(result.folder)
    signal = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    x = model_input(signal, manifest.input)[None]
    reference = _torch_logits(checkpoint, manifest.input, x)
    assert reference.shape[1] == manifest.input.num_frames(length)
    bounds = {"fp32": 1e-4, "fp16": 5e-3, "int8": 0.1}
    for precision, bound in bounds.items():
        session = ort.InferenceSession(
            str(result.folder / manifest.precisions[precision].file),
            providers=["CPUExecutionProvider"],
        )
        (out,) = session.run(None, {manifest.input.name: x})
        assert out.shape == reference.shape
        assert out.dtype == np.float32
        assert float(np.max(np.abs(out - reference))) < bound, precision


def test_int8_quantizes_matmuls_and_keeps_convolutions_float(tiny_export: Any) -> None:
    _, _, result = tiny_export
    manifest = read_manifest(result.folder)
    ops = Counter(n.op_type for n in onnx.load(str(result.folder / "model.int8.onnx")).graph.node)
    assert ops["MatMulInteger"] > 0
    assert ops["ConvInteger"] == 0
    fp32_ops = Counter(
        n.op_type for n in onnx.load(str(result.folder / "model.fp32.onnx")).graph.node
    )
    assert ops["Conv"] == fp32_ops["Conv"] > 0
    fp16 = onnx.load(str(result.folder / manifest.precisions["fp16"].file))
    io_types = {v.type.tensor_type.elem_type for v in [*fp16.graph.input, *fp16.graph.output]}
    assert io_types == {onnx.TensorProto.FLOAT}
    weights = Counter(t.data_type for t in fp16.graph.initializer)
    assert weights[onnx.TensorProto.FLOAT16] > weights[onnx.TensorProto.FLOAT]


def test_dynamic_batch_axis(tiny_export: Any) -> None:
    _, _, result = tiny_export
    manifest = read_manifest(result.folder)
    rng = np.random.default_rng(7)
    signals = (0.1 * rng.standard_normal((3, 8_000))).astype(np.float32)
    x = np.stack([model_input(s, manifest.input) for s in signals])
    session = ort.InferenceSession(
        str(result.folder / "model.fp32.onnx"), providers=["CPUExecutionProvider"]
    )
    (batched,) = session.run(None, {manifest.input.name: x})
    for i in range(3):
        (single,) = session.run(None, {manifest.input.name: x[i : i + 1]})
        np.testing.assert_allclose(batched[i], single[0], atol=1e-5)


# --- re-runs, failures and atomicity (one family is enough) ---


@pytest.fixture()
def group_checkpoint(tmp_path: Path) -> Path:
    return save_random_checkpoint(TINY["wav2vec2-group"], tmp_path / "ckpt", seed=5)


def test_rerun_skips_done_work_and_force_redoes_it(group_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    first = run_export(
        ExportConfig(model=str(group_checkpoint), out_root=out, precisions=("fp32",))
    )
    fp32 = first.folder / "model.fp32.onnx"
    inode = fp32.stat().st_ino
    again = run_export(
        ExportConfig(model=str(group_checkpoint), out_root=out, precisions=("fp32",))
    )
    assert again.skipped == ["fp32"] and fp32.stat().st_ino == inode
    grown = run_export(
        ExportConfig(model=str(group_checkpoint), out_root=out, precisions=("fp32", "int8"))
    )
    assert set(grown.manifest.precisions) == {"fp32", "int8"}
    assert grown.skipped == ["fp32"] and "int8" in grown.reports
    assert read_manifest(grown.folder).precisions["fp32"] == first.manifest.precisions["fp32"]
    forced = run_export(
        ExportConfig(model=str(group_checkpoint), out_root=out, precisions=("fp32",), force=True)
    )
    assert forced.skipped == [] and "fp32" in forced.reports


def _make_unpassable(monkeypatch: pytest.MonkeyPatch, precision: str) -> None:
    """Demand more than perfect transcript agreement, so ``precision`` always fails."""
    impossible = validate.Tolerance(max_abs_rel=1.0, min_agreement=1.01)
    monkeypatch.setitem(validate.TOLERANCES, precision, impossible)


def test_failed_validation_is_left_out_and_reported(
    group_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_unpassable(monkeypatch, "int8")
    out = tmp_path / "models"
    with pytest.raises(ValidationFailedError, match="int8: transcript agreement"):
        run_export(
            ExportConfig(model=str(group_checkpoint), out_root=out, precisions=("fp32", "int8"))
        )
    manifest = read_manifest(out / "ckpt")
    assert set(manifest.precisions) == {"fp32"}
    assert not (out / "ckpt" / "model.int8.onnx").exists()
    code = export_main(
        [str(group_checkpoint), "--out", str(tmp_path / "cli"), "--precision", "int8"]
    )
    assert code == 3
    assert not (tmp_path / "cli" / "ckpt").exists()


def test_a_failed_fp32_still_lets_the_other_precisions_through(
    group_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_unpassable(monkeypatch, "fp32")
    out = tmp_path / "models"
    with pytest.raises(ValidationFailedError, match="fp32: transcript agreement"):
        run_export(ExportConfig(model=str(group_checkpoint), out_root=out))
    manifest = read_manifest(out / "ckpt")
    assert set(manifest.precisions) == {"fp16", "int8"}
    assert not (out / "ckpt" / "model.fp32.onnx").exists()


def test_a_crash_mid_export_leaves_no_half_model(
    group_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fp32: Path, out: Path) -> Path:
        out.write_bytes(b"half a model")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline.convert, "int8_file", broken)
    out = tmp_path / "models"
    with pytest.raises(RuntimeError, match="disk full"):
        run_export(ExportConfig(model=str(group_checkpoint), out_root=out))
    assert list(out.iterdir()) == []


# --- refusals and bad input ---


@pytest.mark.parametrize("head", ["Wav2Vec2Model", "Wav2Vec2ForPreTraining"])
def test_checkpoint_without_ctc_head_is_refused(tmp_path: Path, head: str) -> None:
    import transformers

    config = transformers.Wav2Vec2Config(
        **{k: v for k, v in TINY["wav2vec2-group"].items() if k[0] != "_" and k != "model_type"}
    )
    getattr(transformers, head)(config).save_pretrained(tmp_path / "pretrained")
    with pytest.raises(NoCtcHeadError) as info:
        run_export(ExportConfig(model=str(tmp_path / "pretrained"), out_root=tmp_path / "m"))
    message = str(info.value)
    assert "no CTC head" in message and "fine-tuned" in message
    assert "facebook/wav2vec2-base-960h" in message
    assert not (tmp_path / "m" / "pretrained").exists()


def test_ctc_config_without_head_weights_is_refused(group_checkpoint: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights_file = group_checkpoint / "model.safetensors"
    weights = {k: v for k, v in load_file(str(weights_file)).items() if not k.startswith("lm_head")}
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    with pytest.raises(NoCtcHeadError, match="lm_head"):
        load_checkpoint(str(group_checkpoint))


@pytest.mark.parametrize(
    "hub_id",
    [
        "facebook/wav2vec2-base",
        "facebook/wav2vec2-xls-r-300m",
        "facebook/mms-1b",
        "facebook/w2v-bert-2.0",
    ],
)
def test_known_pretrained_hub_ids_are_refused_without_download(
    hub_id: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert export_main([hub_id, "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no CTC head" in err and "fine-tuned" in err


def test_missing_and_corrupt_folders_get_clear_errors(
    group_checkpoint: Path, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        load_checkpoint(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        load_checkpoint(str(empty))
    (group_checkpoint / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelNotFoundError, match="cannot load"):
        load_checkpoint(str(group_checkpoint))


def test_corrupt_weights_get_a_clear_error(group_checkpoint: Path) -> None:
    weights = group_checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelNotFoundError, match="weights could not be loaded"):
        load_checkpoint(str(group_checkpoint))


def test_unsupported_family_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "whisperish"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "whisper"}), encoding="utf-8")
    with pytest.raises(UnsupportedModelError, match="model_type 'whisper'"):
        load_checkpoint(str(folder))


def test_mms_alias_needs_a_language(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedModelError, match="--language"):
        run_export(ExportConfig(model="low-resource", out_root=tmp_path))


def test_list_prints_the_model_guide(capsys: pytest.CaptureFixture[str]) -> None:
    assert export_main(["--list"]) == 0
    out = capsys.readouterr().out
    for alias in ("base", "english", "multilingual", "low-resource", "sota"):
        assert f"\n{alias} " in f"\n{out}"
    assert "facebook/wav2vec2-base-960h" in out and "facebook/mms-1b-all" in out
    assert "16 kHz" in out and "watch out" in out and "no CTC head" in out
