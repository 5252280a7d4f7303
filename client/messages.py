"""Protocol v1 as the client sees it: the start message it sends and the typed server messages.

The messages are the shared schema's (:mod:`streamasr.server.protocol.messages`, plain Python),
under the names the clients use. No I/O here: :func:`start_message` builds the JSON text a
session opens with and :func:`parse_message` turns a server text frame into one of
:data:`ServerMessage`, raising :class:`ServerMessageError` for anything that does not match the
protocol and :class:`ServerError` for an ``error`` message (see docs/protocol.md).
(The server's own ``ProtocolError`` means the opposite: the *client* broke the protocol.)
"""

from __future__ import annotations

import json
from typing import TypeAlias

from streamasr.server.protocol import messages


class ClientError(Exception):
    """Base of the errors the clients raise."""


class ServerMessageError(ClientError):
    """The server sent something protocol v1 does not allow (the server broke the protocol)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"bad message from the server: {detail}")
        self.detail = detail


class ServerError(ClientError):
    """The server reported an error (an ``error`` message) and closed the session."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"server error {code}: {message}")
        self.code = code
        self.message = message


StartSettings = messages.Start
"""What a session's ``start`` message announces (the shared schema's :class:`Start`)."""
Ready = messages.Ready
WordTiming = messages.WordTiming
PartialResult = messages.PartialResult
FinalResult = messages.FinalResult
Lagging = messages.Lagging
End = messages.End
Unknown = messages.Unknown

ServerMessage: TypeAlias = Ready | PartialResult | FinalResult | Lagging | End | Unknown
"""Every server message except ``error``, which :func:`parse_message` raises as ServerError."""

STOP_MESSAGE = messages.encode(messages.STOP)


def start_message(settings: StartSettings) -> str:
    """The ``start`` text message for ``settings`` (unset optional fields left out)."""
    return messages.encode(settings.to_dict())


def parse_message(text: str | bytes) -> ServerMessage:
    """One server text frame as a typed message; ``error`` raises :class:`ServerError`."""
    if isinstance(text, bytes):
        raise ServerMessageError("unexpected binary frame from the server")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ServerMessageError(f"not JSON: {exc.msg}") from exc
    try:
        message = messages.server_message(data)
    except messages.MessageShapeError as exc:
        raise ServerMessageError(str(exc)) from exc
    if isinstance(message, messages.ErrorReport):
        raise ServerError(message.code, message.message)
    return message
