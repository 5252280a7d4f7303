"""Streaming mechanics on tiny random models of the other input layouts.

The fixture checkpoint is a LayerNorm wav2vec2; here GroupNorm ("base") and filter-bank
(w2v-BERT 2.0, with and without adapter) exports go through the same engine: every output frame
of the offline run is decoded exactly once, windows of equal length batch together, and a
batched window gives the logits it gives alone (no padding).
"""

from __future__ import annotations

import numpy as np
import pytest

from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.frontend import model_input
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.inference.scheduler import Scheduler
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions

from .tiny import TINY

LAYOUTS = ("wav2vec2-group", "wav2vec2-bert", "wav2vec2-bert-adapter")


@pytest.fixture(scope="module", params=LAYOUTS)
def tiny_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    from streamasr.export.pipeline import ExportConfig, run_export
    from streamasr.export.random_checkpoint import save_random_checkpoint

    root = tmp_path_factory.mktemp(str(request.param))
    checkpoint = save_random_checkpoint(TINY[str(request.param)], root / "checkpoint", seed=5)
    folder = run_export(ExportConfig(str(checkpoint), root / "models", ("fp32",))).folder
    engine = Engine(folder, EngineConfig(RuntimeConfig(device="cpu", precision="fp32")))
    request.addfinalizer(engine.close)
    return engine


def options_for(engine: Engine) -> StreamOptions:
    frame_s = engine.manifest.input.frame_stride / 16000
    # no gate: it would rightly skip the stationary noise these tests feed
    return StreamOptions(left_s=8 * frame_s, hop_s=16 * frame_s, lookahead_s=4 * frame_s, gate=None)


@pytest.mark.parametrize("length", [16000, 23_457, 40_321])
def test_stream_decodes_every_offline_frame(tiny_engine: Engine, length: int) -> None:
    samples = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    stream = tiny_engine.stream(AudioFormat("f32le"), options_for(tiny_engine))
    for start in range(0, length, 1111):
        stream.feed(samples[start : start + 1111])
    stream.finish()
    offline = tiny_engine.offline_stream(AudioFormat("f32le"))
    offline.feed(samples)
    offline.finish()
    assert stream.frames == offline.frames == tiny_engine.manifest.input.num_frames(length)
    assert stream.stats.windows >= 2 and stream.stats.skipped == 0


def test_batched_window_equals_window_alone(tiny_engine: Engine) -> None:
    spec = tiny_engine.manifest.input
    rng = np.random.default_rng(0)
    windows = [
        model_input((0.1 * rng.standard_normal(9_680)).astype(np.float32), spec) for _ in range(3)
    ]
    futures = [tiny_engine.scheduler.submit(w) for w in windows]
    together = [f.result() for f in futures]
    local = tiny_engine.scheduler
    assert isinstance(local, Scheduler)
    alone = [local.runner.run(w[None])[0] for w in windows]
    for a, b in zip(alone, together, strict=True):
        assert (
            a.shape
            == b.shape
            == (spec.num_frames(9_680), len(tiny_engine.manifest.vocabulary.tokens))
        )
        np.testing.assert_allclose(a, b, atol=1e-4)
