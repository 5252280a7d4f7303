"""What tests need from the machine beyond Python packages (Chromium, openssl, PortAudio)."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks.

    With ``ASR_REQUIRE_TOOLS=1`` (``.ci/run`` sets it, after installing everything) the test
    fails instead, so a broken install cannot pass CI by skipping.
    """
    if os.environ.get("ASR_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason} and ASR_REQUIRE_TOOLS=1")
    pytest.skip(f"{reason} (set ASR_REQUIRE_TOOLS=1 to fail instead)")
