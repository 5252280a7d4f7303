"""Headless Chromium driven over the DevTools protocol, for the browser page's tests.

One :func:`launch` per test module (a real Chromium with a fake microphone playing a wav), a
:class:`Page` per tab. Commands are synchronous (``websockets.sync``); events that arrive while
waiting for a reply are kept, so a test can read the websocket frames, console messages and
downloads the browser reported. Every wait is bounded and scaled by ``ASR_TEST_TIMEOUT_FACTOR``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from .timeouts import timeout
from .tools import missing

POLL_S = 0.1
"""How often a wait re-reads the page (waits are bounded by their own deadline)."""
PAGE_LOADED = "document.readyState === 'complete' && !document.getElementById('toggle').disabled"
"""app.js enables Start once it has wired the page."""
VIEWPORT = {"width": 1200, "height": 800, "deviceScaleFactor": 1, "mobile": False}


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path is not None:
            return path
    missing("Chromium is not installed (apt-get install chromium; CI installs it)")


class DevTools:
    """A minimal DevTools protocol client: commands by id; events kept in :attr:`events`."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._connection.send(json.dumps(message))
        deadline = time.monotonic() + timeout(30)
        while True:
            reply = json.loads(self._connection.recv(timeout=max(0.0, deadline - time.monotonic())))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply["result"]
                return result
            if "method" in reply:
                self.events.append(reply)

    def pump(self) -> None:
        """Take in the events that have arrived (a cheap round trip)."""
        self.call("Browser.getVersion")

    def of(self, method: str, session: str | None = None) -> list[dict[str, Any]]:
        """The parameters of the events named ``method`` (of one page's ``session``)."""
        return [
            e["params"]
            for e in self.events
            if e["method"] == method and (session is None or e.get("sessionId") == session)
        ]


@contextlib.contextmanager
def launch(
    chromium: str, fake_microphone: Path, profile: Path, downloads: Path
) -> Iterator[DevTools]:
    """Headless Chromium whose microphone plays ``fake_microphone`` (looped) and is allowed,
    downloads saved in ``downloads``, self-signed certificates accepted (the wss tests)."""
    args = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--mute-audio",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_microphone}",
        "--autoplay-policy=no-user-gesture-required",
        "--ignore-certificate-errors",
        "--hide-scrollbars",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
    ]
    profile.mkdir(parents=True, exist_ok=True)
    log = (profile.parent / "chromium.log").open("w")
    process = subprocess.Popen([*args, "about:blank"], stdout=log, stderr=subprocess.STDOUT)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout(20)
        while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as connection:
            devtools = DevTools(connection)
            # the microphone and the clipboard allowed on every origin, as a click on the prompt
            # would (a test may refuse one for one origin: Browser.setPermission)
            granted = ["audioCapture", "clipboardReadWrite", "clipboardSanitizedWrite"]
            devtools.call("Browser.grantPermissions", {"permissions": granted})
            downloads.mkdir(parents=True, exist_ok=True)
            devtools.call(
                "Browser.setDownloadBehavior",
                {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
            )
            yield devtools
    finally:
        process.terminate()
        try:
            process.wait(timeout=timeout(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


class Page:
    """One tab at 1200x800 with Runtime, Page and Network events on."""

    def __init__(
        self, devtools: DevTools, url: str, setup: Callable[[Page], object] | None = None
    ) -> None:
        self.devtools = devtools
        self.target = devtools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = devtools.call(
            "Target.attachToTarget", {"targetId": self.target, "flatten": True}
        )
        self.session: str = attached["sessionId"]
        for domain in ("Runtime", "Page", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", VIEWPORT)
        if setup is not None:
            setup(self)
        self.navigate(url)

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.devtools.call(method, params, self.session)

    def navigate(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})
        self.wait_for(PAGE_LOADED, "the page to load")

    def close(self) -> None:
        self.devtools.call("Target.closeTarget", {"targetId": self.target})

    def evaluate(self, expression: str, *, promise: bool = False) -> Any:
        reply = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": promise},
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def wait_for(
        self,
        expression: str,
        what: str,
        seconds: float = 30.0,
        each: Callable[[Any], None] | None = None,
    ) -> Any:
        """Re-evaluate ``expression`` until it is truthy (``each`` sees every value); its value."""
        deadline = time.monotonic() + timeout(seconds)
        value: Any = None
        while True:
            with contextlib.suppress(RuntimeError):  # the page may be between documents
                value = self.evaluate(expression)
                if each is not None:
                    each(value)
                if value:
                    return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"waited {timeout(seconds):.0f} s for {what}: last {value!r}; console: "
                    f"{self.console()[-5:]}"
                )
            time.sleep(POLL_S)

    def click(self, selector: str) -> None:
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")

    def choose(self, selector: str, value: str) -> None:
        """Set a <select> as a user would: the value, then a change event."""
        self.evaluate(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.value = {json.dumps(value)}; s.dispatchEvent(new Event('change')); }})()"
        )

    def set_files(self, selector: str, paths: list[Path]) -> None:
        """Files chosen in an <input type=file>, as the file dialog would."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        self.call("DOM.setFileInputFiles", {"nodeId": node, "files": [str(p) for p in paths]})

    def key(self, key: str, code: str, key_code: int, text: str = "", shift: bool = False) -> None:
        """One key press (down and up) to the focused element; ``text``: what it types."""
        base = {
            "key": key,
            "code": code,
            "windowsVirtualKeyCode": key_code,
            "modifiers": 8 if shift else 0,
        }
        self.call("Input.dispatchKeyEvent", {"type": "keyDown", "text": text, **base})
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", **base})

    def screenshot(self) -> bytes:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        return base64.b64decode(data)

    def console(self) -> list[str]:
        self.devtools.pump()
        lines = [
            json.dumps(e.get("args", e))[:300]
            for e in self.devtools.of("Runtime.consoleAPICalled", self.session)
        ]
        lines += [
            json.dumps(e["exceptionDetails"])[:500]
            for e in self.devtools.of("Runtime.exceptionThrown", self.session)
        ]
        return lines

    def websocket_messages(self, sent: bool = False) -> list[dict[str, Any]]:
        """The JSON text frames the page received (or ``sent``) on its websockets, in order."""
        self.devtools.pump()
        event = "Network.webSocketFrameSent" if sent else "Network.webSocketFrameReceived"
        return [
            json.loads(e["response"]["payloadData"])
            for e in self.devtools.of(event, self.session)
            if e["response"]["opcode"] == 1
        ]


@contextlib.contextmanager
def open_page(
    devtools: DevTools, url: str, setup: Callable[[Page], object] | None = None
) -> Iterator[Page]:
    """A tab at ``url`` (``setup`` runs before it loads), closed afterwards."""
    page = Page(devtools, url, setup)
    try:
        yield page
    finally:
        page.close()
