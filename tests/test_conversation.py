"""The conversations as state machines: messages in, actions out, a fake clock, no engine.

A :class:`Flow` plays the session driver: it carries out the actions, answering each ``Feed`` and
``Flush`` with scripted events, and records what would have gone on the wire.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from streamasr.server import errors
from streamasr.server.events import Event, Final, Hypothesis, Lagging, Partial, Segment, Word
from streamasr.server.options.audio import AudioFormat
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.clientjson import JsonObject
from streamasr.server.protocol.conversation import (
    Action,
    Close,
    Conversation,
    Feed,
    Flush,
    Limits,
    Open,
    Send,
    State,
)
from streamasr.server.protocol.dialects import V1Conversation, VoskConversation
from streamasr.server.service.config import ServerConfig
from tests.fakes import FakeClock

LIMITS = Limits(idle_timeout_s=5.0, min_audio_s=0.5, min_audio_window_s=2.0, max_session_s=10.0)
NO_RATE = replace(LIMITS, min_audio_s=0.0)
"""The limits without the minimum audio rate."""
RATE = 16000
START = json.dumps({"type": "start", "sample_rate": RATE})
STOP = json.dumps({"type": "stop"})
EOF = '{"eof" : 1}'
HUGE = "1" + "0" * 5000
"""A 5,000-digit integer: past Python's int-conversion limit (4,300 digits)."""
log = logging.getLogger("tests.conversation")


def pcm(seconds: float, rate: int = RATE) -> bytes:
    """Silence as 16-bit mono PCM."""
    return bytes(2 * round(seconds * rate))


def segment(index: int, text: str, start: float, end: float) -> Segment:
    words = tuple(
        Word(w, start + 0.1 * i, start + 0.1 * i + 0.05, 0.9) for i, w in enumerate(text.split())
    )
    return Segment(index, text, words, start, end, "end_of_stream")


@dataclass
class Metrics:
    """Records the reports a conversation makes (the ServiceMetrics methods it calls)."""

    audio: float = 0.0
    partials: list[float] = field(default_factory=list)
    finals: list[float] = field(default_factory=list)
    lags: int = 0
    errors: list[str] = field(default_factory=list)

    def audio_received(self, seconds: float) -> None:
        self.audio += seconds

    def partial_sent(self, latency_s: float) -> None:
        self.partials.append(latency_s)

    def final_sent(self, latency_s: float) -> None:
        self.finals.append(latency_s)

    def lagged(self) -> None:
        self.lags += 1

    def session_error(self, code: str) -> None:
        self.errors.append(code)


class Flow:
    """The session driver without sockets or engine."""

    def __init__(self, dialect: str = "v1", limits: Limits = LIMITS) -> None:
        self.clock = FakeClock()
        self.metrics = Metrics()
        self.conversation: Conversation
        if dialect == "v1":
            self.conversation = V1Conversation(
                limits,
                StreamOptions(),
                session="s1",
                model="m",
                precision="int8",
                clock=self.clock,
                metrics=self.metrics,
                log=log,
            )
        else:
            self.conversation = VoskConversation(
                limits, StreamOptions(), clock=self.clock, metrics=self.metrics, log=log
            )
        self.sent: list[JsonObject] = []
        self.opened: list[Open] = []
        self.fed: list[bytes] = []
        self.flushes = 0
        self.closed: Close | None = None
        self.feed_events: deque[list[Event]] = deque()
        """What the next Feeds produce (nothing once used up)."""
        self.flush_events: list[Event] = []
        self.decode_s = 0.0
        """Clock time each Feed and Flush takes."""
        self.late: str | bytes | None = None
        """A message that is already waiting when the flush is done."""

    @property
    def state(self) -> State:
        return self.conversation.state

    def run(self, actions: Sequence[Action]) -> None:
        pending = deque(actions)
        while pending:
            action = pending.popleft()
            assert self.closed is None, f"{action} after the close"
            if isinstance(action, Send):
                self.sent.append(action.message)
            elif isinstance(action, Open):
                self.opened.append(action)
            elif isinstance(action, Feed):
                assert not pending, "a Feed is the last action"
                self.fed.append(action.data)
                self.clock.now += self.decode_s
                events = self.feed_events.popleft() if self.feed_events else []
                pending.extend(self.conversation.stream_events(events))
            elif isinstance(action, Flush):
                assert not pending, "a Flush is the last action"
                self.flushes += 1
                self.clock.now += self.decode_s
                if self.late is not None:
                    assert self.conversation.receive(self.late) == []
                pending.extend(self.conversation.flushed(self.flush_events))
            else:
                self.closed = action

    def send(self, *messages: str | bytes) -> Flow:
        for message in messages:
            self.run(self.conversation.receive(message))
        return self

    def wait(self, seconds: float) -> Flow:
        """Let time pass as the driver would: expiring at each deadline on the way."""
        end = self.clock.now + seconds
        while self.state not in (State.CLOSED, State.FLUSHING):
            deadline = self.conversation.deadline()
            if deadline > end:
                break
            self.clock.now = max(self.clock.now, deadline)
            self.run(self.conversation.expire(self.clock.now))
        self.clock.now = max(self.clock.now, end)
        return self

    def kinds(self) -> list[str]:
        return [m.get("type") or next(iter(m)) for m in self.sent]

    @property
    def error(self) -> JsonObject:
        assert self.sent and self.sent[-1]["type"] == "error", self.sent
        return self.sent[-1]

    def ended_with(self, code: str, close: int) -> None:
        assert self.error["code"] == code, self.error
        assert self.closed == Close(close, code)
        assert self.state is State.CLOSED
        assert self.metrics.errors == [code]


