"""Which asyncio event loop the server runs, as a setting (the runner is
:mod:`streamasr.server.app.loop`)."""

from __future__ import annotations

import importlib.util

LOOP_KINDS = ("asyncio", "uvloop")
"""``asyncio``: the standard library's loop (the default); ``uvloop``: libuv's (the ``uvloop``
package), 4-6 % less CPU per stream, but out of file descriptors libuv closes the connections it
cannot take at once and nothing is logged (docs/protocol.md)."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None
