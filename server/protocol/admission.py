"""Whether a websocket upgrade is admitted, and which dialect it speaks: pure functions.

The service (:mod:`streamasr.server.service.service`) gathers what the request says
(:class:`Upgrade`) and what the server is doing (:class:`ServerState`) and asks :func:`admit`;
a :class:`Refusal` becomes the HTTP answer (its status, reason and ``Retry-After``). The checks run
in a fixed order, cheapest and most permanent first: path, token, origin, shutdown, model,
inference pool, capacity. No sockets here, so every rule is unit-tested on plain values.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs

from streamasr.server.constants import REALTIME_PATH, V1_PATH

Mode = Literal["v1", "vosk", "realtime", "auto"]
"""A session's dialect: protocol v1, Vosk, or chosen by the first message (``/``)."""

WS_PATHS: dict[str, Mode] = {
    V1_PATH: "v1",
    "/vosk": "vosk",
    REALTIME_PATH: "realtime",
    "/": "auto",
}
"""The websocket paths and the dialect each speaks."""

RETRY_LOADING_S = 5
"""``Retry-After`` while the model loads or the server shuts down."""
RETRY_FULL_S = 1
"""``Retry-After`` at capacity or while the inference pool is down."""

RefusalKind = Literal["not_found", "bad_request", "unauthorized", "forbidden_origin", "unavailable"]

KEY_SUBPROTOCOL = "openai-insecure-api-key."
"""Browsers cannot set headers on a websocket: OpenAI's realtime clients offer the key as a
subprotocol ``openai-insecure-api-key.<token>``."""


@dataclass(frozen=True)
class Upgrade:
    """What a websocket upgrade request says."""

    path: str
    query: str = ""
    authorization: str = ""
    """The ``Authorization`` header (``Bearer TOKEN``), or empty."""
    origin: str | None = None
    subprotocols: tuple[str, ...] = ()
    """The ``Sec-WebSocket-Protocol`` headers, as sent."""


@dataclass(frozen=True)
class ServerState:
    """What the server can take at the moment of an upgrade."""

    auth_token: str | None
    allowed_origins: tuple[str, ...]
    draining: bool
    loaded: bool
    load_failed: bool
    available: bool
    """Whether the inference backend answers (a Triton pool may be down)."""
    open_sessions: int
    max_connections: int


@dataclass(frozen=True)
class Refusal:
    """Why an upgrade is refused: the HTTP answer's kind, status and text."""

    kind: RefusalKind
    status: int
    reason: str
    retry_after_s: int | None = None


def admit(upgrade: Upgrade, state: ServerState) -> Refusal | None:
    """None when the upgrade may proceed; else the first rule it breaks."""
    if upgrade.path not in WS_PATHS:
        return Refusal("not_found", 404, upgrade.path)
    intent = parse_qs(upgrade.query).get("intent", ["transcription"])
    if WS_PATHS[upgrade.path] == "realtime" and intent != ["transcription"]:
        return Refusal(
            "bad_request", 400, "this server holds realtime sessions of intent=transcription"
        )
    if state.auth_token is not None and not authorized(state.auth_token, upgrade):
        return Refusal("unauthorized", 401, "a valid token is required")
    if not origin_allowed(upgrade.origin, state.allowed_origins):
        return Refusal("forbidden_origin", 403, upgrade.origin or "")
    if state.draining:
        return Refusal("unavailable", 503, "the server is shutting down", RETRY_LOADING_S)
    if not state.loaded:
        reason = "the model failed to load" if state.load_failed else "the model is loading"
        return Refusal("unavailable", 503, reason, RETRY_LOADING_S)
    if not state.available:  # a Triton pool that is down: see docs/triton.md
        return Refusal("unavailable", 503, "the inference pool is unavailable", RETRY_FULL_S)
    if state.open_sessions >= state.max_connections:
        reason = f"at capacity ({state.max_connections} connections)"
        return Refusal("unavailable", 503, reason, RETRY_FULL_S)
    return None


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a browser's ``Origin`` may connect (no header, no list or ``*``: yes)."""
    return origin is None or not allowed or "*" in allowed or origin in allowed


def authorized(token: str, upgrade: Upgrade) -> bool:
    """Whether the request carries ``token``: ``Authorization: Bearer``, ``?token=`` or the
    ``openai-insecure-api-key.`` subprotocol (compared in constant time)."""
    given: list[str] = []
    scheme, _, value = upgrade.authorization.partition(" ")
    if scheme.lower() == "bearer":
        given.append(value.strip())
    given += parse_qs(upgrade.query).get("token", [])
    for header in upgrade.subprotocols:
        offered = (p.strip() for p in header.split(","))
        given += [p.removeprefix(KEY_SUBPROTOCOL) for p in offered if p.startswith(KEY_SUBPROTOCOL)]
    return any(hmac.compare_digest(g.encode(), token.encode()) for g in given)


def mode_of(path: str) -> Mode:
    """The dialect of a websocket path (``auto`` where the first message decides)."""
    return WS_PATHS.get(path, "auto")


def first_dialect(mode: Mode) -> Literal["v1", "vosk", "realtime"]:
    """The conversation a session starts with: at ``/`` the first message picks the dialect;
    until then v1 and Vosk agree (idle timeout and shutdown before any message), so a v1
    conversation stands in."""
    return "v1" if mode == "auto" else mode
