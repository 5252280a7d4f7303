"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared"
"""Data shared between checkouts (speech samples, models), next to the repository."""


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared data folder; skips the test when it is absent.

    With ``ASR_REQUIRE_SHARED=1`` in the environment a missing folder is an error instead, so a
    CI run that is supposed to have the data cannot pass by skipping.
    """
    if not SHARED_DIR.is_dir():
        reason = f"shared data folder {SHARED_DIR} is absent"
        if os.environ.get("ASR_REQUIRE_SHARED") == "1":
            pytest.fail(f"{reason} and ASR_REQUIRE_SHARED=1")
        pytest.skip(f"{reason} (set ASR_REQUIRE_SHARED=1 to fail instead)")
    return SHARED_DIR
