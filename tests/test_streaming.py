"""The streaming engine on the fixture model: fidelity to the offline run, batching, events."""

from __future__ import annotations

import asyncio
import difflib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile
from numpy.typing import NDArray

from bench.common.scoring import agreement, wer
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import Transcript, frames, stream_array, transcribe
from streamasr.server.errors import AudioDataError, StreamStateError
from streamasr.server.events import Event, Final, Lagging, Partial, Segment
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.inference.scheduler import SchedulerConfig
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions
from tests.fakes import FakeClock

log = logging.getLogger(__name__)

Audio = NDArray[np.float32]
WORD_TOLERANCE_S = 0.060


@pytest.fixture(scope="module", params=["fp32", "int8"])
def engine(request: pytest.FixtureRequest, fixture_export: Path) -> Iterator[Engine]:
    config = EngineConfig(
        runtime=RuntimeConfig(device="cpu", precision=request.param, intra_op_threads=2),
        scheduler=SchedulerConfig(max_batch=8, max_wait_ms=0),
    )
    with Engine(fixture_export, config) as engine:
        yield engine


@pytest.fixture(scope="module")
def batching_engine(engine: Engine, fixture_export: Path) -> Iterator[Engine]:
    """The same model and precision, waiting up to 200 ms to fill batches."""
    config = EngineConfig(
        runtime=engine.config.runtime,
        scheduler=SchedulerConfig(max_batch=8, max_wait_ms=200),
    )
    with Engine(fixture_export, config) as batching:
        yield batching


@pytest.fixture(scope="module")
def tts_audio(tts_set: list[tuple[Path, str]]) -> list[tuple[Audio, str]]:
    out = []
    for path, reference in tts_set:
        samples, rate = soundfile.read(str(path), dtype="float32")
        assert rate == 16000
        out.append((np.asarray(samples, dtype=np.float32), reference))
    return out


def random_frames(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(1, 8000, size=64)]


def words_of(transcript: Transcript) -> list[tuple[str, float, float]]:
    return [(w.text, w.start, w.end) for s in transcript.segments for w in s.words]


