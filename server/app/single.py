"""One ``asr-server`` process: serve until a signal, log the event loop's resource errors."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from streamasr.server.service.config import ServerConfig
from streamasr.server.service.service import Service

log = logging.getLogger("streamasr.server")


_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


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
