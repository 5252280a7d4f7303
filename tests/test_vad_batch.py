"""Silero VAD batched across streams: one model call per step for every stream with a pending
frame, and the same decisions as each stream alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.vad import VAD_FILE, SileroGate, SileroVad
from streamasr.server.events import Event, Final, Partial
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.gate import VadGateConfig
from streamasr.server.options.stream import StreamOptions

from .service_util import read_mono

RATE = 16000
FRAME = 320  # 20 ms client frames


@pytest.fixture(scope="module")
def engine(fixture_export: Path) -> Engine:
    with Engine(fixture_export, EngineConfig(RuntimeConfig(device="cpu", precision="int8"))) as e:
        yield e


@pytest.fixture(scope="module")
def audios(tts_set: list[tuple[Path, str]]) -> list[np.ndarray]:
    """Three different utterances, the second and third behind a pause and a murmur."""
    out = []
    for i, (path, _) in enumerate(tts_set[:3]):
        audio, rate = read_mono(path)
        assert rate == RATE
        lead = np.random.default_rng(i).standard_normal(int(0.4 * i * RATE)) * 0.002
        out.append(np.concatenate([lead, audio]).astype(np.float32))
    return out


def fresh_vad(engine: Engine) -> SileroVad:
    assert engine.vad is not None
    return SileroVad(engine.folder / VAD_FILE, engine.vad.entry)


def test_one_flush_runs_every_stream_step_by_step(engine: Engine, audios: list[np.ndarray]) -> None:
    vad = fresh_vad(engine)
    gates = [SileroGate(vad, VadGateConfig(), FRAME) for _ in audios]
    for start in range(0, max(a.size for a in audios), FRAME):  # interleaved, as streams come
        for gate, audio in zip(gates, audios, strict=True):
            if start < audio.size:
                gate.accept(audio[start : start + FRAME], [])
    vad.flush()
    counts = [a.size // 512 for a in audios]
    assert (vad.calls, vad.frames) == (max(counts), sum(counts))  # one call per step
    for gate, audio, count in zip(gates, audios, counts, strict=True):
        alone_vad = fresh_vad(engine)
        alone = SileroGate(alone_vad, VadGateConfig(), FRAME)
        alone.accept(audio, [])
        alone_vad.flush()
        assert alone_vad.calls == count
        assert gate.probabilities == alone.probabilities  # bit for bit: rows do not mix


def decoded(events: list[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, (Partial, Final))]


def test_streams_fed_together_decide_as_each_alone(
    engine: Engine, audios: list[np.ndarray]
) -> None:
    """Three Silero-gated streams fed 20 ms s16le frames in turn on one event loop (frames are
    held until a window is due, the VAD runs the streams together) give exactly the events of
    each stream fed alone with float frames (nothing held, its VAD alone)."""
    options = StreamOptions(gate=VadGateConfig())
    scaled = [np.round(a * 32767).clip(-32768, 32767).astype("<i2") for a in audios]
    alone = []
    for pcm in scaled:
        stream = engine.stream(AudioFormat("f32le"), options)
        floats = pcm.astype(np.float32) / np.float32(32768)
        events = [e for i in range(0, pcm.size, FRAME) for e in stream.feed(floats[i : i + FRAME])]
        alone.append(decoded(events + stream.finish()))
    assert engine.vad is not None
    calls, frames = engine.vad.calls, engine.vad.frames

    async def together() -> list[list[Event]]:
        """Real-time-like turns: in round ``r`` stream ``k`` takes its frame ``r - 17 k`` (the
        streams started 0.34 s apart, so their windows fall due apart)."""
        streams = [engine.stream(AudioFormat(), options) for _ in scaled]
        events: list[list[Event]] = [[] for _ in scaled]
        rounds = max(pcm.size // FRAME + 1 + 17 * k for k, pcm in enumerate(scaled))
        for r in range(rounds):
            for k, (stream, pcm) in enumerate(zip(streams, scaled, strict=True)):
                at = (r - 17 * k) * FRAME
                if 0 <= at < pcm.size:
                    events[k] += await stream.feed_async(pcm[at : at + FRAME].tobytes())
        for k, stream in enumerate(streams):
            events[k] += await stream.finish_async()
        return [decoded(e) for e in events]

    assert asyncio.run(together()) == alone
    assert any(isinstance(e, Final) for events in alone for e in events)
    # batched across streams: alone, a stream makes one call per frame and one per window (its
    # trailing part); together about 1.8 frames per call, three streams sharing most steps
    assert engine.vad.frames - frames > 1.5 * (engine.vad.calls - calls)
