"""Plain HTTP answers on the websocket port: health, metrics, the browser page and its files.

The service calls these from websockets' ``process_request`` for requests that are not a
websocket upgrade; each returns a complete :class:`websockets.http11.Response` (no I/O here).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http
import json
import re
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any, TypeAlias

from websockets.datastructures import Headers
from websockets.http11 import Response

from streamasr.server.protocol.admission import Refusal
from streamasr.server.service import metrics

StaticFolder: TypeAlias = Traversable
"""A folder of static files: a package resource (``importlib.resources``) or a Path."""

STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(html|js|css)$")
PAGE = "index.html"
ALLOWED_METHODS = ("GET", "HEAD")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""On every answer; an HTML page also gets :func:`content_security_policy`."""
_INLINE_STYLE = re.compile(rb"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)


def content_security_policy(page: bytes) -> str:
    """Scripts, workers and styles from this origin only (inline ``<style>`` blocks of ``page``
    by hash), websockets to this host, no framing, no plugins, forms nowhere."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
        for block in _INLINE_STYLE.findall(page)
    )
    return (
        "default-src 'self'; script-src 'self'; worker-src 'self'; "
        f"style-src 'self'{' ' + hashes if hashes else ''}; "
        "connect-src 'self' ws: wss:; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def default_static_dir() -> StaticFolder:
    """The browser client's files, shipped in ``streamasr.client``."""
    return files("streamasr.client") / "static"


def response(
    status: int,
    body: bytes | str,
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A complete response; the connection closes after it (no keep-alive on this port)."""
    data = body.encode() if isinstance(body, str) else body
    code = http.HTTPStatus(status)
    fields = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
        ]
    )
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        fields[name] = value
    return Response(code.value, code.phrase, fields, data)


def text(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return response(status, message.rstrip("\n") + "\n", headers=headers)


def json_response(status: int, payload: Mapping[str, Any]) -> Response:
    return response(status, json.dumps(payload, sort_keys=True) + "\n", "application/json")


def health(payload: Mapping[str, Any], ready: bool) -> Response:
    """``/healthz``: 200 once the model is loaded, 503 before (and while draining)."""
    return json_response(200 if ready else 503, payload)


def metrics_page(exposition: str) -> Response:
    return response(200, exposition, metrics.CONTENT_TYPE)


def static_file(folder: StaticFolder, name: str) -> Response:
    """A ``.html``, ``.js`` or ``.css`` file directly inside ``folder``; 404 otherwise."""
    if not _STATIC_NAME.match(name):
        return text(404, f"not found: /static/{name} (only .html, .js and .css files are served)")
    path = folder / name
    try:
        data = path.read_bytes() if path.is_file() else None
    except OSError:
        data = None
    if data is None:
        if name == PAGE:
            return text(
                404,
                "the browser client page is not installed (client/static/index.html is missing);"
                " the websocket endpoints /v1/stream and /vosk work without it",
            )
        return text(404, f"not found: /static/{name}")
    suffix = name[name.rfind(".") :]
    extra = {"Content-Security-Policy": content_security_policy(data)} if suffix == ".html" else {}
    return response(200, data, STATIC_TYPES[suffix], extra)


def head(answer: Response) -> Response:
    """The answer to HEAD: the GET answer's status and headers (Content-Length too), no body."""
    return Response(answer.status_code, answer.reason_phrase, answer.headers, b"")


def method_not_allowed(method: str) -> Response:
    return text(
        405,
        f"method not allowed: {method[:20]} (this port answers {' and '.join(ALLOWED_METHODS)})",
        {"Allow": ", ".join(ALLOWED_METHODS)},
    )


def bad_request(problem: str) -> Response:
    return text(400, f"bad request: {problem}")


def unauthorized() -> Response:
    return text(
        401,
        "unauthorized: send 'Authorization: Bearer TOKEN' or ?token=TOKEN",
        {"WWW-Authenticate": 'Bearer realm="asr"'},
    )


def forbidden_origin(origin: str) -> Response:
    return text(403, f"forbidden: origin {origin!r} is not in --allowed-origins")


def unavailable(reason: str, retry_after_s: int) -> Response:
    return text(503, f"service unavailable: {reason}", {"Retry-After": str(retry_after_s)})


def not_found(path: str) -> Response:
    return text(
        404,
        f"not found: {path} (websocket: /v1/stream, /vosk, /; http: /, /healthz, /metrics, "
        "/static/NAME)",
    )


def refusal(refused: Refusal) -> Response:
    """The HTTP answer to a refused upgrade (:func:`~streamasr.server.protocol.admission.admit`)."""
    if refused.kind == "not_found":
        return not_found(refused.reason)
    if refused.kind == "bad_request":
        return bad_request(refused.reason)
    if refused.kind == "unauthorized":
        return unauthorized()
    if refused.kind == "forbidden_origin":
        return forbidden_origin(refused.reason)
    return unavailable(refused.reason, refused.retry_after_s or 1)
