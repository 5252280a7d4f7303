"""Which asyncio event loop the server runs, as a setting (the runner is
:mod:`streamasr.server.app.loop`)."""

from __future__ import annotations

import importlib.util

LOOP_KINDS = ("auto", "asyncio", "uvloop")
"""``asyncio``: the standard library's loop; ``uvloop``: libuv's (the ``uvloop`` package);
``auto``: uvloop when it is installed, else asyncio's."""


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None
