"""Resolve MODEL (alias, hub id or local folder) and load it as a checked CTC checkpoint."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.manifest import FBANK_HOP, FBANK_WINDOW, InputSpec, SourceInfo, Vocabulary

from .aliases import ALIASES, FINE_TUNED_SUGGESTION, PRETRAINED_ONLY
from .errors import ModelNotFoundError, NoCtcHeadError, UnsupportedModelError

log = logging.getLogger(__name__)

FAMILIES = {
    "wav2vec2": "Wav2Vec2ForCTC",
    "hubert": "HubertForCTC",
    "data2vec-audio": "Data2VecAudioForCTC",
    "wav2vec2-bert": "Wav2Vec2BertForCTC",
}
"""Supported ``model_type`` values and their CTC class."""


@dataclass(frozen=True)
class Checkpoint:
    """A loaded, checked CTC checkpoint and everything the manifest says about it."""

    model: Any
    """The PyTorch model, in eval mode."""
    name: str
    """Folder name for the export (alias, or the id's last part, plus language)."""
    family: str
    layout: str
    source: SourceInfo
    input: InputSpec
    vocabulary: Vocabulary
    language: str | None


def resolve(model: str, language: str | None) -> tuple[str, str]:
    """Map MODEL to (loadable id or path, export name). Refuses known pretrained-only ids."""
    alias = ALIASES.get(model)
    if alias is not None:
        if alias.needs_language and not language:
            raise UnsupportedModelError(
                model,
                f"{alias.hub_id} serves 1,162 languages through adapters: pass --language "
                "with an ISO 639-3 code, e.g. --language fra",
            )
        name = alias.name if not language else f"{alias.name}-{language}"
        return alias.hub_id, name
    if model in PRETRAINED_ONLY:
        raise NoCtcHeadError(
            model,
            "a pretrained-only checkpoint",
            f"use {PRETRAINED_ONLY[model]}; " + FINE_TUNED_SUGGESTION,
        )
    path = Path(model).expanduser()
    looks_local = path.exists() or model.startswith((".", "/", "~")) or model.count("/") != 1
    if looks_local:
        if not path.is_dir():
            raise ModelNotFoundError(
                model, "no such folder (and not an alias: see asr-export --list)"
            )
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                model, "the folder has no config.json: is it a save_pretrained folder?"
            )
        name = path.resolve().name
    else:
        name = model.rsplit("/", maxsplit=1)[-1]
    return (str(path) if looks_local else model), (f"{name}-{language}" if language else name)


def load_checkpoint(model: str, language: str | None = None) -> Checkpoint:
    """Load MODEL with transformers and check that it can transcribe."""
    target, name = resolve(model, language)
    local = Path(target).is_dir()
    config = _load_config(model, target)
    family = str(getattr(config, "model_type", ""))
    if family not in FAMILIES:
        raise UnsupportedModelError(
            model, f"model_type {family!r}; supported families: {', '.join(FAMILIES)} (CTC heads)"
        )
    architectures = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith("ForCTC") for a in architectures):
        shown = ", ".join(architectures) or "none declared"
        raise NoCtcHeadError(model, f"its config declares {shown}", FINE_TUNED_SUGGESTION)
    vocabulary = _load_vocabulary(model, target, config, language)
    torch_model = _load_model(model, target, family, language)
    extractor = _load_feature_extractor(model, target)
    source = (
        SourceInfo(id=target, kind="local", folder_sha256=folder_hash(Path(target)))
        if local
        else SourceInfo(id=target, kind="hub", revision=getattr(config, "_commit_hash", None))
    )
    return Checkpoint(
        model=torch_model,
        name=name,
        family=family,
        layout=_layout(family, config),
        source=source,
        input=_input_spec(family, config, extractor),
        vocabulary=vocabulary,
        language=language,
    )


