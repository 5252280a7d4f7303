"""Live transcript on a terminal: the partial rewritten in place, each final on its own line.

On a terminal (``live``) a partial is drawn after ``\\r`` and an erase-line sequence, cut to the
terminal's width from the left so it never wraps; a final replaces it and ends the line. Written
to a file or pipe, only finals appear, one per line.
"""

from __future__ import annotations

import shutil
from typing import TextIO

from .messages import FinalResult, PartialResult
from .ws import Result

CLEAR_LINE = "\r\x1b[2K"


class LiveView:
    """Writes a session's results to ``out``."""

    def __init__(self, out: TextIO, live: bool | None = None, width: int | None = None) -> None:
        self._out = out
        self.live = out.isatty() if live is None else live
        self._width = width
        self._partial_shown = False
        self.finals: list[FinalResult] = []

    def on_result(self, result: Result) -> None:
        """Draw one partial or final."""
        if isinstance(result, PartialResult):
            if self.live:
                self._draw_partial(result.text)
            return
        self.finals.append(result)
        if self.live and self._partial_shown:
            self._out.write(CLEAR_LINE)
            self._partial_shown = False
        if result.text:
            self._out.write(result.text + "\n")
        self._out.flush()

    def close(self) -> None:
        """Erase a partial still on the line."""
        if self.live and self._partial_shown:
            self._out.write(CLEAR_LINE)
            self._out.flush()
            self._partial_shown = False

    def _draw_partial(self, text: str) -> None:
        width = self._width or shutil.get_terminal_size().columns
        room = max(1, width - 1)
        shown = text if len(text) <= room else "…" + text[len(text) - room + 1 :]
        self._out.write(CLEAR_LINE + shown)
        self._out.flush()
        self._partial_shown = True
