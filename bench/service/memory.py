"""Server memory under the worst load each connection may put on it, at the default limits.

    python -m bench memory_bench [--model FOLDER] [--connections 16] [--load-s 20]
                                 [--flooders 16] [--flood-s 60]

Starts ``asr-server`` (the fixture checkpoint exported once, or ``--model``) with its default
limits and prints its resident memory (VmRSS, from /proc) over time in two phases:

1. ``--connections`` clients each open a v1 session and send ``--max-message-bytes`` binary
   frames as fast as the server takes them, never reading: every per-connection buffer (receive
   queue, frame parser, the session's frame in flight, the outgoing buffer) is full. The figure
   is (peak RSS - RSS before) / connections.
2. ``--flooders`` clients flood websocket pings and never read for ``--flood-s`` seconds (each
   reconnects when the server drops it): the server's memory must stay flat.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from streamasr.server.protocol import messages
from streamasr.server.service.config import ServerConfig

from ..common.fixtures import DEFAULT_SHARED, ExportFolder, export_fixture
from ..common.proc import read_usage
from ..common.server_process import ServerProcess

log = logging.getLogger("bench.memory")
PING = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, masked with the key 0 (so the payload goes as it is)."""
    size = len(payload)
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 1 << 16:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + length + b"\0\0\0\0" + payload


def open_websocket(port: int) -> socket.socket:
    """A websocket on /v1/stream over a raw socket with a small receive buffer (never read)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return sock


def pump(
    port: int, first: bytes, repeat: bytes, stop: threading.Event, counts: dict[str, int]
) -> None:
    """Send ``first`` then ``repeat`` until ``stop``, never reading; reconnect when dropped."""
    while not stop.is_set():
        try:
            sock = open_websocket(port)
        except OSError:
            counts["refused"] += 1
            time.sleep(0.2)
            continue
        counts["connections"] += 1
        sock.settimeout(0.5)
        try:
            sock.sendall(first)
            while not stop.is_set():
                try:
                    sock.sendall(repeat)
                    counts["bytes"] += len(repeat)
                except TimeoutError:
                    continue  # the server reads no more for now: keep the pressure
        except OSError:
            counts["dropped"] += 1
        finally:
            sock.close()


def run_phase(
    name: str,
    pid: int,
    *,
    clients: int,
    seconds: float,
    make: Callable[[threading.Event, dict[str, int]], threading.Thread],
    every_s: float,
) -> tuple[float, float]:
    """Run ``clients`` pumping threads for ``seconds``, printing RSS; (before, peak) MiB."""
    before = _rss(pid)
    stop = threading.Event()
    counts = {"connections": 0, "dropped": 0, "refused": 0, "bytes": 0}
    threads = [make(stop, counts) for _ in range(clients)]
    for thread in threads:
        thread.start()
    print(f"{name}: {clients} clients for {seconds:g} s; RSS before {before:.1f} MiB")
    peak = before
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        time.sleep(min(every_s, seconds - elapsed))
        rss = _rss(pid)
        peak = max(peak, rss)
        print(
            f"  t={time.monotonic() - began:5.1f} s  RSS {rss:7.1f} MiB  "
            f"connections {counts['connections']}  dropped {counts['dropped']}  "
            f"sent {counts['bytes'] / 2**20:.0f} MiB",
            flush=True,
        )
    stop.set()
    for thread in threads:
        thread.join(30)
    return before, peak


def _rss(pid: int) -> float:
    usage = read_usage(pid)
    if usage is None:
        raise RuntimeError(f"the server {pid} is gone")
    return usage.rss_mib


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action=ExportFolder, help="an asr-export folder (default: the fixture)"
    )
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--load-s", type=float, default=20.0)
    parser.add_argument("--flooders", type=int, default=16)
    parser.add_argument("--flood-s", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--server-arg", action="append", default=[], help="extra asr-server flag")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or export_fixture(args.shared, Path(tmp), ("int8",))
        server_args = ["--model", str(model), "--port", "0", "--device", "cpu", *args.server_arg]
        with ServerProcess(server_args, Path(tmp) / "server.log") as server:
            port = int(server.url.rsplit(":", 1)[1])
            max_bytes = ServerConfig(model="x").max_message_bytes
            print(f"asr-server pid {server.pid}, defaults: --max-message-bytes {max_bytes}")
            start = frame(
                0x1,
                messages.encode(messages.Start(16000, "s16le").to_dict()).encode(),
            )
            audio = frame(0x2, b"\1\0" * (max_bytes // 2))
            before, peak = run_phase(
                "max-size frames, never read",
                server.pid,
                clients=args.connections,
                seconds=args.load_s,
                make=lambda stop, counts: _thread(port, start, audio, stop, counts),
                every_s=args.every,
            )
            per = (peak - before) / max(args.connections, 1)
            print(f"worst case per connection: {per:.1f} MiB (peak {peak:.1f} MiB)")
            before, peak = run_phase(
                "ping flood, never read",
                server.pid,
                clients=args.flooders,
                seconds=args.flood_s,
                make=lambda stop, counts: _thread(port, b"", PING * 4000, stop, counts),
                every_s=args.every,
            )
            print(f"ping flood: RSS {before:.1f} -> peak {peak:.1f} MiB ({peak - before:+.1f})")


def _thread(
    port: int, first: bytes, repeat: bytes, stop: threading.Event, counts: dict[str, int]
) -> threading.Thread:
    return threading.Thread(target=pump, args=(port, first, repeat, stop, counts), daemon=True)


if __name__ == "__main__":
    main()
