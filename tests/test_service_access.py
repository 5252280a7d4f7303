"""Who may open a session: token (401), origin (403), capacity and loading (503), TLS, and the
inference queue limit (1013). Refusals happen before the websocket handshake."""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamasr.server.engine.engine import Engine
from streamasr.server.errors import ModelStoreError

from .service_util import (
    HEALTHY_RATE,
    Audio,
    Outcome,
    ServerThread,
    converse,
    encode,
    healthy_speech,
    http_get,
    read_mono,
    server_config,
    start_text,
    stream_healthy,
    stream_v1,
)
from .timeouts import timeout

TOKEN = "s3cret-token"
GOOD_ORIGIN = "http://good.example"


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    config = server_config(
        fixture_export, auth_token=TOKEN, allowed_origins=(GOOD_ORIGIN,), max_connections=2
    )
    with ServerThread(config) as running:
        yield running


@pytest.fixture(scope="module")
def speech(shared_dir: Path) -> Audio:
    return healthy_speech(shared_dir)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def healthy(
    url: str, speech: Audio, connected: asyncio.Event | None = None, **kwargs: Any
) -> Outcome:
    kwargs.setdefault("headers", AUTH)
    return await stream_healthy(url, speech, connected=connected, **kwargs)


@pytest.fixture(scope="module")
def reference(server: ServerThread, speech: Audio) -> list[dict[str, Any]]:
    outcome = asyncio.run(healthy(server.ws_url(), speech))
    assert outcome.code == 1000 and outcome.of("final")
    return outcome.of("final")


async def refused(url: str, headers: dict[str, str] | None = None) -> InvalidStatus:
    try:
        async with connect(url, additional_headers=headers, open_timeout=timeout(30)):
            pass
    except InvalidStatus as exc:
        return exc
    raise AssertionError(f"{url} accepted the connection")


async def refusals_beside_healthy(
    server: ServerThread, speech: Audio, attempts: list[tuple[str, dict[str, str] | None]]
) -> tuple[list[InvalidStatus], Outcome]:
    connected = asyncio.Event()
    good = asyncio.create_task(healthy(server.ws_url(), speech, connected))
    await connected.wait()
    results = [await refused(url, headers) for url, headers in attempts]
    return results, await good


def test_token_is_required(server: ServerThread, speech: Audio, reference: list[Any]) -> None:
    url = server.ws_url()
    attempts: list[tuple[str, dict[str, str] | None]] = [
        (url, None),
        (url, {"Authorization": "Bearer wrong"}),
        (url, {"Authorization": f"Basic {TOKEN}"}),
        (url + "?token=wrong", None),
        (server.ws_url("/vosk"), None),
        (server.ws_url("/"), None),
    ]
    results, good = asyncio.run(refusals_beside_healthy(server, speech, attempts))
    for exc in results:
        assert exc.response.status_code == 401
        assert exc.response.headers["WWW-Authenticate"].startswith("Bearer")
    assert good.code == 1000 and good.of("final") == reference


def test_token_in_the_query_string(
    server: ServerThread, speech: Audio, reference: list[Any]
) -> None:
    outcome = asyncio.run(healthy(server.ws_url() + f"?token={TOKEN}", speech, headers={}))
    assert outcome.code == 1000 and outcome.of("final") == reference


def test_http_pages_need_no_token(server: ServerThread) -> None:
    assert http_get(server.port, "/healthz").status == 200
    assert http_get(server.port, "/metrics").status == 200


def test_origin_must_be_allowed(server: ServerThread, speech: Audio, reference: list[Any]) -> None:
    attempts: list[tuple[str, dict[str, str] | None]] = [
        (server.ws_url(), {**AUTH, "Origin": "http://evil.example"}),
        (server.ws_url("/vosk"), {**AUTH, "Origin": "null"}),
    ]
    results, good = asyncio.run(refusals_beside_healthy(server, speech, attempts))
    for exc in results:
        assert exc.response.status_code == 403
        assert b"allowed-origins" in exc.response.body
    assert good.code == 1000 and good.of("final") == reference
    allowed = asyncio.run(healthy(server.ws_url(), speech, headers={**AUTH, "Origin": GOOD_ORIGIN}))
    assert allowed.code == 1000 and allowed.of("final") == reference


