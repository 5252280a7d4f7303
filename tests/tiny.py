"""Tiny random architectures of every supported family, for export mechanics tests."""

from __future__ import annotations

from typing import Any

_CONV = {
    "conv_dim": [32, 32, 32, 32, 32, 32, 32],
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
}
_ENCODER = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "vocab_size": 32,
}

_BERT: dict[str, Any] = {
    "model_type": "wav2vec2-bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "output_hidden_size": 32,
    "feature_projection_input_dim": 160,
    "conv_depthwise_kernel_size": 5,
    "vocab_size": 32,
    "_feature_extractor": {"num_mel_bins": 80, "stride": 2},
}

TINY: dict[str, dict[str, Any]] = {
    "wav2vec2-group": {
        "model_type": "wav2vec2",
        "feat_extract_norm": "group",
        "do_stable_layer_norm": False,
        **_CONV,
        **_ENCODER,
        "_feature_extractor": {"do_normalize": True, "return_attention_mask": False},
    },
    "wav2vec2-layer": {
        "model_type": "wav2vec2",
        "feat_extract_norm": "layer",
        "do_stable_layer_norm": True,
        **_CONV,
        **_ENCODER,
        "_feature_extractor": {"do_normalize": True, "return_attention_mask": True},
    },
    "hubert": {
        "model_type": "hubert",
        "feat_extract_norm": "group",
        "do_stable_layer_norm": False,
        **_CONV,
        **_ENCODER,
        "_feature_extractor": {"do_normalize": False, "return_attention_mask": False},
    },
    "data2vec-audio": {
        "model_type": "data2vec-audio",
        **_CONV,
        **_ENCODER,
        "num_conv_pos_embeddings": 5,
        "_feature_extractor": {"do_normalize": True, "return_attention_mask": True},
    },
    "wav2vec2-bert": _BERT,
    "wav2vec2-bert-adapter": {
        **_BERT,
        "add_adapter": True,
        "num_adapter_layers": 1,
        "adapter_stride": 2,
    },
}