def test_streaming_wer_matches_offline(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    refs, offline, streamed = [], [], []
    for i, (samples, reference) in enumerate(tts_audio):
        refs.append(reference)
        offline.append(transcribe(engine, samples, 16000).text)
        streamed.append(stream_array(engine, samples, 16000, frame_sizes=random_frames(i)).text)
    offline_wer, streaming_wer = wer(refs, offline).rate, wer(refs, streamed).rate
    assert streaming_wer <= 1.05 * offline_wer + 0.003, (streaming_wer, offline_wer)


def test_word_times_match_offline(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    matched = close = 0
    for samples, _ in tts_audio:
        offline = words_of(transcribe(engine, samples, 16000))
        streamed = words_of(stream_array(engine, samples, 16000))
        matcher = difflib.SequenceMatcher(a=[w[0] for w in offline], b=[w[0] for w in streamed])
        for block in matcher.get_matching_blocks():
            for k in range(block.size):
                a, b = offline[block.a + k], streamed[block.b + k]
                matched += 1
                close += (
                    abs(a[1] - b[1]) <= WORD_TOLERANCE_S and abs(a[2] - b[2]) <= WORD_TOLERANCE_S
                )
    log.info(
        "word times within %.0f ms of offline: %d of %d", WORD_TOLERANCE_S * 1000, close, matched
    )
    assert matched > 250
    assert close / matched >= 0.95, (close, matched)


def test_frames_equal_the_offline_frames(
    engine: Engine, tts_audio: list[tuple[Audio, str]]
) -> None:
    for i, (samples, _) in enumerate(tts_audio[:6]):
        cut = samples[: samples.size - 37 * i]
        offline = engine.offline_stream(AudioFormat("f32le"))
        offline.feed(cut)
        offline.finish()
        stream = engine.stream(AudioFormat("f32le"))
        for piece in frames(cut, random_frames(i + 100)):
            stream.feed(piece)
        stream.finish()
        assert stream.frames == offline.frames == engine.manifest.input.num_frames(cut.size)


async def run_async(engine: Engine, samples: Audio) -> list[Segment]:
    stream = engine.stream(AudioFormat("f32le"))
    events: list[Event] = []
    for piece in frames(samples, [1600]):
        events += await stream.feed_async(piece)
    events += await stream.finish_async()
    return [e.segment for e in events if isinstance(e, Final)]


def comparable(segments: list[Segment]) -> list[tuple[str, list[tuple[str, float, float]]]]:
    return [(s.text, [(w.text, w.start, w.end) for w in s.words]) for s in segments]


def test_batched_equals_unbatched(
    engine: Engine, batching_engine: Engine, tts_audio: list[tuple[Audio, str]]
) -> None:
    chosen = [samples for samples, _ in tts_audio[:8]]
    alone = [asyncio.run(run_async(engine, samples)) for samples in chosen]

    async def together() -> list[list[Segment]]:
        return list(await asyncio.gather(*(run_async(batching_engine, s) for s in chosen)))

    concurrent = asyncio.run(together())
    sizes = batching_engine.scheduler.stats.batch_sizes
    assert sum(n for size, n in sizes.items() if size > 1) >= 5, sizes
    assert [comparable(c) for c in concurrent] == [comparable(a) for a in alone]
    confidences = [w.confidence for segs in concurrent for s in segs for w in s.words]
    reference = [w.confidence for segs in alone for s in segs for w in s.words]
    assert np.allclose(confidences, reference, atol=1e-4)
    assert all(0.0 <= c <= 1.0 for c in confidences)


def test_partials_commit_stably(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    samples = np.concatenate([tts_audio[1][0], np.zeros(16000, np.float32), tts_audio[2][0]])
    transcript = stream_array(engine, samples, 16000, StreamOptions(hop_s=0.32))
    committed: dict[int, str] = {}
    partials = 0
    for event in transcript.events:
        if isinstance(event, Partial):
            partials += 1
            previous = committed.get(event.segment, "")
            assert event.hypothesis.committed.startswith(previous)
            committed[event.segment] = event.hypothesis.committed
        elif isinstance(event, Final):
            assert event.segment.text.startswith(committed.get(event.segment.index, ""))
    assert partials > 20 and len(committed) == len(transcript.segments)


def test_silence_ends_segments(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    gap = np.zeros(int(1.5 * 16000), np.float32)
    first, second = tts_audio[3][0], tts_audio[4][0]
    samples = np.concatenate([first, gap, second])
    streamed = stream_array(engine, samples, 16000)
    offline = [transcribe(engine, part, 16000).text for part in (first, second)]
    assert len(streamed.segments) >= 2
    assert streamed.segments[0].reason == "endpoint"
    assert streamed.segments[-1].reason == "end_of_stream"
    boundary = (first.size + gap.size) / 16000
    assert any(
        s.end <= boundary and s.words[-1].end <= first.size / 16000 + 0.1 for s in streamed.segments
    )
    for segment in streamed.segments:
        assert all(segment.start <= w.start < w.end <= segment.end for w in segment.words)
    assert [s.index for s in streamed.segments] == list(range(len(streamed.segments)))
    # (the offline reference of each utterance alone: one window over both, gap included,
    # normalises differently and is a worse transcript)
    assert agreement(streamed.text, " ".join(offline)) >= 0.8


def test_gate_skips_silence(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    rng = np.random.default_rng(0)
    quiet = (0.001 * rng.standard_normal(4 * 16000)).astype(np.float32)
    samples = np.concatenate([quiet, tts_audio[5][0], quiet])
    gated = engine.stream(AudioFormat("f32le"))
    events = [e for piece in frames(samples, [3200]) for e in gated.feed(piece)]
    events += gated.finish()
    assert gated.stats.skipped >= 4
    assert gated.stats.model_samples < ungated_samples(engine, samples)
    # Each window is normalised to unit variance, so quiet noise alone is amplified and the
    # model hears letters in it; skipped windows decode as blanks and keep only the speech.
    text = " ".join(e.segment.text for e in events if isinstance(e, Final))
    alone = stream_array(engine, tts_audio[5][0], 16000, StreamOptions(gate=None)).text
    assert agreement(text, alone) >= 0.9


def ungated_samples(engine: Engine, samples: Audio) -> int:
    stream = engine.stream(AudioFormat("f32le"), StreamOptions(gate=None))
    stream.feed(samples)
    stream.finish()
    return stream.stats.model_samples


def test_resampled_stereo_bytes(engine: Engine, tts_audio: list[tuple[Audio, str]]) -> None:
    import soxr

    mono = tts_audio[6][0]
    high = soxr.resample(mono, 16000, 44100)
    stereo = np.stack([high, high], axis=1)
    data = np.round(np.clip(stereo, -1, 1) * 32767).astype("<i2").tobytes()
    stream = engine.stream(AudioFormat("s16le", 44100, 2))
    events: list[Event] = []
    for start in range(0, len(data), 4 * 1234):
        events += stream.feed(data[start : start + 4 * 1234])
    events += stream.finish()
    text = " ".join(e.segment.text for e in events if isinstance(e, Final))
    assert agreement(text, transcribe(engine, mono, 16000).text) >= 0.9


def test_one_sample_frames_equal_long_frames(
    engine: Engine, tts_audio: list[tuple[Audio, str]]
) -> None:
    samples = tts_audio[0][0][:24_000]
    small = stream_array(engine, samples, 16000, frame_sizes=[1])
    large = stream_array(engine, samples, 16000, frame_sizes=[samples.size])
    assert comparable(list(small.segments)) == comparable(list(large.segments))


def test_bad_input_and_misuse(engine: Engine) -> None:
    stream = engine.stream(AudioFormat("s16le"))
    with pytest.raises(AudioDataError, match="whole number"):
        stream.feed(b"\x00\x01\x02")
    bad = np.zeros(100, np.float32)
    bad[3] = np.nan
    with pytest.raises(AudioDataError, match="NaN"):
        stream.feed(bad)
    assert stream.feed(b"\x00\x00" * 100) == []  # still usable after a refused frame
    assert stream.finish() == []  # 100 samples: no frame
    with pytest.raises(StreamStateError, match="finished"):
        stream.feed(b"\x00\x00")
    with pytest.raises(StreamStateError):
        stream.finish()


def test_lagging_is_reported(engine: Engine, clock: FakeClock) -> None:
    stream = engine.stream(AudioFormat("s16le"), StreamOptions(lag_report_s=2.0), clock=clock)
    second = b"\x00\x00" * 16_000
    assert stream.feed(second) == []
    clock.now += 1.0
    assert stream.feed(second) == []  # 1 s of audio in 1 s: on time
    clock.now += 4.0  # a network stall: 2 s of audio after 5 s
    events = stream.feed(second)
    assert events == [Lagging(3.0)]
    assert stream.lagging
    clock.now += 0.5
    assert stream.feed(second) == []  # 2.5 s behind: reported once per episode
    assert stream.feed(second) == [] and stream.lagging  # 1.5 s behind: still lagging
    assert stream.feed(second) == [] and not stream.lagging  # 0.5 s: under half the threshold


def test_engine_close_leaves_no_threads(fixture_export: Path) -> None:
    engine = Engine(fixture_export, EngineConfig(runtime=RuntimeConfig(device="cpu")))
    stream = engine.stream(AudioFormat("f32le"))
    stream.feed(np.zeros(40_000, np.float32))
    engine.close()
    names = {t.name for t in threading.enumerate()}
    assert not any(name.startswith(engine.scheduler.thread_name) for name in names)
    assert engine.scheduler.precision == "int8"  # CPU default