# -- protocol v1 ----------------------------------------------------------------------------------


def test_v1_session_from_start_to_end() -> None:
    flow = Flow().send(START)
    assert flow.state is State.STREAMING
    assert flow.opened == [Open(AudioFormat("s16le", RATE, 1), StreamOptions())]
    assert flow.sent == [
        {"type": "ready", "protocol": 1, "session": "s1", "model": "m", "precision": "int8"}
    ]
    flow.feed_events.append([Partial(0, Hypothesis("HEL", "LO"), 0.5), Lagging(2.5)])
    flow.feed_events.append([Final(segment(0, "HELLO", 0.0, 0.9))])
    flow.decode_s = 0.25
    flow.send(pcm(0.5), pcm(0.5))
    flow.flush_events = [
        Partial(1, Hypothesis("", "WO"), 1.2),
        Final(segment(1, "WORLD", 0.9, 1.3)),
    ]
    flow.send(STOP)
    assert flow.kinds() == ["ready", "partial", "lagging", "final", "partial", "final", "end"]
    assert flow.sent[4]["start"] == 0.9, "a partial starts where the last final ended"
    assert flow.sent[-1] == {"type": "end", "audio_seconds": 1.0}
    assert flow.closed == Close(1000)
    assert flow.state is State.CLOSED
    assert flow.fed == [pcm(0.5), pcm(0.5)]
    assert flow.metrics.audio == pytest.approx(1.0)
    assert flow.metrics.finals == [0.25, 0.25] and flow.metrics.partials == [0.25, 0.25]
    assert flow.metrics.lags == 1 and flow.metrics.errors == []
    assert flow.send(pcm(0.1)).fed == [pcm(0.5), pcm(0.5)], "nothing is taken once closed"


def test_v1_start_options_reach_the_stream_and_the_messages() -> None:
    start = {"type": "start", "sample_rate": 48000.0, "encoding": "f32le", "channels": 2}
    start |= {"partials": False, "words": False, "endpoint_ms": 300, "max_segment_s": 10}
    flow = Flow().send(json.dumps(start))
    (opened,) = flow.opened
    assert opened.format == AudioFormat("f32le", 48000, 2)
    assert (opened.options.endpoint_ms, opened.options.max_segment_s) == (300, 10.0)
    flow.feed_events.append([Partial(0, Hypothesis("A", ""), 0.2), Final(segment(0, "A", 0, 1))])
    flow.send(bytes(8 * 4800))
    assert flow.kinds() == ["ready", "final"]
    assert "words" not in flow.sent[-1]
    assert flow.metrics.audio == pytest.approx(0.1)


