"""OpenAI realtime transcription sessions: the wire and the conversation without sockets (a fake
clock, scripted engine events), then end to end over a real server with the ``openai`` SDK's
realtime client and raw websockets."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamasr.server.events import Final, Hypothesis, Partial
from streamasr.server.options.gate import VadGateConfig
from streamasr.server.options.stream import StreamOptions
from streamasr.server.protocol.clientjson import JsonObject
from streamasr.server.protocol.conversation import Limits, State
from streamasr.server.protocol.openai.g711 import decode_g711
from streamasr.server.protocol.openai.realtime import (
    MAX_EVENT_CHARS,
    RealtimeRequestError,
    SessionUpdate,
    TranscriptionSettings,
    parse_client_event,
)
from streamasr.server.protocol.openai.realtime_conversation import (
    RealtimeConversation,
    initial_settings,
    stream_options,
)
from streamasr.server.protocol.openai.session_settings import apply_update

from .service_util import ServerThread, read_mono, resample, server_config, to_s16
from .test_conversation import LIMITS, NO_RATE, Flow, log, segment

TOKEN = "rt-secret"


def append(audio: bytes, event_id: str | None = None) -> str:
    event: JsonObject = {
        "type": "input_audio_buffer.append",
        "audio": base64.b64encode(audio).decode(),
    }
    if event_id:
        event["event_id"] = event_id
    return json.dumps(event)


COMMIT = json.dumps({"type": "input_audio_buffer.commit"})
CLEAR = json.dumps({"type": "input_audio_buffer.clear"})


def realtime_flow(
    beta: bool = False, options: StreamOptions | None = None, limits: Limits = LIMITS
) -> Flow:
    flow = Flow("vosk")
    flow.conversation = RealtimeConversation(
        limits,
        options or StreamOptions(),
        session="s1",
        beta=beta,
        clock=flow.clock,
        metrics=flow.metrics,
        log=log,
    )
    flow.run(flow.conversation.greeting())
    return flow


def partial(text: str, committed: str) -> Partial:
    return Partial(0, Hypothesis(committed, text[len(committed) :]), 1.0)


def kinds(sent: list[JsonObject]) -> list[str]:
    return [str(m["type"]) for m in sent]


# -- the wire -------------------------------------------------------------------------------------


def test_g711_tables_match_the_itu_reference_values() -> None:
    ulaw = np.frombuffer(decode_g711(bytes([0xFF, 0x00, 0x80, 0x7F]), "pcmu"), "<i2")
    alaw = np.frombuffer(decode_g711(bytes([0xD5, 0x55, 0xAA, 0x2A]), "pcma"), "<i2")
    assert ulaw.tolist() == [0, -32124, 32124, 0]
    assert alaw.tolist() == [8, -8, 32256, -32256]


def test_ga_and_beta_updates_map_onto_the_same_settings() -> None:
    current = initial_settings(StreamOptions(gate=VadGateConfig()))
    ga = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcmu"},
                "transcription": {"model": "whisper-1", "prompt": "Kubernetes, kubectl"},
                "turn_detection": {
                    "type": "server_vad",
                    "silence_duration_ms": 700,
                    "prefix_padding_ms": 200,
                    "threshold": 0.6,
                },
            }
        },
    }
    beta = {
        "input_audio_format": "g711_ulaw",
        "input_audio_transcription": {
            "model": "whisper-1",
            "prompt": "Kubernetes, kubectl",
        },
        "turn_detection": {"silence_duration_ms": 700, "prefix_padding_ms": 200, "threshold": 0.6},
    }
    a = apply_update(current, SessionUpdate(ga, beta=False))
    b = apply_update(current, SessionUpdate(beta, beta=True))
    assert a == b
    assert a.sample_rate == 8000 and a.hotwords == ("Kubernetes", "kubectl")
    options = stream_options(StreamOptions(gate=VadGateConfig()), a)
    assert options.endpoint_ms == 700
    assert options.gate == VadGateConfig(threshold=0.6, pad_s=0.2)
    assert options.decoding is not None and options.decoding.hotwords == a.hotwords
    off = apply_update(a, SessionUpdate({"turn_detection": None}, beta=True))
    assert off.turn_detection is None and stream_options(StreamOptions(), off).endpoint_ms == 10_000


@pytest.mark.parametrize(
    ("text", "code", "param"),
    [
        ("{", "invalid_json", None),
        ("[1]", "invalid_json", None),
        ('{"type": "response.create", "event_id": "e7"}', "invalid_value", "type"),
        ('{"type": "input_audio_buffer.append", "audio": "%%%"}', "invalid_audio", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_value", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": ""}', "invalid_audio", "audio"),
        ("1" * 5000, "invalid_json", None),
        ("[" * 100_000, "invalid_json", None),
        (" " * (MAX_EVENT_CHARS + 1), "event_too_large", None),
    ],
)
def test_bad_events_are_refused_with_a_code(text: str, code: str, param: str | None) -> None:
    with pytest.raises(RealtimeRequestError) as caught:
        parse_client_event(text)
    assert (caught.value.code, caught.value.param) == (code, param)


@pytest.mark.parametrize(
    "session",
    [
        {"type": "realtime"},
        {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
        {"audio": {"input": {"format": {"type": "audio/opus"}}}},
        {"audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
        {"audio": {"input": {"turn_detection": {"silence_duration_ms": 50}}}},
        {"audio": {"input": {"transcription": {"prompt": "x" * 5000}}}},
        {"audio": "pcm16"},
    ],
)
def test_unsupported_session_settings_are_refused(session: JsonObject) -> None:
    with pytest.raises(RealtimeRequestError) as caught:
        apply_update(TranscriptionSettings(None), SessionUpdate(session, beta=False))
    assert caught.value.code == "invalid_value" and caught.value.param


# -- the conversation -----------------------------------------------------------------------------


def test_greeting_follows_the_form_the_client_speaks() -> None:
    assert kinds(realtime_flow().sent) == ["session.created"]
    beta = realtime_flow(beta=True)
    assert kinds(beta.sent) == ["transcription_session.created"]
    assert beta.sent[0]["session"]["input_audio_format"] == "pcm16"


def test_deltas_carry_settled_words_and_add_up_to_the_transcript() -> None:
    flow = realtime_flow()
    flow.feed_events.extend(
        [
            [partial("hel", "hel")],
            [partial("hello wor", "hello wo")],
            [partial("hello world ag", "hello world a")],
            [Final(segment(0, "hello world again", 0.5, 2.0))],
        ]
    )
    frame = bytes(4800)
    flow.send(append(frame), append(frame), append(frame), append(frame))
    assert flow.opened[0].format.sample_rate == 24000
    assert kinds(flow.sent)[1:] == [
        "input_audio_buffer.speech_started",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.delta",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
    ]
    deltas = [m["delta"] for m in flow.sent if str(m["type"]).endswith(".delta")]
    assert deltas == ["hello", " world", " again"]
    completed = flow.sent[-1]
    assert completed["transcript"] == "".join(str(d) for d in deltas)
    items = {m["item_id"] for m in flow.sent if "item_id" in m}
    assert len(items) == 1
    assert len({m["event_id"] for m in flow.sent}) == len(flow.sent)
    assert flow.sent[-3]["previous_item_id"] is None
    assert flow.sent[-4]["audio_end_ms"] == 2000


def test_commit_flushes_and_the_session_goes_on_with_a_new_stream() -> None:
    flow = realtime_flow()
    flow.flush_events = [Final(segment(0, "one two", 0.0, 1.0))]
    flow.send(append(bytes(24000)), COMMIT)
    assert flow.flushes == 1 and flow.state is State.AWAITING_START
    assert kinds(flow.sent)[-1] == "conversation.item.input_audio_transcription.completed"
    first_item = flow.sent[-1]["item_id"]
    flow.flush_events = []
    flow.send(append(bytes(24000)), COMMIT)  # silence: an empty item of its own
    assert len(flow.opened) == 2 and flow.closed is None
    committed = [m for m in flow.sent if m["type"] == "input_audio_buffer.committed"]
    assert committed[-1]["previous_item_id"] == first_item
    assert flow.sent[-1]["transcript"] == ""
    assert flow.sent[-3]["audio_end_ms"] == 1000  # the session's clock: 0.5 s + 0.5 s
    assert flow.conversation.audio_seconds == pytest.approx(1.0)


def test_commit_or_clear_without_audio_and_binary_frames_are_error_events() -> None:
    flow = realtime_flow()
    flow.send(COMMIT, b"\x00\x01", append(b"\x00", event_id="odd"), CLEAR)
    errors = [m["error"] for m in flow.sent if m["type"] == "error"]
    assert [e["code"] for e in errors] == [
        "input_audio_buffer_commit_empty",
        "binary_not_supported",
        "invalid_audio",
    ]
    assert errors[2]["event_id"] == "odd" and errors[2]["param"] == "audio"
    assert kinds(flow.sent)[-1] == "input_audio_buffer.cleared"
    assert flow.closed is None and flow.metrics.errors[0] == "input_audio_buffer_commit_empty"


def test_clear_drops_what_the_buffer_said() -> None:
    flow = realtime_flow()
    flow.feed_events.append([partial("hello wor", "hello wo")])
    flow.flush_events = [Final(segment(0, "hello world", 0.0, 1.0))]
    flow.send(append(bytes(4800)), CLEAR)
    assert kinds(flow.sent)[-1] == "input_audio_buffer.cleared"
    assert "conversation.item.input_audio_transcription.completed" not in kinds(flow.sent)


def test_a_message_during_the_commit_flush_is_handled_after_it() -> None:
    flow = realtime_flow()
    flow.late = append(bytes(480), event_id="late")
    flow.flush_events = [Final(segment(0, "one", 0.0, 1.0))]
    flow.send(append(bytes(4800)), COMMIT)
    assert len(flow.opened) == 2 and len(flow.fed) == 2


def test_format_changes_wait_for_an_empty_buffer() -> None:
    flow = realtime_flow()
    pcmu = {
        "type": "session.update",
        "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}},
    }
    flow.send(append(bytes(480)), json.dumps(pcmu))
    assert flow.sent[-1]["type"] == "error"
    flow.send(COMMIT, json.dumps(pcmu), append(bytes([0xFF] * 80)))
    assert flow.sent[-1]["type"] == "session.updated"
    assert flow.opened[-1].format.sample_rate == 8000 and flow.fed[-1] == bytes(160)


def test_the_idle_timeout_ends_the_session_with_an_openai_error_event() -> None:
    flow = realtime_flow(limits=NO_RATE)
    flow.flush_events = [Final(segment(0, "last words", 0.0, 1.0))]
    flow.send(append(bytes(4800))).wait(10.0)
    assert flow.closed is not None and flow.closed.code == 1001
    assert kinds(flow.sent)[-2] == "conversation.item.input_audio_transcription.completed"
    error = flow.sent[-1]
    assert error["type"] == "error" and isinstance(error["event_id"], str)
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "idle_timeout",
        "message": error["error"]["message"],
        "param": None,
        "event_id": None,
    }


# -- end to end -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    config = server_config(fixture_export, auth_token=TOKEN, allowed_origins=("https://app.test",))
    with ServerThread(config) as running:
        yield running


def speech_24k(tts_set: list[tuple[Path, str]], index: int) -> tuple[bytes, str]:
    path, reference = tts_set[index]
    samples, rate = read_mono(path)
    audio = resample(samples, rate, 24000)
    silence = np.zeros(24000, dtype=np.float32)
    return to_s16(np.concatenate([audio, silence])).tobytes(), reference


def chunks(data: bytes, size: int = 4800) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def assert_transcribed(events: list[JsonObject], reference: str) -> None:
    deltas: dict[str, str] = {}
    transcripts = []
    for event in events:
        if event["type"] == "conversation.item.input_audio_transcription.delta":
            deltas[str(event["item_id"])] = deltas.get(str(event["item_id"]), "") + str(
                event["delta"]
            )
        elif event["type"] == "conversation.item.input_audio_transcription.completed":
            assert deltas.get(str(event["item_id"]), "") == event["transcript"]
            transcripts.append(str(event["transcript"]))
    hypothesis = " ".join(t for t in transcripts if t)
    assert jiwer.cer(reference.lower(), hypothesis.lower()) < 0.2, hypothesis  # a small model


def test_openai_sdk_transcription_session(server: ServerThread, tts_set: Any) -> None:
    openai = pytest.importorskip("openai")  # the dev extra installs it
    audio, reference = speech_24k(tts_set, 1)

    async def session() -> list[JsonObject]:
        client = openai.AsyncOpenAI(api_key=TOKEN, websocket_base_url=f"{server.ws_url('')}/v1")
        events: list[JsonObject] = []
        async with client.realtime.connect(
            model="gpt-4o-transcribe", extra_query={"intent": "transcription"}
        ) as conn:
            await conn.session.update(
                session={
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "format": {"type": "audio/pcm", "rate": 24000},
                            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 600},
                        }
                    },
                }
            )
            for chunk in chunks(audio):
                await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.input_audio_buffer.commit()
            await conn.session.update(session={"type": "transcription"})  # a marker
            updates = 0
            async for event in conn:
                events.append(event.to_dict())
                updates += event.type == "session.updated"
                if updates == 2:
                    break
        return events

    events = server.call(session())
    assert events[0]["type"] == "session.created"
    assert events[0]["session"]["type"] == "transcription"
    assert_transcribed(events, reference)


async def raw_session(url: str, messages: list[str], until: str, **kwargs: Any) -> list[JsonObject]:
    events: list[JsonObject] = []
    async with connect(url, max_size=None, **kwargs) as ws:
        for message in messages:
            await ws.send(message)
        async for text in ws:
            events.append(json.loads(text))
            if events[-1]["type"] == until:
                return events
    return events


def test_subprotocol_auth_and_bad_events_leave_a_concurrent_session_alone(
    server: ServerThread, tts_set: Any
) -> None:
    url = server.ws_url("/v1/realtime?intent=transcription")
    audio, reference = speech_24k(tts_set, 1)
    good = [append(c) for c in chunks(audio)] + [COMMIT, CLEAR]
    huge = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (MAX_EVENT_CHARS + 8)})
    bad = [
        append(bytes(4800)),
        json.dumps({"type": "input_audio_buffer.append", "audio": "not base64!", "event_id": "b1"}),
        huge,
        json.dumps({"type": "conversation.item.create", "event_id": "b3"}),
        COMMIT,
        COMMIT,
        CLEAR,
    ]
    protocols = ["realtime", f"openai-insecure-api-key.{TOKEN}", "openai-beta.realtime-v1"]

    async def both() -> tuple[list[JsonObject], list[JsonObject], str | None]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with connect(url, subprotocols=protocols, origin="https://app.test") as ws:  # type: ignore[arg-type]
            chosen = ws.subprotocol
        results = await asyncio.gather(
            raw_session(url, good, "input_audio_buffer.cleared", additional_headers=headers),
            raw_session(url, bad, "input_audio_buffer.cleared", subprotocols=protocols),
        )
        return results[0], results[1], chosen

    good_events, bad_events, chosen = server.call(both())
    assert chosen == "realtime"
    assert_transcribed(good_events, reference)
    assert "error" not in kinds(good_events)
    errors = [e["error"] for e in bad_events if e["type"] == "error"]
    assert [(e["code"], e["event_id"]) for e in errors] == [
        ("invalid_audio", "b1"),
        ("event_too_large", None),
        ("invalid_value", "b3"),
        ("input_audio_buffer_commit_empty", None),
    ]
    assert "input_audio_buffer.committed" in kinds(bad_events)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/realtime?intent=transcription", {}, 401),
        ("/v1/realtime?intent=conversation", {"Authorization": f"Bearer {TOKEN}"}, 400),
    ],
)
def test_upgrades_without_a_key_or_for_another_intent_are_refused(
    server: ServerThread, path: str, headers: dict[str, str], status: int
) -> None:
    async def attempt() -> None:
        async with connect(server.ws_url(path), additional_headers=headers):
            pass

    with pytest.raises(InvalidStatus) as caught:
        server.call(attempt())
    assert caught.value.response.status_code == status
