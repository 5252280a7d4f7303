"""``asr-server``: serve one model over websockets until SIGTERM or SIGINT.

    asr-server --model models/base --port 2700
    ASR_MODEL=english ASR_AUTH_TOKEN=secret asr-server --host 0.0.0.0

Logs ``listening on ws://HOST:PORT`` once the port is bound (with ``--port 0``, the port picked),
then ``model ready: ...``. On SIGTERM or SIGINT it refuses new sessions, flushes the finals of the
open ones, closes them with 1001 and exits 0; a second signal cuts the wait short. Exit status 1
when the model cannot be loaded, 2 for a bad setting.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import logsafety
from .config import ServerConfig, load_config
from .errors import ServerConfigError
from .service import Service

log = logging.getLogger("streamasr.server")
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the session when known."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        session = getattr(record, "session", None)
        if session is not None:
            entry["session"] = session
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(config: ServerConfig) -> logging.Handler:
    """One handler on the root logger, with the filters of :mod:`.logsafety` (tokens redacted,
    lines bounded, a rate limit per message template); returns it."""
    handler = logging.StreamHandler(sys.stderr)
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    secrets = (config.auth_token,) if config.auth_token else ()
    logsafety.install(handler, secrets)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log_level)
    if config.log_level != "DEBUG":
        logging.getLogger("websockets").setLevel(logging.WARNING)
    return handler


class LoopErrorHandler:
    """asyncio's exception handler. Running out of file descriptors (EMFILE on ``accept``, which
    asyncio retries, logging each try with a traceback: thousands a second) becomes one line per
    ``every_s`` with a count; anything else goes to asyncio's default handler."""

    def __init__(self, every_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self.count = 0
        self._next = 0.0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ValueError) and "_start_serving" in repr(context.get("handle")):
            # asyncio retries an accept that failed with EMFILE one second later, even when the
            # listening socket was closed meanwhile (shutdown): the retry then fails on fd -1.
            log.debug("accept retry after the listening socket closed: %s", exc)
            return
        if not (isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRORS):
            loop.default_exception_handler(context)
            return
        self.count += 1
        now = self.clock()
        if now >= self._next:
            log.warning(
                "%s: %s (%d time(s); new connections wait; see --max-connections, "
                "--max-handshakes and the file-descriptor limit)",
                context.get("message", "out of resources"),
                exc.strerror or exc,
                self.count,
            )
            self.count = 0
            self._next = now + self.every_s


async def serve(
    config: ServerConfig, make_service: Callable[[ServerConfig], Service] = Service
) -> int:
    """Run until a signal (0) or a failed model load (1); ``make_service``: a worker's
    service under ``--workers`` (see :mod:`.workers`)."""
    service = make_service(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        log.info("received %s", signal.Signals(signum).name)
        if signals > 1:
            service.abort()
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.set_exception_handler(LoopErrorHandler())
    await service.start()
    loaded = asyncio.ensure_future(service.wait_loaded())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loaded, stopped}, return_when=asyncio.FIRST_COMPLETED)
    status = 0
    if loaded.done() and loaded.exception() is not None:
        status = 1
    else:
        await stopped
    loaded.cancel()
    await service.shutdown()
    return status


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ServerConfigError as exc:
        sys.stderr.write(f"asr-server: error: {exc}\n")
        return 2
    setup_logging(config)
    if config.workers > 1:
        from .workers import run as run_workers

        return run_workers(config, argv)
    try:
        return asyncio.run(serve(config))
    except OSError as exc:  # the port is taken, the certificate unreadable, ...
        log.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
