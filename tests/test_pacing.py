"""The loop pacer (server/service/pacing.py) on a fake clock: turns stretched to the tick only
while enough sessions are open."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamasr.server.engine.offline import stream_array
from streamasr.server.errors import ServerConfigError
from streamasr.server.service.config import ServerConfig, load_config
from streamasr.server.service.pacing import MIN_SESSIONS, Pacer

from .service_util import (
    Outcome,
    ServerThread,
    as_received,
    read_mono,
    resample,
    server_config,
    stream_v1,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run_turns(pacer: Pacer, fake: FakeTime, work_s: float, turns: int) -> None:
    """Run the pacer beside a task that spends ``work_s`` of fake time in every turn."""

    async def main() -> None:
        task = asyncio.create_task(pacer.run())
        for _ in range(turns):
            fake.now += work_s  # what the loop's other callbacks did this turn
            await asyncio.sleep(0)
        task.cancel()

    asyncio.run(main())


def test_busy_turns_are_stretched_to_the_tick() -> None:
    fake = FakeTime()
    pacer = Pacer(0.010, lambda: MIN_SESSIONS, fake.clock, fake.sleep)
    run_turns(pacer, fake, work_s=0.002, turns=20)
    assert pacer.turns >= 10
    assert fake.slept and all(s == pytest.approx(0.008) for s in fake.slept)


def test_turns_longer_than_the_tick_are_not_slowed() -> None:
    fake = FakeTime()
    pacer = Pacer(0.010, lambda: MIN_SESSIONS + 5, fake.clock, fake.sleep)
    run_turns(pacer, fake, work_s=0.015, turns=20)
    assert pacer.turns >= 10 and fake.slept == []


def test_few_sessions_leave_the_loop_alone() -> None:
    fake = FakeTime()
    pacer = Pacer(0.010, lambda: MIN_SESSIONS - 1, fake.clock, fake.sleep)
    run_turns(pacer, fake, work_s=0.001, turns=20)
    assert pacer.turns == 0 and fake.slept == []


@pytest.mark.parametrize("tick", [-1.0, 50.5])
def test_the_tick_is_bounded(tick: float) -> None:
    with pytest.raises(ServerConfigError, match="--io-tick-ms"):
        ServerConfig(model="m", io_tick_ms=tick)


def test_the_tick_is_a_flag_and_an_environment_variable() -> None:
    assert load_config(["--model", "m"], {}).io_tick_ms == 0.0  # off by default
    assert load_config(["--model", "m", "--io-tick-ms", "10"], {}).io_tick_ms == 10.0
    assert load_config(["--model", "m"], {"ASR_IO_TICK_MS": "5"}).io_tick_ms == 5.0


def test_a_paced_server_gives_the_engines_transcripts(
    fixture_export: Path, tts_set: list[tuple[Path, str]]
) -> None:
    """--io-tick-ms 10 with MIN_SESSIONS sessions streaming 20 ms frames at once: the loop's
    turns are stretched, and every session's finals are the engine's own stream."""
    config = server_config(fixture_export, io_tick_ms=10.0)
    audio = [as_received(resample(*read_mono(path), 16000), "s16le") for path, _ in tts_set[:8]]
    with ServerThread(config) as server:
        url = server.ws_url()
        sessions = (stream_v1(url, x, 16000, chunk_s=0.02, pace_s=0.005) for x in audio)

        async def run_all() -> list[Outcome]:
            return list(await asyncio.gather(*sessions))

        outcomes = asyncio.run(run_all())
        assert server.service is not None and server.service.pacer is not None
        turns = server.service.pacer.turns
        engine = server.engine
        for outcome, samples in zip(outcomes, audio, strict=True):
            assert outcome.code == 1000, outcome.messages[-1:]
            expected = stream_array(engine, samples, 16000, frame_sizes=[320]).text
            assert outcome.text == expected
    assert turns > 0
