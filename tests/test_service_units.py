"""The socket-free parts of the service: v1 messages, the error table, the Vosk dialect, the
metrics' starting values and the HTTP answers (tests/test_metrics.py covers the metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamasr.server import errors
from streamasr.server.events import Final, Hypothesis, Lagging, Partial, Segment, Word
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol import clientjson, v1
from streamasr.server.protocol.vosk import VoskConfig, VoskEof, VoskReplies, parse_vosk_text
from streamasr.server.service import pages
from streamasr.server.service.metrics import ServiceMetrics

from .service_util import parse_exposition

# -- protocol v1 ----------------------------------------------------------------------------------


def test_start_defaults_and_options() -> None:
    start = v1.parse_text('{"type": "start", "sample_rate": 44100.0}')
    assert start == v1.StartMessage(sample_rate=44100)
    assert isinstance(start, v1.StartMessage)
    assert start.audio_format().frame_bytes == 2
    full = v1.parse_text(
        json.dumps(
            {
                "type": "start",
                "protocol": 1,
                "sample_rate": 8000,
                "encoding": "f32le",
                "channels": 2,
                "partials": False,
                "words": False,
                "endpoint_ms": 300,
                "max_segment_s": 10,
            }
        )
    )
    assert isinstance(full, v1.StartMessage)
    options = full.stream_options(StreamOptions())
    assert (options.endpoint_ms, options.max_segment_s) == (300, 10.0)
    assert full.audio_format().frame_bytes == 8
    assert v1.parse_text('{"type": "stop"}') == v1.StopMessage()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", errors.InvalidJsonError),
        ("null", errors.InvalidJsonError),
        ('"start"', errors.InvalidJsonError),
        ('{"type": "start", "sample_rate": Infinity}', errors.InvalidJsonError),
        ("[" * 100_000, errors.InvalidJsonError),
        ('{"type": 1}', errors.UnknownMessageError),
        ('{"type": "Start", "sample_rate": 16000}', errors.UnknownMessageError),
        ("{}", errors.InvalidFieldError),
        ('{"type": "stop", "now": true}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": true}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": 16000, "channels": 1.0}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": 16000, "partials": 1}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": 16000, "protocol": 2}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": 16000, "endpoint_ms": 1.5}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": 16000, "max_segment_s": "x"}', errors.InvalidFieldError),
        ('{"type": "start", "sample_rate": -16000}', errors.UnsupportedRateError),
        ('{"type": "start", "sample_rate": 1e9}', errors.UnsupportedRateError),
    ],
)
def test_bad_text_messages(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        v1.parse_text(text)


def test_out_of_range_stream_option_is_invalid_field() -> None:
    start = v1.parse_text('{"type": "start", "sample_rate": 16000, "max_segment_s": 500}')
    assert isinstance(start, v1.StartMessage)
    with pytest.raises(errors.StreamConfigError) as info:
        start.stream_options(StreamOptions())
    assert v1.error_spec(info.value).code == "invalid_field"


def test_is_v1_message() -> None:
    assert clientjson.is_v1_message('{"type": "start", "sample_rate": 16000}')
    assert clientjson.is_v1_message('{"type": "nonsense"}')
    assert clientjson.is_v1_message('{"type": "start", "sample_rate": 1' + "0" * 5000 + "}")
    assert not clientjson.is_v1_message('{"config": {"sample_rate": 16000}}')
    assert not clientjson.is_v1_message('{"eof" : 1}')
    assert not clientjson.is_v1_message(b"\x00\x01")
    assert not clientjson.is_v1_message("not json")


def test_every_service_error_has_one_documented_code() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text("utf-8")
    for cls, spec in v1.ERROR_TABLE.items():
        assert f"`{spec.code}` | {spec.close} |" in docs, (cls, spec)
        assert cls.__name__ in docs or cls is errors.AsrError, cls
    assert v1.error_spec(errors.SessionTooLongError(3)) == v1.ErrorSpec("session_too_long", 1008)
    assert v1.error_spec(errors.ManifestError("x", "y")).code == "internal"
    assert v1.error_spec(ValueError("bug")) == v1.INTERNAL
    assert v1.client_message(ValueError("secret path")) == "internal server error"


def _segment(index: int, text: str, start: float, end: float) -> Segment:
    words = tuple(
        Word(w, start + 0.1 * i, start + 0.1 * i + 0.05, 0.9) for i, w in enumerate(text.split())
    )
    return Segment(index, text, words, start, end, "endpoint")


def test_server_messages() -> None:
    partial = Partial(2, Hypothesis("HEL", "LO"), 3.04321)
    assert v1.partial_message(partial, 1.23456) == {
        "type": "partial",
        "segment": 2,
        "committed": "HEL",
        "text": "HELLO",
        "start": 1.235,
        "audio_end": 3.043,
    }
    final = v1.final_message(_segment(0, "A B", 0.0, 1.0), words=True)
    assert final["words"][1] == {"word": "B", "start": 0.1, "end": 0.15, "confidence": 0.9}
    assert "words" not in v1.final_message(_segment(0, "A", 0.0, 1.0), words=False)
    assert v1.lagging_message(Lagging(2.34567)) == {"type": "lagging", "lag_s": 2.346}
    assert v1.end_message(3.2) == {"type": "end", "audio_seconds": 3.2}
    text = v1.encode(v1.ready_message("s", "m", "int8"))
    assert json.loads(text) == {
        "type": "ready",
        "protocol": 1,
        "session": "s",
        "model": "m",
        "precision": "int8",
    }


# -- Vosk -----------------------------------------------------------------------------------------


def test_vosk_messages() -> None:
    assert parse_vosk_text('{ "config" : { "sample_rate" : 8000.0, "words": 0 } }') == VoskConfig(
        8000, False
    )
    # phrase_list becomes hotwords, max_alternatives the shape of finals
    config = '{"config": {"phrase_list": ["a b"], "max_alternatives": 3}}'
    assert parse_vosk_text(config) == VoskConfig(phrase_list=("a b",), max_alternatives=3)
    assert parse_vosk_text('{"eof" : 1}') == VoskEof()
    with pytest.raises(errors.InvalidFieldError):
        parse_vosk_text('{"config": [1]}')
    with pytest.raises(errors.UnsupportedRateError):
        parse_vosk_text('{"config": {"sample_rate": 300000}}')
    with pytest.raises(errors.UnknownMessageError):
        parse_vosk_text('{"text": "x"}')


def test_vosk_one_reply_per_message() -> None:
    replies = VoskReplies(words=True)
    assert replies.reply([]) == {"partial": ""}
    assert replies.reply([Partial(0, Hypothesis("HEL", "LO"), 1.0)]) == {"partial": "HELLO"}
    assert replies.reply([]) == {"partial": "HELLO"}
    two = [
        Final(_segment(0, "HELLO", 0.0, 1.0)),
        Partial(1, Hypothesis("WO", ""), 2.0),
        Final(_segment(1, "WORLD", 1.0, 2.0)),
    ]
    result = replies.reply(two)
    assert result["text"] == "HELLO WORLD"
    assert [w["word"] for w in result["result"]] == ["HELLO", "WORLD"]
    assert set(result["result"][0]) == {"word", "start", "end", "conf"}
    assert replies.reply([]) == {"partial": ""}
    assert replies.final([]) == {"result": [], "text": ""}
    assert VoskReplies(words=False).final([Final(_segment(0, "A", 0, 1))]) == {"text": "A"}


# -- metrics --------------------------------------------------------------------------------------


def test_service_metrics_start_at_zero() -> None:
    samples = parse_exposition(ServiceMetrics().render())
    assert samples[("asr_sessions_total", frozenset({("protocol", "v1")}))] == 0
    assert samples[("asr_sessions_active", frozenset({("protocol", "vosk")}))] == 0
    assert samples[("asr_partial_latency_seconds_count", frozenset())] == 0
    assert samples[("asr_model_loaded", frozenset())] == 0
    assert samples[("asr_scheduler_batches_total", frozenset())] == 0


# -- HTTP -----------------------------------------------------------------------------------------


def test_static_files_stay_in_their_folder(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hi</p>", encoding="utf-8")
    (tmp_path / "style.css").write_text("p {}", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.js").write_text("", encoding="utf-8")
    (tmp_path / ".hidden.js").write_text("", encoding="utf-8")
    assert pages.static_file(tmp_path, "index.html").status_code == 200
    css = pages.static_file(tmp_path, "style.css")
    assert css.headers["Content-Type"].startswith("text/css") and css.body == b"p {}"
    for name in ("sub/x.js", "../index.html", ".hidden.js", "index.htm", "", "a.py"):
        assert pages.static_file(tmp_path, name).status_code == 404, name
    missing = pages.static_file(tmp_path / "nowhere", "index.html")
    assert missing.status_code == 404 and b"index.html is missing" in missing.body


def test_refusal_answers() -> None:
    assert pages.unavailable("busy", 1).headers["Retry-After"] == "1"
    assert pages.unauthorized().headers["WWW-Authenticate"].startswith("Bearer")
    assert pages.forbidden_origin("http://x").status_code == 403
    health = pages.health({"status": "loading"}, ready=False)
    assert health.status_code == 503 and json.loads(health.body) == {"status": "loading"}
