"""Random-weight CTC checkpoints, saved like real ones: for tests and benchmarks.

Speed, memory and export mechanics do not depend on the weights, so a model built
from an architecture config (``../shared/models/configs``) measures a real
checkpoint's cost without downloading it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .source import FAMILIES

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>", "|")


def vocabulary(size: int) -> dict[str, int]:
    """``size`` symbols: the wav2vec2 specials, then letters, then filler symbols."""
    symbols = list(SPECIALS) + list(string.ascii_uppercase) + ["'"]
    symbols += [f"x{i}" for i in range(len(symbols), size)]
    return {s: i for i, s in enumerate(symbols[:size])}


def save_random_checkpoint(
    architecture: Mapping[str, Any],
    folder: Path,
    seed: int = 0,
    extractor: Mapping[str, Any] | None = None,
) -> Path:
    """Build a random model from ``architecture`` (a config dict with ``model_type``) and
    ``save_pretrained`` it with a CTC tokenizer and a feature extractor into ``folder``.

    Keys starting with ``_`` are notes; ``_feature_extractor`` settings are used when
    ``extractor`` is not given.
    """
    import torch
    import transformers

    settings = {k: v for k, v in architecture.items() if not k.startswith("_")}
    extractor = dict(extractor or architecture.get("_feature_extractor", {}))
    model_type = str(settings.pop("model_type"))
    config = transformers.AutoConfig.for_model(model_type, **settings)
    config.architectures = [FAMILIES[model_type]]
    torch.manual_seed(seed)
    model = getattr(transformers, FAMILIES[model_type])(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    vocab_file = folder / "vocab.json"
    vocab_file.write_text(json.dumps(vocabulary(int(config.vocab_size))), encoding="utf-8")
    tokenizer = transformers.Wav2Vec2CTCTokenizer(
        str(vocab_file), pad_token="<pad>", unk_token="<unk>", word_delimiter_token="|"
    )
    tokenizer.save_pretrained(folder)
    _feature_extractor(model_type, extractor).save_pretrained(folder)
    return folder


def _feature_extractor(model_type: str, settings: Mapping[str, Any]) -> Any:
    import transformers

    if model_type == "wav2vec2-bert":
        return transformers.SeamlessM4TFeatureExtractor(
            num_mel_bins=int(settings.get("num_mel_bins", 80)),
            stride=int(settings.get("stride", 2)),
        )
    return transformers.Wav2Vec2FeatureExtractor(
        do_normalize=bool(settings.get("do_normalize", True)),
        return_attention_mask=bool(settings.get("return_attention_mask", False)),
    )


def load_architecture(path: Path) -> dict[str, Any]:
    """Read one of ``../shared/models/configs/*.json``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "model_type" not in data:
        raise ValueError(f"{path}: not an architecture config (no model_type)")
    return data