BAD_V1: dict[str, tuple[list[str | bytes], str, int]] = {
    "not_json": (["hello"], "invalid_json", 1007),
    "json_array": (["[1, 2]"], "invalid_json", 1007),
    "nan": (['{"type": "start", "sample_rate": NaN}'], "invalid_json", 1007),
    "unknown_type": (['{"type": "pause"}'], "unknown_type", 1003),
    "no_type": (['{"sample_rate": 16000}'], "invalid_field", 1007),
    "unknown_field": (
        ['{"type": "start", "sample_rate": 16000, "speed": 2}'],
        "invalid_field",
        1007,
    ),
    "endpoint_out_of_range": (
        ['{"type": "start", "sample_rate": 16000, "endpoint_ms": 50}'],
        "invalid_field",
        1007,
    ),
    "no_rate": (['{"type": "start"}'], "invalid_field", 1007),
    "rate_as_text": (['{"type": "start", "sample_rate": "16000"}'], "invalid_field", 1007),
    "fractional_rate": (['{"type": "start", "sample_rate": 16000.5}'], "invalid_field", 1007),
    "bad_encoding": (
        ['{"type": "start", "sample_rate": 16000, "encoding": "mp3"}'],
        "invalid_field",
        1007,
    ),
    "three_channels": (
        ['{"type": "start", "sample_rate": 16000, "channels": 3}'],
        "invalid_field",
        1007,
    ),
    "words_as_text": (
        ['{"type": "start", "sample_rate": 16000, "words": "yes"}'],
        "invalid_field",
        1007,
    ),
    "rate_too_low": (['{"type": "start", "sample_rate": 7999}'], "unsupported_rate", 1003),
    "rate_too_high": (['{"type": "start", "sample_rate": 192001}'], "unsupported_rate", 1003),
    "rate_zero": (['{"type": "start", "sample_rate": 0}'], "unsupported_rate", 1003),
    "audio_before_start": ([pcm(0.1)], "audio_before_start", 1003),
    "stop_before_start": ([STOP], "stop_before_start", 1003),
    "second_start": ([START, pcm(0.1), START], "duplicate_start", 1003),
    "bad_text_while_streaming": ([START, pcm(0.1), "{"], "invalid_json", 1007),
    "empty_frame": ([START, b""], "empty_frame", 1007),
}


@pytest.mark.parametrize("case", list(BAD_V1))
def test_v1_bad_input_ends_the_session(case: str) -> None:
    messages, code, close = BAD_V1[case]
    flow = Flow().send(*messages)
    flow.ended_with(code, close)
    assert flow.error["message"]
    assert flow.flushes == 0, "a client's error is not flushed"


@pytest.mark.parametrize(
    ("late", "code"), [(pcm(0.1), "audio_after_stop"), (STOP, "message_after_stop")]
)
def test_anything_after_stop_is_an_error_after_the_finals(late: str | bytes, code: str) -> None:
    flow = Flow().send(START, pcm(0.5))
    flow.late = late
    flow.flush_events = [Final(segment(0, "HELLO", 0.0, 0.5))]
    flow.send(STOP)
    assert flow.kinds() == ["ready", "final", "error"]
    flow.ended_with(code, 1003)


def test_a_late_message_does_not_change_a_limits_error() -> None:
    flow = Flow(limits=NO_RATE).send(START, pcm(0.5))
    flow.late = pcm(0.1)
    flow.wait(LIMITS.idle_timeout_s)
    assert flow.kinds() == ["ready", "error"]
    flow.ended_with("idle_timeout", 1001)


# -- time and limits ------------------------------------------------------------------------------


def test_limits_come_from_the_server_config() -> None:
    config = ServerConfig(model="m", idle_timeout_s=7, min_audio_s=0.25, max_session_s=60)
    assert Limits.of(config) == Limits(7.0, 0.25, config.min_audio_window_s, 60.0)


def test_idle_before_start() -> None:
    flow = Flow()
    assert flow.conversation.deadline() == flow.clock.now + LIMITS.idle_timeout_s
    assert flow.conversation.expire(flow.clock.now + 4.9) == []
    flow.wait(LIMITS.idle_timeout_s)
    flow.ended_with("idle_timeout", 1001)
    assert flow.flushes == 0
    assert flow.conversation.deadline() == float("inf")


