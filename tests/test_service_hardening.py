"""Transport limits against clients that misbehave on purpose: a ping flood that never reads,
peers that never acknowledge a close, duplicated headers, odd methods, idle sockets holding
handshake slots, file-descriptor exhaustion; and the log filters (tokens, size, rate).

Raw sockets stand in where a websockets client cannot misbehave enough. No timing assertions
except the documented shutdown bound (``--shutdown-timeout`` + 1 s, with the test factor).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import logging
import os
import re
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from streamasr.server.app.cli import JsonFormatter, setup_logging
from streamasr.server.app.single import LoopErrorHandler
from streamasr.server.service import logsafety
from streamasr.server.service.service import Service

from .service_util import ServerThread, http_get, metric, parse_exposition, server_config
from .timeouts import timeout

TOKEN = "tok-9f8e7d6c5b4a"
FLOOD_BOUND = 64 << 10
"""The smallest write bound ServerConfig allows: the flood test drops quickly."""


# -- raw websocket client -------------------------------------------------------------------------


def frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (mask key 0: the payload goes as is), payload under 126 bytes or
    under 64 KiB."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        return head + bytes([0x80 | len(payload)]) + b"\0\0\0\0" + payload
    return head + bytes([0x80 | 126]) + len(payload).to_bytes(2, "big") + b"\0\0\0\0" + payload


PING = frame(0x9, b"p" * 125)


def upgrade_request(path: str = "/v1/stream", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout(30)) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
        return reply


def open_raw(port: int, small_buffer: bool = True) -> socket.socket:
    """A websocket on /v1/stream through a raw socket that will not read (small receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if small_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(timeout(30))
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def dropped(server: ServerThread, reason: str) -> float:
    samples = parse_exposition(http_get(server.port, "/metrics").body.decode())
    return metric(samples, "asr_connections_dropped_total", reason=reason)


@pytest.fixture(scope="module")
def server(fixture_export: Path) -> Iterator[ServerThread]:
    config = server_config(fixture_export, max_write_buffer_bytes=FLOOD_BOUND)
    with ServerThread(config) as running:
        yield running


# -- output bounds --------------------------------------------------------------------------------


def test_a_ping_flooder_that_never_reads_is_dropped(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    before = rss_mib()
    sock = open_raw(server.port)
    burst = PING * 2000
    sent = 0
    with sock, pytest.raises((ConnectionResetError, BrokenPipeError)):
        while sent < 1 << 30:  # 1 GiB of pings: the server drops the peer long before
            sock.sendall(burst)
            sent += len(burst)
    # The server stopped reading once its buffer for this peer passed the bound: what the client
    # managed to send is bounded by the socket buffers, not by the flood.
    assert sent < 64 << 20
    assert rss_mib() - before < 64
    assert dropped(server, "write_buffer") >= 1
    service = server.service
    assert service is not None
    assert server.call(_largest_write_buffer(service)) <= FLOOD_BOUND
    drops = [r for r in caplog.records if "unread, over the" in r.getMessage()]
    assert len(drops) == 1


async def _largest_write_buffer(service: Service) -> int:
    server = service._server
    assert server is not None
    return max((c.transport.get_write_buffer_size() for c in server.all_connections), default=0)


def test_shutdown_with_clients_that_never_read(fixture_export: Path) -> None:
    config = server_config(fixture_export, shutdown_timeout_s=1.0, max_write_buffer_bytes=1 << 30)
    running = ServerThread(config).start()
    socks = []
    try:
        for _ in range(3):
            sock = open_raw(running.port)
            start = {"type": "start", "sample_rate": 16000, "encoding": "s16le"}
            sock.sendall(frame(0x1, json.dumps(start).encode()) + frame(0x2, b"\0" * 3200))
            sock.sendall(PING * 20000)  # ~2.6 MB of pongs: socket buffers full, writes wait
            socks.append(sock)
        service = running.service
        assert service is not None
        began = time.monotonic()
        running.call(service.shutdown())
        took = time.monotonic() - began
    finally:
        running.stop()
        for sock in socks:
            sock.close()
    assert took < timeout(config.shutdown_timeout_s + 1.0)


# -- HTTP -----------------------------------------------------------------------------------------


def test_a_duplicated_header_is_a_400(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    extra = "Origin: http://a.example\r\nOrigin: http://b.example\r\n"
    reply = raw_exchange(server.port, upgrade_request(extra=extra))
    assert reply.startswith(b"HTTP/1.1 400"), reply[:80]
    assert b"Origin" in reply
    plain = b"GET /healthz HTTP/1.1\r\nHost: x\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n"
    assert raw_exchange(server.port, plain).startswith(b"HTTP/1.1 400")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_page_security_headers_head_and_405(server: ServerThread) -> None:
    page = http_get(server.port, "/")
    assert page.status == 200
    csp = page.headers["content-security-policy"]
    for part in ("default-src 'self'", "connect-src 'self' ws: wss:", "frame-ancestors 'none'"):
        assert part in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    # Each inline <style> block of the page is allowed by its hash, nothing else inline.
    for block in re.findall(rb"<style[^>]*>(.*?)</style>", page.body, re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(block).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"

    head = raw_exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    headers, _, body = head.partition(b"\r\n\r\n")
    assert headers.startswith(b"HTTP/1.1 200") and body == b""
    assert f"content-length: {len(page.body)}".encode() in headers.lower()

    with_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    for request in (with_body, b"PUT /healthz HTTP/1.1\r\nHost: x\r\n\r\n"):
        reply = raw_exchange(server.port, request)
        assert reply.startswith(b"HTTP/1.1 405"), reply[:80]
        assert b"Allow: GET, HEAD" in reply


# -- handshakes and file descriptors --------------------------------------------------------------


def test_idle_sockets_cannot_hold_the_handshake_slots(fixture_export: Path) -> None:
    config = server_config(fixture_export, max_handshakes=2, handshake_timeout_s=1.0)
    with ServerThread(config) as running:
        idle = [socket.create_connection(("127.0.0.1", running.port)) for _ in range(4)]
        try:
            # A real client still gets through: each new connection evicts the oldest idle one.
            assert http_get(running.port, "/healthz").status == 200
            for sock in idle:  # every idle one is closed: evicted, or at handshake_timeout
                sock.settimeout(timeout(30))
                assert sock.recv(1) == b""
        finally:
            for sock in idle:
                sock.close()
        assert dropped(running, "handshakes") >= 2
        assert dropped(running, "handshake_timeout") >= 1


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_running_out_of_file_descriptors_logs_no_traceback_storm(
    fixture_export: Path, tmp_path: Path, loop: str
) -> None:
    """A server at a 64-descriptor limit, 300 connections. asyncio's accept loop fails with
    EMFILE thousands of times a second: the log gets a counted line every few seconds and the
    connections wait. uvloop's (libuv's) closes the connections it cannot take at once and
    reports nothing: no log line at all, and those clients see the connection end."""
    log_path = tmp_path / "server.log"

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    argv = [sys.executable, "-m", "streamasr.server.app.cli", "--model", str(fixture_export)]
    argv += ["--port", "0", "--device", "cpu", "--max-handshakes", "500", "--loop", loop]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(argv, stderr=log_file, preexec_fn=low_limit)  # noqa: PLW1509
    ended = 0
    try:
        port = _wait_port(log_path)
        socks = []
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
            except OSError:
                break  # the backlog is full: the server is out of descriptors
        time.sleep(2)  # let the accept loop fail for a while (what is counted is the log)
        for sock in socks:
            sock.setblocking(False)
            try:
                ended += sock.recv(1) == b""
            except BlockingIOError:
                pass  # still open: accepted and waiting for its handshake, or in the backlog
            except ConnectionResetError:
                ended += 1
            sock.close()
        assert process.poll() is None, "the server died"
    finally:
        process.terminate()
        process.wait(timeout(30))
    text = log_path.read_text()
    assert "Traceback" not in text
    assert len(text.splitlines()) < 50
    if loop == "asyncio":
        assert "out of system resource" in text
    else:
        assert ended > 0, "libuv closes the connections it cannot accept"


def _wait_port(log_path: Path) -> int:
    deadline = time.monotonic() + timeout(60)
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if "model ready" in text:
            return int(text.split("listening on ws://127.0.0.1:", 1)[1].split()[0])
        time.sleep(0.1)
    raise AssertionError(f"the server did not start:\n{log_path.read_text()}")


def test_loop_error_handler_counts_resource_errors() -> None:
    now = [0.0]
    handler = LoopErrorHandler(every_s=5.0, clock=lambda: now[0])
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("streamasr.server")
    capture = _Capture(records)
    logger.addHandler(capture)
    try:
        error = OSError(24, "Too many open files")
        for _ in range(1000):
            handler(None, {"message": "socket.accept() out of system resource", "exception": error})  # type: ignore[arg-type]
        now[0] = 6.0
        handler(None, {"message": "socket.accept() out of system resource", "exception": error})  # type: ignore[arg-type]
    finally:
        logger.removeHandler(capture)
    assert len(records) == 2
    assert records[1].exc_info is None and "1000 time(s)" in records[1].getMessage()


def test_loop_error_handler_quiets_accept_retry_after_close() -> None:
    """asyncio's EMFILE retry of ``accept`` fires after shutdown closed the socket (fd -1)."""

    class Loop:
        def _start_serving(self) -> None: ...

    records: list[logging.LogRecord] = []
    logger = logging.getLogger("streamasr.server")
    capture = _Capture(records)
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    try:
        handle = asyncio.get_event_loop_policy().new_event_loop()
        try:
            retry = handle.call_soon(Loop()._start_serving)
            context = {"exception": ValueError("Invalid file descriptor: -1"), "handle": retry}
            LoopErrorHandler()(handle, context)
            retry.cancel()
        finally:
            handle.close()
    finally:
        logger.removeHandler(capture)
        logger.setLevel(logging.NOTSET)
    assert [r.levelno for r in records] == [logging.DEBUG]
    assert records[0].exc_info is None


class _Capture(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# -- logs -----------------------------------------------------------------------------------------


def test_tokens_never_reach_the_log_at_debug(fixture_export: Path) -> None:
    config = server_config(fixture_export, auth_token=TOKEN, log_level="DEBUG", log_format="json")
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("websockets").level)
    stream = io.StringIO()
    handler = setup_logging(config)
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        with ServerThread(config) as running:
            url = running.ws_url()
            running.call(_open_and_close(url, {"Authorization": f"Bearer {TOKEN}"}))
            running.call(_open_and_close(f"{url}?token={TOKEN}", None))
            with pytest.raises(InvalidStatus):
                running.call(_open_and_close(url, {"Authorization": f"Bearer {TOKEN}x"}))
    finally:
        root.handlers[:], _, websockets_level = saved
        root.setLevel(saved[1])
        logging.getLogger("websockets").setLevel(websockets_level)
    text = stream.getvalue()
    assert "Authorization" in text and "?token=" in text  # websockets' DEBUG lines are there
    assert TOKEN not in text
    assert "[redacted]" in text
    entries = [json.loads(line) for line in text.splitlines()]
    sessions = [e for e in entries if e["logger"] == "streamasr.server.service.session"]
    assert sessions and all(len(e.get("session", "")) >= 8 for e in sessions)


async def _open_and_close(url: str, headers: dict[str, str] | None) -> None:
    async with connect(url, additional_headers=headers, open_timeout=timeout(30)):
        pass


@pytest.mark.parametrize(
    ("text", "recognisable"),
    [
        (f"< Authorization: Bearer {TOKEN}", True),
        (f"< authorization: {TOKEN}", True),
        (f"< GET /v1/stream?token={TOKEN}&x=1 HTTP/1.1", True),
        (f"headers {{'authorization': 'Basic {TOKEN}'}}", True),
        (f"bearer {TOKEN}", True),
        (f'{{"token": "{TOKEN}"}}', True),
        (f"the configured secret {TOKEN} anywhere", False),
    ],
)
def test_redaction(text: str, recognisable: bool) -> None:
    assert TOKEN not in logsafety.redact(text, (TOKEN,))
    if recognisable:  # by its form, without knowing the token
        assert TOKEN not in logsafety.redact(text)


def test_long_values_are_cut() -> None:
    record = logging.makeLogRecord({"msg": "bad field %s in %r", "args": ("x" * 1_000_000, [1])})
    logsafety.RedactFilter().filter(record)
    logsafety.TruncateFilter().filter(record)
    message = record.getMessage()
    assert len(message) < logsafety.MAX_VALUE_CHARS + 100
    assert "more chars]" in message and message.endswith("in [1]")
    long_message = logging.makeLogRecord({"msg": "y" * 100_000})
    logsafety.TruncateFilter().filter(long_message)
    assert len(long_message.getMessage()) < logsafety.MAX_MESSAGE_CHARS + 50


def test_rate_limit_bounds_records_per_template() -> None:
    now = [0.0]
    reports: list[logging.LogRecord] = []
    limiter = logsafety.RateLimitFilter(
        rate=10, burst=50, report_every_s=10, clock=lambda: now[0], emit=reports.append
    )

    def passed(count: int, template: str = "closing %d: %s") -> int:
        made = (logging.makeLogRecord({"name": "s", "msg": template}) for _ in range(count))
        return sum(limiter.filter(r) for r in made)

    assert passed(10_000) == 50  # the burst, then nothing within the same instant
    assert passed(5, "another template") == 5  # templates are limited separately
    now[0] = 1.0
    assert passed(10_000) == 10  # one second refills `rate` records
    assert limiter.suppressed() == 9_950 + 9_990
    now[0] = 10.0  # the next record past the report interval reports what was suppressed
    assert passed(1) == 1
    assert len(reports) == 1
    assert "19940" in reports[0].getMessage() and "closing %d" in reports[0].getMessage()
    assert limiter.suppressed() == 0


def test_json_log_lines_carry_the_session() -> None:
    record = logging.makeLogRecord({"msg": "closing", "session": "abc123", "levelname": "INFO"})
    entry = json.loads(JsonFormatter().format(record))
    assert entry["session"] == "abc123" and entry["message"] == "closing"
    assert "session" not in json.loads(JsonFormatter().format(logging.makeLogRecord({})))