def test_capacity(server: ServerThread, speech: Audio, reference: list[Any]) -> None:
    """With max_connections=2, a held session and a healthy one: the third gets 503."""

    async def scenario() -> tuple[InvalidStatus, Outcome, Outcome, Outcome]:
        held_open = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> Outcome:
            async with connect(server.ws_url(), additional_headers=AUTH) as ws:
                await ws.send(start_text(HEALTHY_RATE))
                ready = json.loads(await ws.recv())
                held_open.set()
                await release.wait()
            return Outcome(messages=[ready])

        holder = asyncio.create_task(hold())
        await held_open.wait()
        connected = asyncio.Event()
        good = asyncio.create_task(healthy(server.ws_url(), speech, connected))
        await connected.wait()
        exc = await refused(server.ws_url(), AUTH)
        release.set()
        held, outcome = await holder, await good
        after = await healthy(server.ws_url(), speech)
        return exc, held, outcome, after

    exc, held, good, after = asyncio.run(scenario())
    assert held.of("ready")
    assert exc.response.status_code == 503
    assert exc.response.headers["Retry-After"] == "1"
    assert b"capacity" in exc.response.body
    assert good.code == 1000 and good.of("final") == reference
    assert after.code == 1000 and after.of("final") == reference, "slots are given back"


def test_unknown_websocket_path_is_404(server: ServerThread) -> None:
    exc = asyncio.run(refused(server.ws_url("/v2/stream"), AUTH))
    assert exc.response.status_code == 404


def test_503_until_the_model_is_loaded(fixture_export: Path) -> None:
    gate = threading.Event()
    config = server_config(fixture_export)

    def slow_loader() -> Engine:
        gate.wait(timeout(60))
        return Engine(fixture_export, config.engine_config())

    server = ServerThread(config, loader=slow_loader).start(wait_loaded=False)
    try:
        loading = http_get(server.port, "/healthz")
        assert loading.status == 503 and loading.json()["status"] == "loading"
        exc = asyncio.run(refused(server.ws_url()))
        assert exc.response.status_code == 503
        assert exc.response.headers["Retry-After"] == "5"
        gate.set()
        assert server.service is not None
        server.call(server.service.wait_loaded())
        ready = http_get(server.port, "/healthz")
        assert ready.status == 200 and ready.json()["status"] == "ok"
    finally:
        gate.set()
        server.stop()


def test_failed_load_is_reported(tmp_path: Path) -> None:
    config = server_config(tmp_path / "no-such-model")
    server = ServerThread(config).start(wait_loaded=False)
    try:
        assert server.service is not None
        with pytest.raises(ModelStoreError, match="no-such-model"):
            server.call(server.service.wait_loaded())
        health = http_get(server.port, "/healthz")
        assert health.status == 503 and health.json()["status"] == "error"
        assert "no-such-model" in health.json()["error"]
    finally:
        server.stop()


def test_overloaded_inference_queue_closes_1013(fixture_export: Path, shared_dir: Path) -> None:
    """A queue of one window that waits 1 s for a batch: the second window does not fit."""
    config = server_config(fixture_export, max_queue=1, max_wait_ms=1000.0, max_batch=8)
    samples, rate = read_mono(shared_dir / "speech" / "dev" / "tts" / "tts-001.flac")
    with ServerThread(config) as server:
        outcome = asyncio.run(
            converse(server.ws_url(), [start_text(rate), encode(samples, "s16le")])
        )
        health = http_get(server.port, "/healthz")
    assert outcome.error is not None and outcome.error["code"] == "overloaded"
    assert outcome.code == 1013
    assert health.status == 200, "the server itself is fine"


def test_tls(fixture_export: Path, certificate: tuple[Path, Path], speech: Audio) -> None:
    cert, key = certificate
    config = server_config(fixture_export, tls_cert=cert, tls_key=key)
    trusted = ssl.create_default_context(cafile=str(cert))
    with ServerThread(config) as server:
        assert server.service is not None and server.service.url.startswith("wss://")
        secure = asyncio.run(
            stream_v1(server.ws_url(), speech, HEALTHY_RATE, ssl_context=trusted, headers=None)
        )
        health = http_get(server.port, "/healthz", ssl_context=trusted)
        with pytest.raises(ssl.SSLError):
            asyncio.run(stream_v1(server.ws_url(), speech, HEALTHY_RATE))  # default trust store
    assert secure.code == 1000 and secure.of("final")
    assert health.status == 200
