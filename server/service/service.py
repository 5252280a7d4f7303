"""The websocket service: one port for websocket sessions, a few plain HTTP pages and the
OpenAI-compatible API (``POST /v1/audio/transcriptions``: :mod:`.openai`, handed over by the
connection class of :mod:`.wire.transport`; ``GET /v1/models`` here).

websockets owns the connections (``serve``; one handler task per connection, bounded frames,
queues and write buffers). ``process_request`` answers plain HTTP (``/healthz``, ``/metrics``,
the browser page) and guards websocket upgrades (path, token, origin, model loaded, capacity)
before the handshake; :class:`~.session.Session` runs each accepted connection. The model is
loaded in a thread while the port already answers, so ``/healthz`` says 503 until it is ready.
:meth:`Service.shutdown` refuses new sessions, lets the open ones flush their finals and close
1001, then closes the server and the engine.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import MultipleValuesError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from streamasr.server.constants import PROTOCOL_VERSION
from streamasr.server.engine.engine import Engine
from streamasr.server.errors import AsrError
from streamasr.server.protocol.admission import ServerState, Upgrade, admit, authorized, mode_of
from streamasr.server.protocol.openai.transcription import MODELS_PATH, ApiError, unauthorized
from streamasr.server.service import pages
from streamasr.server.service.config import ServerConfig
from streamasr.server.service.health import HealthState, health_payload
from streamasr.server.service.metrics import ServiceMetrics
from streamasr.server.service.modelstore import ModelStore, load_engine
from streamasr.server.service.pacing import Pacer
from streamasr.server.service.pages import StaticFolder
from streamasr.server.service.session import Session, SessionContext
from streamasr.server.service.transcriptions import TranscriptionApi
from streamasr.server.service.wire.transport import (
    CLOSE_TIMEOUT_S,
    TransportGuard,
    connection_class,
)

log = logging.getLogger(__name__)

SERVER_HEADER = f"streamasr websockets protocol/{PROTOCOL_VERSION}"

REALTIME_SUBPROTOCOL = Subprotocol("realtime")
"""The subprotocol a browser's realtime client offers (with its key as
``openai-insecure-api-key.<token>``); the server selects it in its answer."""

MAX_QUEUE = 2
"""Incoming frames websockets buffers per connection before it stops reading the socket."""
WRITE_LIMIT = 64 * 1024
"""Outgoing bytes buffered per connection before a send waits for the client to read."""
HealthView = Callable[[dict[str, Any], bool], tuple[dict[str, Any], bool]]
"""What ``/healthz`` answers, from this service's :meth:`Service.status` and readiness (a
worker of ``--workers`` answers for all of them: :mod:`.worker_table`)."""
ABORT_GRACE_S = 0.5
"""After the shutdown deadline: how long closing handshakes may take before every connection
still open is aborted (so shutdown ends within ``--shutdown-timeout`` + 1 s)."""


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    """``realtime`` when the client offers it (browsers' realtime clients), else none."""
    return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None


class Service:
    """The server of one model. ``await start()``, later ``await shutdown()``.

    Hooks for a process that hosts it (a worker of ``--workers``): ``sock``, a listening socket
    to serve on instead of binding ``config.host``/``port``; ``accept_when_loaded``, accept
    connections only once the model is loaded (until then they wait in the socket's backlog);
    ``health_view``, what ``/healthz`` answers; ``on_change``, called when :meth:`status`
    changes (model loaded or failed, a session opened or closed, shutdown begun).
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        loader: Callable[[], Engine] | None = None,
        static_dir: StaticFolder | None = None,
        sock: socket.socket | None = None,
        accept_when_loaded: bool = False,
        health_view: HealthView | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.served = 0
        """Sessions started so far."""
        self._sock = sock
        self._accept_when_loaded = accept_when_loaded
        self._health_view = health_view
        self._on_change = on_change
        self.metrics = ServiceMetrics()
        self.engine: Engine | None = None
        self.load_error: BaseException | None = None
        self.store = ModelStore(config.model, config.models_dir, language=config.language)
        self._loader = loader or (lambda: load_engine(config, self.store))
        self._static = static_dir if static_dir is not None else pages.default_static_dir()
        self._stopping = asyncio.Event()
        self._abort = asyncio.Event()
        self._loaded = asyncio.Event()
        self._draining = False
        self._server: Server | None = None
        self._load_task: asyncio.Task[None] | None = None
        tick_s = config.io_tick_ms / 1000
        self.pacer = Pacer(tick_s, lambda: len(self._sessions)) if tick_s else None
        """Stretches the loop's turns while enough sessions are open (``--io-tick-ms``)."""
        self._pacer_task: asyncio.Task[None] | None = None
        self._admitted: set[ServerConnection] = set()
        self._sessions: dict[asyncio.Task[Any], Session] = {}
        self.api = TranscriptionApi(config, self._api_readiness)
        self.guard = TransportGuard(
            config.max_write_buffer_bytes,
            config.max_handshakes,
            on_drop=self.metrics.connection_dropped,
            handshake_timeout_s=config.handshake_timeout_s,
            serve_http=self.api.serve,
            http_idle_s=config.idle_timeout_s,
            server_header=SERVER_HEADER,
        )
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "wss" if self.config.tls else "ws"
        host = self.config.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        """Listen, then load the model in the background."""
        where: dict[str, Any] = {"host": self.config.host, "port": self.config.port}
        if self._sock is not None:
            where = {"sock": self._sock}
        ssl_context = self.config.ssl_context()
        if ssl_context is not None:
            where["ssl_handshake_timeout"] = self.config.handshake_timeout_s
        self._server = await serve(
            self._handle,
            **where,
            start_serving=not self._accept_when_loaded,
            process_request=self._process_request,
            select_subprotocol=_select_subprotocol,
            create_connection=connection_class(self.guard),
            open_timeout=None,  # the connection class bounds the handshake (not an HTTP job)
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=self.config.max_message_bytes,
            max_queue=MAX_QUEUE,
            write_limit=WRITE_LIMIT,
            compression=None,
            server_header=SERVER_HEADER,
            ssl=ssl_context,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("listening on %s", self.url)
        self._load_task = asyncio.create_task(self._load())
        if self.pacer is not None:
            self._pacer_task = asyncio.create_task(self.pacer.run())

    async def _load(self) -> None:
        try:
            engine = await asyncio.to_thread(self._loader)
        except Exception as exc:
            self.load_error = exc
            if isinstance(exc, AsrError):
                log.error("cannot load the model: %s", exc)
            else:
                log.exception("cannot load the model")
            self._loaded.set()
            self._changed()
            return
        if self._draining:
            await asyncio.to_thread(engine.close)
            return
        self.engine = engine
        self.metrics.attach_engine(engine)
        log.info(
            "model ready: %s (%s on %s)",
            engine.manifest.name,
            engine.scheduler.precision,
            engine.scheduler.provider,
        )
        if self._server is not None and self._accept_when_loaded:
            await self._server.start_serving()
        self._loaded.set()
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def wait_loaded(self) -> Engine:
        """The engine once loaded; raises what loading raised."""
        await self._loaded.wait()
        if self.engine is None:
            raise self.load_error or AsrError("the model is not loaded")
        return self.engine

    async def shutdown(self) -> None:
        """Refuse new sessions, flush the open ones (close 1001), close server and engine.

        Sessions get ``shutdown_timeout_s`` to flush; then every connection gets
        :data:`ABORT_GRACE_S` for its closing handshake and whatever is still open is aborted,
        so a peer that does not read cannot hold the process.
        """
        if self._draining:
            return
        self._draining = True
        self._changed()
        if self._pacer_task is not None:
            self._pacer_task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout_s
        log.info("shutting down: %d session(s) flush their finals", len(self._sessions))
        self.store.cancel()
        self._stopping.set()
        for session in self._sessions.values():
            session.wake()
        await self._flush_sessions(deadline - loop.time())
        await self._close_connections()
        if self._load_task is not None and not self._load_task.done():
            remaining = max(0.0, deadline - loop.time()) + ABORT_GRACE_S
            await asyncio.wait({self._load_task}, timeout=remaining)
        if self.engine is not None:
            self.metrics.detach_engine(self.engine)
            await asyncio.to_thread(self.engine.close)
            self.engine = None
        log.info("server stopped")

    async def _flush_sessions(self, timeout_s: float) -> None:
        tasks = set(self._sessions)
        if not tasks:
            return
        abort = asyncio.ensure_future(self._abort.wait())
        waiters: set[asyncio.Future[Any]] = {asyncio.gather(*tasks, return_exceptions=True)}
        waiters.add(abort)
        await asyncio.wait(
            waiters, timeout=max(0.0, timeout_s), return_when=asyncio.FIRST_COMPLETED
        )
        abort.cancel()
        late = [t for t in tasks if not t.done()]
        if late:
            log.warning("%d session(s) did not finish: closing them now", len(late))

    async def _close_connections(self) -> None:
        """Close the server (1001 to open connections); abort what is open after the grace."""
        server = self._server
        if server is None:
            return
        server.close()
        closed = asyncio.ensure_future(server.wait_closed())
        await asyncio.wait({closed}, timeout=ABORT_GRACE_S)
        if closed.done():
            return
        open_ = [c for c in server.all_connections | self._admitted if not c.transport.is_closing()]
        for connection in open_:
            connection.transport.abort()
        handshaking = self.guard.abort_handshaking()
        log.warning(
            "aborted %d connection(s) that did not close and %d in their handshake",
            len(open_),
            handshaking,
        )
        await asyncio.wait({closed}, timeout=ABORT_GRACE_S / 2)
        if not closed.done():
            closed.cancel()
            log.warning("%d connection handler(s) still running", len(server.handler_tasks))

    def abort(self) -> None:
        """Stop waiting for sessions to flush (a second signal): close them now."""
        self._abort.set()

    # -- HTTP and the upgrade guard -------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.method not in pages.ALLOWED_METHODS:
            self.metrics.connection_dropped("method")
            return pages.method_not_allowed(request.method)
        try:
            return self._route(connection, request)
        except MultipleValuesError as exc:  # a header given twice where one is expected
            self.metrics.upgrade_rejected(400)
            return pages.bad_request(f"duplicated header {exc}")

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if url.path == MODELS_PATH and not upgrade:
            answer = self._models(request, url.query)
            return pages.head(answer) if request.method == "HEAD" else answer
        if request.method == "HEAD":
            return pages.head(self._http(url.path))
        if not upgrade:
            return self._http(url.path)
        refusal = self._refusal(request, url.path, url.query)
        if refusal is not None:
            self.metrics.upgrade_rejected(refusal.status_code)
            return refusal
        self._admitted.add(connection)
        return None

    def _http(self, path: str) -> Response:
        if path == "/healthz":
            ready = self.engine is not None and self.engine.available and not self._draining
            payload = self.status()
            if self._health_view is not None:
                payload, ready = self._health_view(payload, ready)
            return pages.health(payload, ready)
        if path == "/metrics":
            return pages.metrics_page(self.metrics.render())
        if path in ("/", "/index.html"):
            return pages.static_file(self._static, pages.PAGE)
        if path.startswith("/static/"):
            return pages.static_file(self._static, path.removeprefix("/static/"))
        return pages.not_found(path)

    def _models(self, request: Request, query: str) -> Response:
        """``GET /v1/models`` (same token as the websockets)."""
        token = self.config.auth_token
        upgrade = Upgrade(MODELS_PATH, query, request.headers.get("Authorization", ""))
        if token is not None and not authorized(token, upgrade):
            error: ApiError = unauthorized()
            return pages.response(401, error.body(), "application/json", dict(error.headers()))
        return pages.json_response(200, self.api.models(self.engine))

    def _api_readiness(self) -> tuple[Engine | None, str | None]:
        """The engine for an HTTP transcription, or None and why not."""
        if self._draining:
            return None, "the server is shutting down"
        if self.engine is None:
            return None, "the model failed to load" if self.load_error else "the model is loading"
        if not self.engine.available:
            return None, "the inference pool is unavailable"
        return self.engine, None

    def _refusal(self, request: Request, path: str, query: str) -> Response | None:
        self._admitted = {c for c in self._admitted if not c.transport.is_closing()}
        upgrade = Upgrade(
            path,
            query,
            request.headers.get("Authorization", ""),
            request.headers.get("Origin"),
            tuple(request.headers.get_all("Sec-WebSocket-Protocol")),
        )
        state = ServerState(
            auth_token=self.config.auth_token,
            allowed_origins=tuple(self.config.allowed_origins),
            draining=self._draining,
            loaded=self.engine is not None,
            load_failed=self.load_error is not None,
            available=self.engine is not None and self.engine.available,
            open_sessions=len(self._admitted),
            max_connections=self.config.max_connections,
        )
        refusal = admit(upgrade, state)
        return None if refusal is None else pages.refusal(refusal)

    def status(self) -> dict[str, Any]:
        """This service's ``/healthz`` payload."""
        state = HealthState(self.engine, self.load_error, self._draining, len(self._sessions))
        return health_payload(state, self.config)

    # -- sessions -------------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        engine = self.engine
        task = asyncio.current_task()
        if engine is None or task is None:  # cannot happen: the guard admits only when loaded
            await ws.close(1013, "not ready")
            return
        path = urlsplit(ws.request.path).path if ws.request is not None else "/"
        context = SessionContext(engine, self.config, self.metrics, self._stopping)
        session = Session(ws, context, mode_of(path))
        self._sessions[task] = session
        self.served += 1
        self._changed()
        try:
            await session.run()
        finally:
            del self._sessions[task]
            self._admitted.discard(ws)
            self._changed()
