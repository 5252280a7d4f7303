"""The client's side of protocol v1 without sockets: start messages and typed server messages."""

from __future__ import annotations

import json

import pytest

from streamasr.client.messages import (
    End,
    FinalResult,
    Lagging,
    PartialResult,
    Ready,
    ServerError,
    ServerMessageError,
    StartSettings,
    Unknown,
    WordTiming,
    parse_message,
    start_message,
)
from streamasr.client.ws import ConnectOptions
from streamasr.server.protocol.v1 import StartMessage, parse_text


def test_start_message_is_what_the_server_parses() -> None:
    settings = StartSettings(44100, "f32le", channels=2, partials=False, endpoint_ms=500)
    data = json.loads(start_message(settings))
    assert data == {
        "type": "start",
        "sample_rate": 44100,
        "encoding": "f32le",
        "channels": 2,
        "partials": False,
        "words": True,
        "endpoint_ms": 500,
    }
    parsed = parse_text(start_message(settings))  # the server's own parser accepts it
    assert parsed == StartMessage(44100, "f32le", 2, partials=False, words=True, endpoint_ms=500)
    assert "endpoint_ms" not in json.loads(start_message(StartSettings(16000)))


@pytest.mark.parametrize("kwargs", [{"sample_rate": 0}, {"channels": 3}, {"encoding": "mulaw"}])
def test_bad_start_settings(kwargs: dict[str, object]) -> None:
    arguments: dict[str, object] = {"sample_rate": 16000, **kwargs}
    with pytest.raises(ValueError):
        StartSettings(**arguments)  # type: ignore[arg-type]


def test_server_messages() -> None:
    ready = parse_message(
        '{"type":"ready","protocol":1,"session":"s1","model":"m","precision":"int8"}'
    )
    assert ready == Ready("s1", "m", "int8", 1)
    partial = parse_message(
        '{"type":"partial","segment":2,"committed":"HEL","text":"HELLO WO","start":1.5}'
    )
    assert partial == PartialResult(2, "HEL", "HELLO WO", 1.5)
    assert isinstance(partial, PartialResult) and partial.provisional == "LO WO"
    final = parse_message(
        '{"type":"final","segment":0,"text":"HI","start":0.0,"end":1.2,"reason":"endpoint",'
        '"words":[{"word":"HI","start":0.1,"end":0.4,"confidence":0.93}]}'
    )
    assert final == FinalResult(0, "HI", 0.0, 1.2, (WordTiming("HI", 0.1, 0.4, 0.93),), "endpoint")
    bare = parse_message('{"type":"final","segment":1,"text":"HI","start":0,"end":1}')
    assert isinstance(bare, FinalResult) and bare.words == ()
    assert parse_message('{"type":"end","audio_seconds":3.2}') == End(3.2)
    assert parse_message('{"type":"lagging","lag_s":2.5}') == Lagging(2.5)
    assert parse_message('{"type":"from_the_future","x":1}') == Unknown("from_the_future")


def test_error_message_raises() -> None:
    with pytest.raises(ServerError) as caught:
        parse_message('{"type":"error","code":"unsupported_rate","message":"no"}')
    assert caught.value.code == "unsupported_rate" and caught.value.message == "no"


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"no_type": 1}',
        '{"type": "final", "segment": 0}',
        '{"type": "partial", "segment": "x", "text": ""}',
        '{"type": "final","segment":0,"text":"A","start":0,"end":1,"words":[3]}',
        b"\x00\x01",
    ],
)
def test_malformed_messages(text: str | bytes) -> None:
    with pytest.raises(ServerMessageError):
        parse_message(text)


def test_connect_options() -> None:
    with pytest.raises(ValueError):
        ConnectOptions(url="http://localhost:2700/v1/stream")
    assert ConnectOptions(url="ws://h/v1/stream", insecure=True).ssl_context() is None
    context = ConnectOptions(url="wss://h/v1/stream", insecure=True).ssl_context()
    assert context is not None and not context.check_hostname
    assert ConnectOptions(url="wss://h/v1/stream").ssl_context() is None  # default verification
