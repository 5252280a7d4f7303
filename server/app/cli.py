"""``asr-server``: serve one model over websockets until SIGTERM or SIGINT.

    asr-server --model models/base --port 2700
    ASR_MODEL=english ASR_AUTH_TOKEN=secret asr-server --host 0.0.0.0

Logs ``listening on ws://HOST:PORT`` once the port is bound (with ``--port 0``, the port picked),
then ``model ready: ...``. On SIGTERM or SIGINT it refuses new sessions, flushes the finals of the
open ones, closes them with 1001 and exits 0; a second signal cuts the wait short. Exit status 1
when the model cannot be loaded, 2 for a bad setting.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Sequence

from streamasr.server.app import loop
from streamasr.server.app.single import serve
from streamasr.server.errors import ServerConfigError
from streamasr.server.service import logsafety
from streamasr.server.service.config import ServerConfig, load_config

log = logging.getLogger("streamasr.server")


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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(argv)
    except ServerConfigError as exc:
        sys.stderr.write(f"asr-server: error: {exc}\n")
        return 2
    setup_logging(config)
    if config.workers > 1:
        from streamasr.server.app.workers import run as run_workers

        return run_workers(config, argv)
    try:
        return loop.run(serve(config), config.loop)
    except OSError as exc:  # the port is taken, the certificate unreadable, ...
        log.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
