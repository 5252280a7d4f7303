"""The browser page end to end: headless Chromium, a fake microphone playing a wav, the real server.

Chromium runs with ``--use-fake-device-for-media-stream --use-file-for-fake-audio-capture=WAV``
(it loops the file, which is padded with silence so the endpoint cuts a final) and is driven
over the DevTools protocol with ``websockets`` as the client. The page opens at
``/?token=T&autostart=1``: it captures at the AudioContext's own rate through the AudioWorklet,
sends f32le to ``/v1/stream`` on its own origin with the token passed on, and shows the finals.
The first final must agree with the fixture model's offline transcript of the wav to at least
``MIN_AGREEMENT`` in characters (``bench/scoring.agreement`` after ``normalize``): Chromium
resamples the file to its capture rate, so the audio is close to the file's, not identical.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bench.scoring import agreement, normalize
from streamasr.server.engine import Engine, EngineConfig
from streamasr.server.offline import transcribe_file
from streamasr.server.runtime import RuntimeConfig

from .client_support import padded_wav
from .service_util import ServerThread, server_config
from .timeouts import timeout
from .tools import missing

log = logging.getLogger(__name__)

MIN_AGREEMENT = 0.8
TOKEN = "browser-token"
FINAL_TIMEOUT_S = timeout(30.0)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        missing("Chromium is not installed (apt-get install chromium; CI installs it)")
    return path


@pytest.fixture(scope="module")
def speech(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One utterance at 48 kHz: 1 s of silence, 6 s of speech, 2.5 s of silence; it loops."""
    source = shared_dir / "speech" / "dev" / "tts" / "tts-001.flac"
    target = tmp_path_factory.mktemp("browser") / "fake-mic-48k.wav"
    return padded_wav(source, target, rate=48000, before_s=1.0, after_s=2.5)


@pytest.fixture(scope="module")
def offline_text(fixture_export: Path, speech: Path) -> str:
    with Engine(fixture_export, EngineConfig(runtime=RuntimeConfig(device="cpu"))) as engine:
        transcript = transcribe_file(engine, speech)
    assert len(transcript.segments) == 1  # one final per loop of the file
    return normalize(transcript.text)


class DevTools:
    """A minimal Chrome DevTools protocol client: commands by id, events ignored but logged."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next_id = 0
        self.console: list[str] = []

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._connection.send(json.dumps(message))
        while True:
            reply = json.loads(await self._connection.recv())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            if reply.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
                self.console.append(json.dumps(reply["params"])[:500])

    async def evaluate(self, session: str, expression: str) -> Any:
        reply = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


@contextlib.asynccontextmanager
async def launch(chromium: str, wav: Path, profile: Path, tls: bool) -> AsyncIterator[DevTools]:
    """Headless Chromium with a fake microphone playing ``wav``, and a DevTools connection."""
    args = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--mute-audio",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
    ]
    if tls:
        args.append("--ignore-certificate-errors")  # the test's self-signed certificate
    log = (profile.parent / "chromium.log").open("w")
    process = subprocess.Popen([*args, "about:blank"], stdout=log, stderr=subprocess.STDOUT)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout(20)
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            await asyncio.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        async with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as connection:
            yield DevTools(connection)
    finally:
        process.terminate()
        try:
            process.wait(timeout=timeout(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


PAGE_STATE = """JSON.stringify({
  status: document.getElementById("status").textContent,
  state: document.getElementById("status").dataset.state,
  finals: document.getElementById("finals").textContent,
  partial: document.getElementById("partial").textContent,
})"""


async def transcribe_in_browser(
    chromium: str, wav: Path, profile: Path, page_url: str, tls: bool
) -> tuple[str, list[dict[str, str]], dict[str, str]]:
    """Open the page, wait for the first final, press Stop; the final and the states seen.

    Then the page again with a wrong token: the state it ends in is the third result.
    """
    async with launch(chromium, wav, profile, tls) as devtools:
        target = await devtools.call("Target.createTarget", {"url": "about:blank"})
        attached = await devtools.call(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        session = attached["sessionId"]
        await devtools.call("Runtime.enable", session=session)
        await devtools.call("Page.navigate", {"url": page_url}, session=session)
        seen: list[dict[str, str]] = []
        deadline = time.monotonic() + FINAL_TIMEOUT_S
        while True:
            with contextlib.suppress(RuntimeError):  # the page may still be loading
                state = json.loads(await devtools.evaluate(session, PAGE_STATE))
                seen.append(state)
                if state["finals"].strip() or state["state"] == "error":
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"no final in {FINAL_TIMEOUT_S} s: {seen[-3:]}, "
                                     f"console: {devtools.console}")  # fmt: skip
            await asyncio.sleep(0.2)
        first_final = seen[-1]["finals"]
        await devtools.evaluate(session, 'document.getElementById("toggle").click()')
        deadline = time.monotonic() + timeout(15)
        while seen[-1]["state"] != "idle" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            seen.append(json.loads(await devtools.evaluate(session, PAGE_STATE)))
        wrong = page_url.replace(f"token={TOKEN}", "token=wrong")
        await devtools.call("Page.navigate", {"url": wrong}, session=session)
        deadline = time.monotonic() + timeout(15)
        refused: dict[str, str] = {}
        while refused.get("state") != "error" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            with contextlib.suppress(RuntimeError):
                refused = json.loads(await devtools.evaluate(session, PAGE_STATE))
        return first_final, seen, refused


@pytest.fixture(scope="module", params=["http", "https"])
def served(
    request: pytest.FixtureRequest,
    fixture_export: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerThread]:
    """The server with a token, over plain HTTP/ws and over HTTPS/wss (self-signed)."""
    config = server_config(fixture_export, auth_token=TOKEN)
    if request.param == "https":
        cert, key = request.getfixturevalue("certificate")
        config = replace(config, tls_cert=cert, tls_key=key)
    with ServerThread(config) as running:
        yield running


def test_page_transcribes_the_fake_microphone(
    chromium: str,
    served: ServerThread,
    speech: Path,
    offline_text: str,
    tmp_path: Path,
) -> None:
    tls = served.config.tls
    url = f"{'https' if tls else 'http'}://127.0.0.1:{served.port}/?token={TOKEN}&autostart=1"
    final, seen, refused = asyncio.run(
        transcribe_in_browser(chromium, speech, tmp_path / "profile", url, tls)
    )
    states = [s["state"] for s in seen]
    assert "error" not in states, seen[-1]
    assert "listening" in states
    assert any(s["partial"].strip() for s in seen), "partials are shown while speaking"
    score = agreement(normalize(final), offline_text)
    log.info("browser (%s): character agreement with offline %.3f", "wss" if tls else "ws", score)
    assert score >= MIN_AGREEMENT, (final, offline_text, score)
    # Stop flushed the session: the server's ``end`` arrived and the page went back to idle
    assert seen[-1]["state"] == "idle" and seen[-1]["status"].startswith("stopped"), seen[-1]
    # a wrong ?token= is refused (401) and the page says so
    assert refused.get("state") == "error" and "wrong token" in refused["status"], refused