def test_idle_mid_stream_flushes_the_audio_received() -> None:
    limits = NO_RATE
    flow = Flow(limits=limits).send(START, pcm(1.0))
    flow.flush_events = [Final(segment(0, "HELLO", 0.0, 1.0))]
    flow.wait(4.9)
    assert flow.state is State.STREAMING
    flow.wait(0.1)
    assert flow.kinds() == ["ready", "final", "error"]
    assert flow.flushes == 1
    flow.ended_with("idle_timeout", 1001)


def test_idle_counts_from_when_the_engine_was_done() -> None:
    flow = Flow(limits=NO_RATE).send(START)
    flow.decode_s = 3.0
    flow.send(pcm(0.1))
    assert flow.conversation.deadline() == flow.clock.now + LIMITS.idle_timeout_s


def test_any_message_resets_the_idle_timer() -> None:
    flow = Flow("vosk", NO_RATE)
    for _ in range(5):
        flow.wait(4.0).send('{"config": {"sample_rate": 16000}}')
    assert flow.state is State.AWAITING_START and flow.sent == []


def test_a_trickling_client_is_closed_after_its_finals() -> None:
    """2 bytes every 0.2 s keep the idle timer at bay but fall short of the minimum rate."""
    flow = Flow().send(START)
    flow.flush_events = [Final(segment(0, "", 0.0, 0.001))]
    for _ in range(9):
        flow.wait(0.2).send(b"\x00\x00")
    assert flow.state is State.STREAMING
    flow.wait(0.2)
    assert flow.clock.now == pytest.approx(102.0), "two seconds after start"
    assert flow.flushes == 1
    assert flow.kinds() == ["ready", "final", "error"]
    flow.ended_with("too_slow", 1001)
    assert "0.5 s of audio in 2 s" in flow.error["message"]


def test_enough_audio_in_each_window_keeps_the_session() -> None:
    flow = Flow().send(START)
    for _ in range(20):  # 0.1 s of audio every 0.3 s: 0.66 s per 2 s window
        flow.wait(0.3).send(pcm(0.1))
    assert flow.state is State.STREAMING and flow.metrics.errors == []
    assert flow.clock.now == pytest.approx(106.0)


def test_decoding_time_does_not_count_against_the_client() -> None:
    flow = Flow().send(START)
    flow.decode_s = 1.0
    flow.send(pcm(0.1)).send(pcm(0.1))  # 2 s of decoding, 0.2 s of audio
    assert flow.state is State.STREAMING
    assert flow.conversation.deadline() == flow.clock.now + 2.0


def test_the_minimum_rate_can_be_disabled() -> None:
    flow = Flow(limits=NO_RATE).send(START)
    for _ in range(20):
        flow.wait(0.2).send(b"\x00\x00")
    assert flow.state is State.STREAMING
    assert flow.conversation.deadline() == flow.clock.now + LIMITS.idle_timeout_s


def test_vosk_without_audio_is_too_slow_without_a_flush() -> None:
    flow = Flow("vosk")
    for _ in range(10):
        flow.wait(0.25).send('{"config": {"words": 1}}')
    flow.wait(1.0)
    flow.ended_with("too_slow", 1001)
    assert flow.flushes == 0 and flow.kinds() == ["error"]


def test_session_limit_cuts_the_audio_and_flushes() -> None:
    flow = Flow(limits=replace(LIMITS, max_session_s=1.0)).send(START, pcm(0.6))
    flow.feed_events.append([Final(segment(0, "HELLO", 0.0, 0.9))])
    flow.flush_events = [Final(segment(1, "WORLD", 0.9, 1.0))]
    flow.send(pcm(0.6))
    assert flow.fed == [pcm(0.6), pcm(0.4)], "cut at the limit"
    assert flow.kinds() == ["ready", "final", "final", "error"]
    flow.ended_with("session_too_long", 1008)
    assert flow.metrics.audio == pytest.approx(1.0)


def test_a_frame_past_a_full_budget_is_not_fed() -> None:
    flow = Flow(limits=replace(LIMITS, max_session_s=1.0)).send(START, pcm(1.0), pcm(0.1))
    assert flow.fed == [pcm(1.0)] and flow.flushes == 1
    flow.ended_with("session_too_long", 1008)