def _load_config(model: str, target: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(model, _first_line(exc)) from None
    except json.JSONDecodeError as exc:
        raise ModelNotFoundError(model, f"config.json is not valid JSON ({exc})") from None


def _load_vocabulary(model: str, target: str, config: Any, language: str | None) -> Vocabulary:
    from transformers import AutoTokenizer

    kwargs: dict[str, Any] = {"target_lang": language} if language else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotFoundError(
            model, f"no usable CTC tokenizer (vocab.json): {_first_line(exc)}"
        ) from None
    if language and getattr(tokenizer, "vocab", None) is None:
        raise UnsupportedModelError(model, f"the tokenizer has no vocabulary for {language!r}")
    size = int(config.vocab_size)
    known = len(tokenizer)
    tokens = [
        str(t) if i < known else f"<unused{i}>"
        for i, t in enumerate(tokenizer.convert_ids_to_tokens(list(range(min(size, known)))))
    ]
    tokens += [f"<unused{i}>" for i in range(len(tokens), size)]
    blank = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
    if blank is None or not 0 <= int(blank) < size:
        raise UnsupportedModelError(
            model, "cannot tell the CTC blank: no pad token in the tokenizer"
        )
    delimiter = getattr(tokenizer, "word_delimiter_token", None)
    return Vocabulary(tuple(tokens), int(blank), delimiter if delimiter in tokens else None)


def _load_model(model: str, target: str, family: str, language: str | None) -> Any:
    import transformers

    cls = getattr(transformers, FAMILIES[family])
    kwargs: dict[str, Any] = {"attn_implementation": "eager"}
    if language:
        kwargs.update(target_lang=language, ignore_mismatched_sizes=True)
    try:
        loaded, info = cls.from_pretrained(target, output_loading_info=True, **kwargs)
    except Exception as exc:  # safetensors, torch and transformers raise unrelated types
        raise ModelNotFoundError(
            model, f"weights could not be loaded: {_first_line(exc)}"
        ) from None
    missing = [k for k in info.get("missing_keys", []) if k.startswith("lm_head")]
    if missing:
        raise NoCtcHeadError(
            model, f"the weights lack {', '.join(sorted(missing))}", FINE_TUNED_SUGGESTION
        )
    return _fold_weight_norm(loaded.eval())


def _fold_weight_norm(model: Any) -> Any:
    """Bake weight-norm parametrisations (the positional convolution's) into plain weights.

    Left in place they export as a ReduceL2/Div subgraph evaluated on every run (and
    one that onnxruntime cannot constant-fold in fp16); folded, the graph holds the
    same weights as constants.
    """
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def _load_feature_extractor(model: str, target: str) -> Any:
    from transformers import AutoFeatureExtractor

    try:
        extractor = AutoFeatureExtractor.from_pretrained(target)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            model, f"no preprocessor_config.json (feature extractor): {_first_line(exc)}"
        ) from None
    rate = int(getattr(extractor, "sampling_rate", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise UnsupportedModelError(
            model, f"it expects {rate} Hz audio; only 16 kHz models are served"
        )
    return extractor


def _layout(family: str, config: Any) -> str:
    if family == "wav2vec2-bert":
        return "fbank"
    return "group" if getattr(config, "feat_extract_norm", "layer") == "group" else "layer"


def _input_spec(family: str, config: Any, extractor: Any) -> InputSpec:
    layers = int(config.num_adapter_layers) if getattr(config, "add_adapter", False) else 0
    kernel = int(getattr(config, "adapter_kernel_size", 3)) if layers else 0
    stride = int(config.adapter_stride) if layers else 0
    extra_stride = stride**layers if layers else 1
    attention_mask = bool(getattr(extractor, "return_attention_mask", False))
    if family == "wav2vec2-bert":
        stack = int(getattr(extractor, "stride", 2))
        mels = int(getattr(extractor, "num_mel_bins", 80))
        if mels * stack != int(config.feature_projection_input_dim):
            raise UnsupportedModelError(
                str(config.name_or_path),
                f"{mels} mel bins x {stack} does not match the model's "
                f"{config.feature_projection_input_dim} input features",
            )
        return InputSpec(
            kind="fbank",
            name="input_features",
            sample_rate=SAMPLE_RATE,
            frame_stride=FBANK_HOP * stack * extra_stride,
            receptive_field=FBANK_WINDOW + FBANK_HOP * (stack - 1),
            normalize=True,
            attention_mask=attention_mask,
            feature_size=mels * stack,
            num_mel_bins=mels,
            stack_stride=stack,
            adapter_layers=layers,
            adapter_kernel=kernel,
            adapter_stride=stride,
        )
    kernels = tuple(int(k) for k in config.conv_kernel)
    strides = tuple(int(s) for s in config.conv_stride)
    field, jump = 1, 1
    for k, s in zip(kernels, strides, strict=True):
        field += (k - 1) * jump
        jump *= s
    return InputSpec(
        kind="waveform",
        name="input_values",
        sample_rate=SAMPLE_RATE,
        frame_stride=jump * extra_stride,
        receptive_field=field,
        normalize=bool(getattr(extractor, "do_normalize", True)),
        attention_mask=attention_mask,
        conv_kernel=kernels,
        conv_stride=strides,
        adapter_layers=layers,
        adapter_kernel=kernel,
        adapter_stride=stride,
    )


def folder_hash(folder: Path) -> str:
    """sha256 over the sorted relative names and contents of a folder's files."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
