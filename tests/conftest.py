"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes import FakeClock

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


@pytest.fixture(scope="session")
def fixture_checkpoint(shared_dir: Path) -> Path:
    """The small trained English checkpoint (Hugging Face folder) from ../shared."""
    return shared_dir / "models" / "tts-en-ctc-small"


@pytest.fixture(scope="session")
def fixture_export(fixture_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture checkpoint exported once per test session (fp32, fp16, int8); its folder."""
    from streamasr.export.pipeline import ExportConfig, run_export

    root = tmp_path_factory.mktemp("exports")
    result = run_export(ExportConfig(model=str(fixture_checkpoint), out_root=root))
    return result.folder


@pytest.fixture(scope="session")
def punctuation_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The punctuation fixture checkpoint (tests/data/punctuation-fixture) exported once per
    test session (fp32 and int8); its folder, what ``asr-server --punctuation`` takes."""
    from streamasr.export import punctuation as punctuation_export

    checkpoint = Path(__file__).parent / "data" / "punctuation-fixture"
    out = tmp_path_factory.mktemp("punct") / "fixture"
    punctuation_export.run(punctuation_export.PunctuationExportConfig(str(checkpoint), out))
    return out


def read_dev_set(folder: Path) -> list[tuple[Path, str]]:
    """(audio file, reference transcript) pairs of a ../shared/speech/dev folder."""
    rows = (folder / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(folder / name, ref) for name, ref, *_ in (r.split("\t") for r in rows if r.strip())]


@pytest.fixture(scope="session")
def tts_set(shared_dir: Path) -> list[tuple[Path, str]]:
    """The 30 synthetic utterances the fixture model can transcribe, with references."""
    return read_dev_set(shared_dir / "speech" / "dev" / "tts")


@pytest.fixture(scope="session")
def human_set(shared_dir: Path) -> list[tuple[Path, str]]:
    """The 10 real human utterances, with references."""
    return read_dev_set(shared_dir / "speech" / "dev" / "human")


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1/localhost (made with ``openssl``)."""
    from .client_support import self_signed_certificate
    from .tools import missing

    made = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if made is None:
        missing("the openssl command is not installed (needed to make a test certificate)")
    return made


@pytest.fixture(scope="session")
def triton_python() -> Path:
    """The interpreter ``asr-triton`` serves with (docs/triton.md); a missing one skips the test,
    or fails it under ``ASR_REQUIRE_TOOLS=1``."""
    from streamasr.server.triton.launcher import TritonPythonError, check_python, find_python

    from .tools import missing

    try:
        python = find_python(None)
        check_python(python)
    except TritonPythonError as exc:
        missing(f"no interpreter for asr-triton: {exc.problem}")
    return python


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test (or the code's injected sleep) moves it."""
    return FakeClock()