def test_shutdown() -> None:
    before = Flow()
    before.run(before.conversation.shutdown())
    before.ended_with("shutting_down", 1001)
    assert before.flushes == 0
    streaming = Flow().send(START, pcm(0.5))
    streaming.flush_events = [Final(segment(0, "HELLO", 0.0, 0.5))]
    streaming.run(streaming.conversation.shutdown())
    assert streaming.kinds() == ["ready", "final", "error"]
    streaming.ended_with("shutting_down", 1001)
    assert streaming.conversation.shutdown() == []


def test_engine_errors_are_not_flushed() -> None:
    flow = Flow().send(START)
    flow.run(flow.conversation.fail(errors.SchedulerOverloadedError(512)))
    flow.ended_with("overloaded", 1013)
    assert flow.conversation.fail(errors.SchedulerOverloadedError(512)) == []


def test_a_bug_is_internal_and_tells_nothing(caplog: pytest.LogCaptureFixture) -> None:
    flow = Flow().send(START)
    with caplog.at_level(logging.ERROR):
        flow.run(flow.conversation.fail(KeyError("/secret/path")))
    flow.ended_with("internal", 1011)
    assert flow.error["message"] == "internal server error"
    assert caplog.records[-1].exc_info is not None, "the traceback goes to the log"


# -- Vosk -----------------------------------------------------------------------------------------


def test_vosk_one_reply_per_frame_and_eof() -> None:
    flow = Flow("vosk").send('{"config": {"sample_rate": 8000, "words": 0}}')
    assert flow.sent == [] and flow.opened == []
    flow.feed_events.append([Partial(0, Hypothesis("HEL", ""), 0.5)])
    flow.feed_events.append([Final(segment(0, "HELLO", 0.0, 0.9))])
    flow.send(pcm(0.5, 8000), pcm(0.5, 8000), '{"config": {"sample_rate": 16000}}')
    assert flow.opened == [Open(AudioFormat("s16le", 8000, 1), StreamOptions())]
    assert flow.sent == [{"partial": "HEL"}, {"text": "HELLO"}], "a config gets no reply"
    flow.flush_events = [Final(segment(1, "WORLD", 0.9, 1.0))]
    flow.send(EOF)
    assert flow.sent[-1] == {"text": "WORLD"}
    assert flow.closed == Close(1000) and flow.state is State.CLOSED


def test_vosk_ignores_what_comes_after_eof() -> None:
    flow = Flow("vosk").send(pcm(0.1))
    flow.late = pcm(0.1)
    flow.send(EOF)
    assert flow.sent == [{"partial": ""}, {"result": [], "text": ""}]
    assert flow.closed == Close(1000) and flow.metrics.errors == []


def test_vosk_eof_before_audio_gets_an_empty_result() -> None:
    flow = Flow("vosk").send(EOF)
    assert flow.opened == [Open(AudioFormat("s16le", 16000, 1), StreamOptions())]
    assert flow.sent == [{"result": [], "text": ""}]
    assert flow.closed == Close(1000)


def test_vosk_limits_send_one_last_result_before_the_error() -> None:
    flow = Flow("vosk", replace(LIMITS, max_session_s=1.0))
    flow.flush_events = [Final(segment(0, "HELLO", 0.0, 1.0))]
    flow.send(pcm(0.6), pcm(0.6))
    assert flow.kinds() == ["partial", "partial", "result", "error"]
    flow.ended_with("session_too_long", 1008)


def test_vosk_bad_audio_after_replies() -> None:
    flow = Flow("vosk").send(pcm(0.1), pcm(0.1))
    flow.run(flow.conversation.fail(errors.AudioDataError("3 bytes")))
    assert flow.kinds() == ["partial", "partial", "error"]
    flow.ended_with("bad_audio", 1007)


@pytest.mark.parametrize(
    ("messages", "code", "close"),
    [
        (["eof"], "invalid_json", 1007),
        (['{"partial": 1}'], "unknown_type", 1003),
        (['{"config": {"sample_rate": 4000}}'], "unsupported_rate", 1003),
        (['{"config": [1]}'], "invalid_field", 1007),
        ([b""], "empty_frame", 1007),
    ],
)
def test_vosk_bad_input(messages: list[str | bytes], code: str, close: int) -> None:
    Flow("vosk").send(*messages).ended_with(code, close)


# -- hardening: numbers and strings out of range ---------------------------------------------------

V1_FIELDS = ("protocol", "sample_rate", "channels", "partials", "words", "endpoint_ms")
V1_FIELDS += ("max_segment_s", "encoding", "type", "speed")


