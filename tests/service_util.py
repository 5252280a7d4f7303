"""Helpers of the websocket service tests: an in-process server thread and real clients.

The server runs in its own thread and event loop (as in production, one loop for all sessions);
the tests drive real ``websockets`` clients and plain HTTP over loopback from the main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import ssl
import threading
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile
import soxr
from numpy.typing import NDArray
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from streamasr.server.engine.engine import Engine
from streamasr.server.service.config import ServerConfig
from streamasr.server.service.service import Service

# The service tests read /metrics with these.
from .metrics_util import Samples, metric, parse_exposition  # noqa: F401
from .timeouts import timeout

T = TypeVar("T")
Audio = NDArray[np.float32]


def server_config(model: Path, **overrides: Any) -> ServerConfig:
    """Loopback, any free port, CPU, quick timeouts unless overridden."""
    base = ServerConfig(model=str(model), host="127.0.0.1", port=0, device="cpu", threads=1)
    return replace(base, **overrides)


class ServerThread:
    """A :class:`Service` in a thread of its own, started on a free loopback port."""

    def __init__(self, config: ServerConfig, **service_kwargs: Any) -> None:
        self.config = config
        self._kwargs = service_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.service: Service | None = None

    def __enter__(self) -> ServerThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, wait_loaded: bool = True) -> ServerThread:
        self._thread.start()
        self.service = self.call(self._start())
        if wait_loaded:
            self.call(self.service.wait_loaded())
        return self

    async def _start(self) -> Service:
        service = Service(self.config, **self._kwargs)
        await service.start()
        return service

    def call(self, coro: Coroutine[Any, Any, T], seconds: float = 120.0) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout(seconds))

    def stop(self) -> None:
        if self.service is not None:
            self.call(self.service.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout(30))
        self._loop.close()

    @property
    def engine(self) -> Engine:
        if self.service is None or self.service.engine is None:
            raise RuntimeError("the server is not loaded")
        return self.service.engine

    @property
    def port(self) -> int:
        return self.service.port if self.service is not None else 0

    def ws_url(self, path: str = "/v1/stream") -> str:
        scheme = "wss" if self.config.tls else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"


# -- audio ----------------------------------------------------------------------------------------


def read_mono(path: Path) -> tuple[Audio, int]:
    samples, rate = soundfile.read(str(path), dtype="float32")
    return np.asarray(samples, dtype=np.float32), int(rate)


def resample(samples: Audio, rate: int, to_rate: int) -> Audio:
    if rate == to_rate:
        return samples
    return np.asarray(soxr.resample(samples, rate, to_rate), dtype=np.float32)


def to_s16(samples: Audio) -> NDArray[np.int16]:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2")


def encode(samples: Audio, encoding: str) -> bytes:
    if encoding == "s16le":
        return to_s16(samples).tobytes()
    return samples.astype("<f4").tobytes()


def as_received(samples: Audio, encoding: str) -> Audio:
    """The float samples the server decodes from ``encode(samples, encoding)``."""
    if encoding == "s16le":
        return to_s16(samples).astype(np.float32) / np.float32(32768.0)
    return samples


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# -- clients --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a client saw: the server's text messages and how the connection closed."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    code: int | None = None
    reason: str = ""
    binary: int = 0
    """Binary messages received (the server never sends any)."""

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def text(self) -> str:
        return " ".join(m["text"] for m in self.of("final"))

    @property
    def error(self) -> dict[str, Any] | None:
        errors = self.of("error")
        return errors[0] if errors else None


async def _read_all(ws: ClientConnection, outcome: Outcome) -> None:
    try:
        async for message in ws:
            if isinstance(message, bytes):
                outcome.binary += 1
            else:
                outcome.messages.append(json.loads(message))
    except ConnectionClosed:
        pass


@dataclass(frozen=True)
class Pause:
    """In a list of messages to send: wait this long before the next one."""

    seconds: float


async def converse(
    url: str,
    messages: Iterable[str | bytes | Pause],
    *,
    pace_s: float = 0.0,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connected: asyncio.Event | None = None,
) -> Outcome:
    """Send ``messages`` while reading every reply, then wait for the server to close.

    Sending stops quietly when the server closes first (as it does after an error).
    """
    outcome = Outcome()
    tls: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None else {}
    async with connect(
        url,
        additional_headers=headers,
        **tls,
        max_size=2**24,
        compression=None,
        open_timeout=timeout(30),
    ) as ws:
        reader = asyncio.create_task(_read_all(ws, outcome))
        if connected is not None:
            connected.set()
        with contextlib.suppress(ConnectionClosed):
            for message in messages:
                if isinstance(message, Pause):
                    await asyncio.sleep(message.seconds)
                    continue
                await ws.send(message)
                if pace_s:
                    await asyncio.sleep(pace_s)
        await asyncio.wait_for(reader, timeout(60))
        outcome.code = ws.close_code
        outcome.reason = ws.close_reason or ""
    return outcome


def start_text(rate: object, encoding: str = "s16le", **fields: Any) -> str:
    return json.dumps({"type": "start", "sample_rate": rate, "encoding": encoding, **fields})


STOP = json.dumps({"type": "stop"})


async def stream_v1(
    url: str,
    samples: Audio,
    rate: int,
    encoding: str = "s16le",
    *,
    chunk_s: float = 0.1,
    pace_s: float = 0.0,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    connected: asyncio.Event | None = None,
    **start_fields: Any,
) -> Outcome:
    """One protocol v1 session of a whole recording."""
    data = encode(samples, encoding)
    size = max(1, int(rate * chunk_s)) * (2 if encoding == "s16le" else 4)
    messages: list[str | bytes | Pause] = [start_text(rate, encoding, **start_fields)]
    messages += chunks(data, size)
    messages.append(STOP)
    return await converse(
        url,
        messages,
        pace_s=pace_s,
        headers=headers,
        ssl_context=ssl_context,
        connected=connected,
    )


HEALTHY_FILE = "tts-022.flac"
"""1.75 s of speech: the healthy session that runs beside the cases under test."""
HEALTHY_RATE = 48000


def healthy_speech(shared_dir: Path) -> Audio:
    """The healthy session's audio, at HEALTHY_RATE."""
    samples, rate = read_mono(shared_dir / "speech" / "dev" / "tts" / HEALTHY_FILE)
    return resample(samples, rate, HEALTHY_RATE)


async def stream_healthy(url: str, speech: Audio, **kwargs: Any) -> Outcome:
    """The healthy session: ``speech`` in 100 ms frames, 10 ms apart."""
    return await stream_v1(url, speech, HEALTHY_RATE, chunk_s=0.1, pace_s=0.01, **kwargs)


async def vosk_lockstep(
    url: str,
    pcm: bytes,
    rate: int | None,
    chunk_s: float = 0.2,
    words: bool | None = None,
    *,
    phrases: list[str] | None = None,
    alternatives: int | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], int | None]:
    """A vosk-server style client: each chunk awaits exactly one reply, then eof.

    Returns the per-chunk replies, the reply to eof, and the close code; fails when the server
    sends anything more after the eof reply.
    """
    replies: list[dict[str, Any]] = []
    async with connect(url, compression=None) as ws:
        config: dict[str, Any] = {} if phrases is None else {"phrase_list": phrases}
        if rate is not None:
            config["sample_rate"] = rate
        if words is not None:
            config["words"] = int(words)
        if alternatives is not None:
            config["max_alternatives"] = alternatives
        await ws.send(json.dumps({"config": config}))
        size = int((rate or 16000) * chunk_s) * 2
        for piece in chunks(pcm, size):
            await ws.send(piece)
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), timeout(30))))
        await ws.send('{"eof" : 1}')
        final = json.loads(await asyncio.wait_for(ws.recv(), timeout(30)))
        extra: list[str | bytes] = []
        with contextlib.suppress(ConnectionClosed):
            extra.append(await asyncio.wait_for(ws.recv(), timeout(30)))
        if extra:
            raise AssertionError(f"unexpected message after the eof reply: {extra}")
        code = ws.close_code
    return replies, final, code


# -- HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_get(
    port: int,
    path: str,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> HttpReply:
    connection: http.client.HTTPConnection
    if ssl_context is not None:
        connection = http.client.HTTPSConnection(
            "localhost", port, timeout=timeout(30), context=ssl_context
        )
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout(30))
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return HttpReply(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


# -- text -----------------------------------------------------------------------------------------


def finals_preceded_by_partials(messages: Sequence[dict[str, Any]]) -> bool:
    """Every final comes after at least one partial of its segment."""
    seen: set[int] = set()
    for message in messages:
        if message.get("type") == "partial":
            seen.add(int(message["segment"]))
        elif message.get("type") == "final" and int(message["segment"]) not in seen:
            return False
    return True