def _start_with(name: str, raw: str) -> str:
    fields = {"type": "start", "sample_rate": 16000}
    fields.pop(name, None)
    body = json.dumps(fields)[:-1]
    return f'{body}, "{name}": {raw}}}'


@pytest.mark.parametrize("name", V1_FIELDS)
@pytest.mark.parametrize(
    "raw",
    [HUGE, "-" + HUGE, "1e999", "0." + "0" * 5000 + "1"],
    ids=["huge", "huge_negative", "overflow", "long_fraction"],
)
def test_a_huge_number_in_any_start_field_is_invalid_field(name: str, raw: str) -> None:
    flow = Flow().send(_start_with(name, raw))
    flow.ended_with("invalid_field", 1007)
    assert repr(name) in flow.error["message"]
    assert len(flow.error["message"]) < 300


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "stop", "x": %s}',
        '{"config": {"sample_rate": %s}}',
        '{"config": {"words": %s}}',
        '{"config": {"phrase_list": [[%s]]}}',
        '{"config": {"sample_rate": 16000}, "other": %s}',
        '{"eof": %s}',
    ],
)
def test_a_huge_number_anywhere_is_invalid_field(message: str) -> None:
    dialect = "v1" if "type" in message else "vosk"
    flow = Flow(dialect)
    if dialect == "v1":
        flow.send(START)
    flow.send(message.replace("%s", HUGE))
    assert flow.error["code"] == "invalid_field"
    assert flow.closed == Close(1007, "invalid_field")


BIG = "x" * 1_000_000


@pytest.mark.parametrize(
    ("dialect", "message"),
    [
        ("v1", json.dumps({"type": "start", "sample_rate": 16000, "encoding": BIG})),
        ("v1", json.dumps({"type": BIG})),
        ("v1", json.dumps({"type": "start", "sample_rate": 16000, BIG: 1})),
        ("v1", json.dumps({"type": "start", "sample_rate": BIG})),
        ("vosk", json.dumps({"config": {"phrase_list": [BIG]}})),
        ("vosk", json.dumps({BIG: 1})),
    ],
)
def test_an_oversized_string_is_refused_and_never_echoed(
    dialect: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=log.name):
        flow = Flow(dialect).send(message)
    flow.ended_with("invalid_field", 1007)
    assert len(flow.error["message"]) < 300
    assert all(len(r.getMessage()) < 400 for r in caplog.records)


def test_strings_and_numbers_within_bounds_are_fine() -> None:
    text = json.dumps({"config": {"phrase_list": ["a" * 256] * 3, "max_alternatives": 10**30}})
    flow = Flow("vosk").send(text, EOF)
    assert flow.closed == Close(1000)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("abc", "'abc'"),
        ("x" * 1000, "'" + "x" * 199 + "...(1002 characters)"),
        (10**5000, "<an integer of 16610 bits>"),
        (12345, "12345"),
    ],
    ids=["short", "long", "huge_int", "int"],
)
def test_echo_bounds_what_errors_quote(value: Any, shown: str) -> None:
    assert errors.echo(value) == shown


def test_every_echoing_error_is_bounded() -> None:
    big = "y" * 10_000
    for error in (
        errors.InvalidFieldError(big, "unknown field"),
        errors.UnknownMessageError(big),
        errors.UnsupportedRateError(big, 8000, 192000),
        errors.StreamConfigError("endpoint_ms", big, "100 to 10000"),
        errors.ServerConfigError("--port", big, "not a port"),
    ):
        assert len(str(error)) < 300, type(error)


def test_value_errors_have_a_builtin_co_base() -> None:
    for error in (
        errors.InvalidFieldError("x", "bad"),
        errors.InvalidJsonError("bad"),
        errors.UnsupportedRateError(1, 8000, 192000),
        errors.EmptyFrameError(),
        errors.StreamConfigError("x", 1, "2 to 3"),
        errors.AudioFormatError("bad"),
        errors.AudioDataError("bad"),
        errors.ServerConfigError("--x", 1, "bad"),
    ):
        assert isinstance(error, ValueError) and isinstance(error, errors.AsrError)
    assert isinstance(errors.InvalidFieldError("x", "bad"), errors.ProtocolError)
