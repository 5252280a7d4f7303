"""The browser page end to end: headless Chromium, a fake microphone playing a wav, the real server.

Chromium (one per module, :mod:`.browser_cdp`) runs with ``--use-file-for-fake-audio-capture``
(it loops a wav padded with silence, so the endpoint cuts a final each loop). The tests read the
page as a user would (its text, its level meter, the files it downloads) and check it against
independent references: the server's own messages as Chromium saw them on the websocket
(``Network.webSocketFrameReceived``), the command-line client's cue writer
(``client/captions.py``) and its file transcription (``stream_file``, what ``asr-client file``
runs), the strict SRT/WebVTT parsers, and the fixture model's offline transcript.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import soundfile

from bench.common.scoring import agreement, normalize
from streamasr.client.captions import cues_from_finals, render
from streamasr.client.file import stream_file
from streamasr.client.messages import FinalResult, WordTiming, parse_message
from streamasr.client.ws import ConnectOptions
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import transcribe_file
from streamasr.server.inference.runtime import RuntimeConfig

from .browser_cdp import DevTools, Page, find_chromium, launch, open_page
from .client_support import ParsedCue, padded_wav, parse_srt, parse_vtt
from .service_util import ServerThread, http_get, server_config
from .timeouts import wait_until

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_AGREEMENT = 0.8
TOKEN = "browser-token"
FINAL_WAIT_S = 30.0
SCREENSHOTS = os.environ.get("ASR_PAGE_SCREENSHOTS")
"""A folder to save the page's screenshots in (docs/page is where the README takes them from)."""
AA_TEXT = 4.5
AA_NON_TEXT = 3.0
"""WCAG 2.1 AA: text 4.5:1; a control's edge and a meter's bar 3:1 (1.4.11)."""

STATE = """(() => {
  const $ = (id) => document.getElementById(id);
  return {
    status: $("status").textContent,
    state: $("status").dataset.state,
    finals: Array.from(document.querySelectorAll("#finals .text"), (e) => e.textContent),
    times: Array.from(document.querySelectorAll("#finals time"), (e) => e.textContent),
    committed: $("partial-committed").textContent,
    provisional: $("partial-provisional").textContent,
    level: Number($("level").getAttribute("aria-valuenow")),
    timer: $("timer").textContent,
    delay: $("delay").textContent,
    progress: $("progress").value,
    speed: $("speed").textContent,
    failure: $("problem").hidden ? null : $("problem").dataset.failure,
    problem: $("problem").hidden ? "" : $("problem").textContent,
    model: $("model").textContent,
    precision: $("precision").textContent,
    provider: $("provider").textContent,
  };
})()"""


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One utterance at 48 kHz: 1 s of silence, 6 s of speech, 2.5 s of silence; it loops."""
    source = shared_dir / "speech" / "dev" / "tts" / "tts-001.flac"
    target = tmp_path_factory.mktemp("browser") / "fake-mic-48k.wav"
    return padded_wav(source, target, rate=48000, before_s=1.0, after_s=2.5)


@pytest.fixture(scope="module")
def audio_files(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A 16 kHz mono flac as shipped and a 44.1 kHz stereo wav."""
    tts = shared_dir / "speech" / "dev" / "tts"
    stereo = padded_wav(tts / "tts-017.flac", tmp_path_factory.mktemp("files") / "tts-017-44k.wav",
                        rate=44100, before_s=0.3, after_s=0.5, channels=2)  # fmt: skip
    return [tts / "tts-006.flac", stereo]


@pytest.fixture(scope="module")
def offline_text(fixture_export: Path, speech: Path) -> str:
    with Engine(fixture_export, EngineConfig(runtime=RuntimeConfig(device="cpu"))) as engine:
        transcript = transcribe_file(engine, speech)
    assert len(transcript.segments) == 1  # one final per loop of the file
    return normalize(transcript.text)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(
    speech: Path, downloads: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevTools]:
    chromium = find_chromium()
    with launch(
        chromium, speech, tmp_path_factory.mktemp("chromium") / "profile", downloads
    ) as devtools:
        yield devtools


@pytest.fixture(scope="module", params=["http", "https"])
def served(request: pytest.FixtureRequest, fixture_export: Path) -> Iterator[ServerThread]:
    """The server with a token, over plain HTTP/ws and over HTTPS/wss (self-signed)."""
    config = server_config(fixture_export, auth_token=TOKEN)
    if request.param == "https":
        cert, key = request.getfixturevalue("certificate")
        config = replace(config, tls_cert=cert, tls_key=key)
    with ServerThread(config) as running:
        yield running


@pytest.fixture(scope="module")
def open_server(fixture_export: Path) -> Iterator[ServerThread]:
    """The server without a token, over plain HTTP."""
    with ServerThread(server_config(fixture_export)) as running:
        yield running


@pytest.fixture(scope="module")
def captioning_server(fixture_export: Path, punctuation_model: Path) -> Iterator[ServerThread]:
    """The server without a token, punctuating and casing its captions (``--punctuation``)."""
    with ServerThread(server_config(fixture_export, punctuation=punctuation_model)) as running:
        yield running


def page_url(server: ServerThread, query: str = "") -> str:
    scheme = "https" if server.config.tls else "http"
    return f"{scheme}://127.0.0.1:{server.port}/{query}"


def state(page: Page) -> dict[str, Any]:
    value: dict[str, Any] = page.evaluate(STATE)
    return value


def download(page: Page, folder: Path, button: str, suffix: str) -> str:
    """Press a download button; the text of the file the browser saved."""
    before = len(page.devtools.of("Browser.downloadProgress"))
    page.click(button)

    def completed() -> list[dict[str, Any]]:
        page.devtools.pump()
        progress = page.devtools.of("Browser.downloadProgress")[before:]
        return [p for p in progress if p["state"] == "completed"]

    guid = wait_until(completed, f"the {suffix} download to complete", 15.0, 0.1)[0]["guid"]
    begun = next(b for b in page.devtools.of("Browser.downloadWillBegin") if b["guid"] == guid)
    name = str(begun["suggestedFilename"])
    assert name.endswith(suffix), name
    return (folder / name).read_text(encoding="utf-8")


def finals_received(page: Page) -> list[FinalResult]:
    """The finals the server sent to the page, as Chromium saw them on the websocket."""
    messages = [parse_message(json.dumps(m)) for m in page.websocket_messages()]
    return [m for m in messages if isinstance(m, FinalResult)]


def expected_cues(finals: list[FinalResult]) -> list[ParsedCue]:
    return [ParsedCue(c.start_ms, c.end_ms, c.lines) for c in cues_from_finals(finals)]


# -- live captions ------------------------------------------------------------------------------


def test_live_captions_from_the_microphone(
    browser: DevTools, served: ServerThread, offline_text: str, downloads: Path
) -> None:
    with open_page(browser, page_url(served, f"?token={TOKEN}")) as page:
        engine = served.engine
        shown = page.wait_for(f"{STATE}.model !== '…' && {STATE}", "the server's figures")
        backend = engine.scheduler
        figures = (engine.manifest.name, backend.precision, backend.provider)
        assert (shown["model"], shown["precision"], shown["provider"]) == figures
        assert "token=" not in page.evaluate("location.href")  # taken out of the address bar
        page.click("#toggle")
        seen: list[dict[str, Any]] = []
        page.wait_for(f"{STATE}.finals.length > 0 || {STATE}.failure", "a final", FINAL_WAIT_S,
                      each=lambda _: seen.append(state(page)))  # fmt: skip
        final = state(page)
        assert final["failure"] is None, final
        levels = [s["level"] for s in seen]
        assert "listening" in [s["state"] for s in seen], seen[-1]
        assert max(levels) > -35 and len(set(levels)) > 3, levels  # the meter moves with speech
        first_partial = next(i for i, s in enumerate(seen) if s["committed"] + s["provisional"])
        assert not seen[first_partial]["finals"], "partials come before the final"
        assert re.fullmatch(r"\d+\.\d\d? s", final["delay"]), final["delay"]
        assert 0.0 < float(final["delay"][:-2]) < 10.0
        assert final["timer"] != "0:00" and re.fullmatch(r"\d+:\d\d", final["timer"])
        score = agreement(normalize(final["finals"][0]), offline_text)
        scheme = "wss" if served.config.tls else "ws"
        log.info("browser (%s): agreement %.3f, delay %s", scheme, score, final["delay"])
        assert score >= MIN_AGREEMENT, (final["finals"], offline_text)

        page.click("#toggle")  # Stop: the last audio, `stop`, the server's `end`
        stopped = page.wait_for(f"{STATE}.state === 'idle' && {STATE}", "the session to end")
        assert stopped["status"].startswith("stopped") and stopped["failure"] is None, stopped
        finals = finals_received(page)
        assert [f.text for f in finals] == stopped["finals"]
        assert stopped["times"][0] == f"0:{int(finals[0].start):02d}"

        srt = parse_srt(download(page, downloads, "#download-srt", ".srt"))
        vtt = parse_vtt(download(page, downloads, "#download-vtt", ".vtt"))
        txt = download(page, downloads, "#download-txt", ".txt")
        assert srt == vtt == expected_cues(finals)  # the cue times of the finals' words
        assert srt[0].start_ms == round(finals[0].words[0].start * 1000)
        assert txt == "".join(f"{f.text}\n" for f in finals)
        page.call("Page.bringToFront")  # the clipboard is for the focused page
        page.click("#copy")
        page.wait_for(f"{STATE}.status.startsWith('copied')", "the copy")
        assert page.evaluate("navigator.clipboard.readText()", promise=True) == txt
        assert not page.devtools.of("Runtime.exceptionThrown", page.session), page.console()
        entries = [e["entry"] for e in page.devtools.of("Log.entryAdded", page.session)]
        assert not [e for e in entries if e["source"] == "security"], entries  # CSP kept


def synthetic_finals() -> dict[str, list[FinalResult]]:
    """Finals that exercise every rule of the cue writer: splitting by time and by lines,
    balanced lines, the minimum hold, words spread over a final without times, escaping."""
    long_words = [f"WORD{i:02d}" for i in range(40)]
    timed = tuple(
        WordTiming(w, 0.3 + 0.45 * i, 0.3 + 0.45 * i + 0.3, 0.9) for i, w in enumerate(long_words)
    )
    return {
        "empty": [],
        "long": [FinalResult(0, " ".join(long_words), 0.3, timed[-1].end, timed)],
        "short and close": [
            FinalResult(0, "HI", 1.0, 1.2, (WordTiming("HI", 1.0, 1.2, 1.0),)),
            FinalResult(1, "YES", 1.5, 1.6, (WordTiming("YES", 1.5, 1.6, 1.0),)),
            FinalResult(2, "A<B & C>D", 4.0, 6.0),  # no word times: spread by length
        ],
        "half milliseconds": [
            FinalResult(
                0,
                "X Y",
                0.0005,
                2.0025,
                (WordTiming("X", 0.0005, 1.0015, 1.0), WordTiming("Y", 1.5, 2.0025, 1.0)),
            )
        ],
    }


def test_downloads_are_written_as_the_cli_writes_them(
    browser: DevTools, open_server: ServerThread
) -> None:
    """exports.js (run in the page) against client/captions.py, output for output."""
    cases = synthetic_finals()
    as_json = {
        name: [{**dataclasses.asdict(f), "words": [dataclasses.asdict(w) for w in f.words]}
               for f in finals]
        for name, finals in cases.items()
    }  # fmt: skip
    with open_page(browser, page_url(open_server)) as page:
        written = page.evaluate(
            "import('/static/exports.js').then((e) => Object.fromEntries(Object.entries("
            f"{json.dumps(as_json)}).map(([name, finals]) => [name, "
            "{srt: e.FORMATS.srt.render(finals), vtt: e.FORMATS.vtt.render(finals),"
            " txt: e.FORMATS.txt.render(finals)}])))",
            promise=True,
        )
    for name, finals in cases.items():
        assert written[name]["srt"] == render("srt", finals), name
        assert written[name]["vtt"] == render("vtt", finals), name
        assert written[name]["txt"] == "".join(f"{f.text}\n" for f in finals), name
        parse_srt(written[name]["srt"])
        parse_vtt(written[name]["vtt"])
    assert len(parse_srt(written["long"]["srt"])) > 2


# -- files --------------------------------------------------------------------------------------


def cli_text(server: ServerThread, path: Path) -> str:
    """What ``asr-client file PATH`` gives for the file."""
    return asyncio.run(stream_file(path, ConnectOptions(url=server.ws_url()))).text


def drop_file(page: Page, path: Path) -> None:
    """Drag ``path`` from the desktop and drop it on the captions."""
    box = page.evaluate(
        "JSON.stringify(document.getElementById('captions').getBoundingClientRect())"
    )
    rect = json.loads(box)
    x, y = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    data = {"items": [], "files": [str(path)], "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        page.call("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})


def wait_file_done(page: Page, count: int) -> dict[str, Any]:
    done: dict[str, Any] = page.wait_for(
        f"{STATE}.state !== 'listening' && {STATE}.status.startsWith('stopped')"
        f" && {STATE}.finals.length >= {count} && {STATE}",
        "the file's transcript",
        FINAL_WAIT_S,
    )
    return done


def test_chosen_and_dropped_files_give_the_cli_transcript(
    browser: DevTools, open_server: ServerThread, audio_files: list[Path]
) -> None:
    flac, stereo = audio_files
    with open_page(browser, page_url(open_server)) as page:
        page.set_files("#file", [flac])
        chosen = wait_file_done(page, 1)
        assert chosen["failure"] is None, chosen
        assert " ".join(chosen["finals"]) == cli_text(open_server, flac)
        assert chosen["progress"] == 1
        speed = float(chosen["speed"].split("\N{MULTIPLICATION SIGN}")[0])
        assert speed > 1.0, chosen["speed"]  # faster than real time
        sent = [m for m in page.websocket_messages() if m["type"] == "ready"]
        assert len(sent) == 1

        page.click("#clear")
        assert state(page)["finals"] == []
        drop_file(page, stereo)
        dropped = wait_file_done(page, 1)
        assert dropped["failure"] is None, dropped
        assert " ".join(dropped["finals"]) == cli_text(open_server, stereo)
        assert not page.devtools.of("Runtime.exceptionThrown", page.session), page.console()
        entries = [e["entry"] for e in page.devtools.of("Log.entryAdded", page.session)]
        assert not [e for e in entries if e["source"] == "security"], entries  # CSP kept


# -- look: modes, themes, contrast ------------------------------------------------------------

CONTRAST_PAIRS = """(() => {
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.length < 4 || c[3] === 1) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const pairs = [];
  const visible = (e) => !e.closest("[hidden]") && e.getClientRects().length > 0;
  for (const e of document.querySelectorAll("button, select, input, .level")) {
    if (!visible(e) || e.disabled) continue; // WCAG 1.4.11: a control's edge, 3:1
    pairs.push({ id: `edge:${e.id}`, fg: parse(getComputedStyle(e).borderTopColor).slice(0, 3),
                 bg: background(e.parentElement), size: 0 });
  }
  const bar = document.getElementById("level-bar");
  pairs.push({ id: "edge:level-bar", fg: parse(getComputedStyle(bar).backgroundColor).slice(0, 3),
               bg: background(bar.parentElement), size: 0 });
  for (const e of document.querySelectorAll("body *")) {
    const style = getComputedStyle(e);
    const text = Array.from(e.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!text || e.closest("[hidden], noscript, option") || e.disabled) continue;
    if (style.visibility === "hidden" || e.getClientRects().length === 0) continue;
    pairs.push({ id: e.id || e.tagName.toLowerCase() + (e.className ? "." + e.className : ""),
                 fg: parse(style.color).slice(0, 3), bg: background(e),
                 size: parseFloat(style.fontSize) });
  }
  return pairs;
})()"""


LOOKS = """({
  bg: getComputedStyle(document.body).backgroundColor,
  size: parseFloat(getComputedStyle(document.getElementById("captions")).fontSize),
  window: document.querySelector(".window").getBoundingClientRect().height,
  times: getComputedStyle(document.querySelector("#finals time")).display,
})"""
LIGHT_BG, DARK_BG = "rgb(255, 255, 255)", "rgb(17, 19, 23)"


def luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: list[float], bg: list[float]) -> float:
    high, low = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def contrast_ratios(page: Page, where: str) -> dict[str, float]:
    """The lowest contrast of each visible text element, by ``where/element``."""
    ratios: dict[str, float] = {}
    for pair in page.evaluate(CONTRAST_PAIRS):
        ratio, key = contrast(pair["fg"], pair["bg"]), f"{where}/{pair['id']}"
        ratios[key] = min(ratio, ratios.get(key, ratio))
    return ratios


def assert_aa(ratios: dict[str, float]) -> None:
    rounded = {key: round(value, 2) for key, value in sorted(ratios.items())}
    log.info("contrast ratios: %s", json.dumps(rounded))
    low = {
        key: value
        for key, value in rounded.items()
        if value < (AA_NON_TEXT if "/edge:" in key else AA_TEXT)
    }
    assert not low, f"below WCAG AA {AA_TEXT}:1: {low}"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_modes_themes_and_contrast(
    browser: DevTools, captioning_server: ServerThread, audio_files: list[Path], downloads: Path
) -> None:
    """Also what docs/page's screenshots show: the captions of a punctuating server."""
    with open_page(browser, page_url(captioning_server)) as page:
        for count, path in enumerate(audio_files, start=1):  # captions: two transcribed files
            page.set_files("#file", [path])
            wait_file_done(page, count)
        assert_punctuated(state(page)["finals"], finals_received(page))
        # the second file follows the first on the page's timeline: the captions stay in order
        cues = parse_srt(download(page, downloads, "#download-srt", ".srt"))
        assert cues[-1].start_ms >= soundfile.info(str(audio_files[0])).duration * 1000 - 1
        for _ in range(40):  # Tab to Start, press it with the keyboard
            if page.evaluate("document.activeElement.id") == "toggle":
                break
            page.key("Tab", "Tab", 9)
        assert page.evaluate("document.activeElement.id") == "toggle"
        page.key("Enter", "Enter", 13, "\r")
        # a partial with stable (punctuated) words and a provisional tail (lower case, lighter)
        page.wait_for(f"{STATE}.committed !== '' && {STATE}.provisional !== ''"
                      f" && {STATE}.finals.length === 2", "a partial with both parts",
                      FINAL_WAIT_S)  # fmt: skip
        ratios: dict[str, float] = {}
        for mode in ("transcript", "caption"):
            for theme in ("light", "dark"):
                page.choose("#mode", mode)
                page.choose("#theme", theme)
                looks = page.evaluate(LOOKS)
                assert looks["bg"] == (LIGHT_BG if theme == "light" else DARK_BG)
                if mode == "caption":  # big type, two lines of it, no time stamps
                    assert looks["size"] >= 32 and looks["times"] == "none", looks
                    assert looks["window"] == pytest.approx(2 * 1.3 * looks["size"], abs=1.5)
                else:
                    assert looks["times"] != "none", looks
                ratios.update(contrast_ratios(page, f"{mode}/{theme}"))
                shot = page.screenshot()
                assert png_size(shot) == (1200, 800)
                if SCREENSHOTS:
                    Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
                    (Path(SCREENSHOTS) / f"{mode}-{theme}.png").write_bytes(shot)
        assert_aa(ratios)
        assert any("partial-provisional" in k for k in ratios)  # the lighter tail was measured
        # "system" follows prefers-color-scheme
        page.choose("#theme", "system")
        for scheme, bg in (("dark", DARK_BG), ("light", LIGHT_BG)):
            feature = {"name": "prefers-color-scheme", "value": scheme}
            page.call("Emulation.setEmulatedMedia", {"features": [feature]})
            assert page.evaluate("getComputedStyle(document.body).backgroundColor") == bg
        page.choose("#mode", "transcript")
        page.click("#toggle")
        page.wait_for(f"{STATE}.state === 'idle'", "the session to end")


def assert_punctuated(shown: list[str], finals: list[FinalResult]) -> None:
    """The page shows the finals' punctuated text: each is its words' ``punctuated`` forms
    joined, and differs from the acoustic spelling (upper-case, no marks) by case and marks."""
    assert shown == [f.text for f in finals] and finals, (shown, finals)
    for final in finals:
        assert final.text == " ".join(str(w.punctuated) for w in final.words), final
        spelled = " ".join(w.word for w in final.words)
        assert final.text != spelled and re.sub(r"[.,?!:]", "", final.text).upper() == spelled
        assert final.text[0].isupper() and final.text[-1] in ".,?!:", final.text


OFFERED = {"presets": ["fast", "accurate"], "languages": ["en", "de"]}
"""What a server with presets (issue 12) and a multilingual model adds to /healthz."""


def offer_choices(page: Page) -> None:
    """Pause the page's /healthz requests (Fetch domain), to answer them with OFFERED."""
    page.call("Fetch.enable", {"patterns": [{"urlPattern": "*/healthz"}]})


def test_labels_and_offered_choices(
    browser: DevTools, open_server: ServerThread, audio_files: list[Path]
) -> None:
    with open_page(browser, page_url(open_server)) as page:
        unlabeled = page.evaluate(
            "Array.from(document.querySelectorAll('button, select, input, [role=meter], output'))"
            ".filter((e) => !(e.labels && e.labels.length) && !e.textContent.trim()"
            " && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))"
            ".map((e) => e.id)"
        )
        assert unlabeled == []
        live = page.evaluate("document.getElementById('finals').getAttribute('aria-live')")
        assert live == "polite"
        # a choice is shown only when /healthz offers it (this server: as its model says)
        page.wait_for("document.getElementById('model').textContent !== '…'", "/healthz")
        health = http_get(open_server.port, "/healthz").json()
        for field, key in (("preset-field", "presets"), ("language-field", "languages")):
            hidden = page.evaluate(f"document.getElementById('{field}').hidden")
            assert hidden == (not health.get(key)), (field, health)

    with open_page(browser, page_url(open_server), setup=offer_choices) as page:

        def paused() -> list[dict[str, Any]]:
            page.devtools.pump()
            return page.devtools.of("Fetch.requestPaused", page.session)

        health = {**http_get(open_server.port, "/healthz").json(), **OFFERED}
        body = base64.b64encode(json.dumps(health).encode()).decode()
        page.call(
            "Fetch.fulfillRequest",
            {
                "requestId": wait_until(paused, "the page's /healthz request", 15.0, 0.1)[0][
                    "requestId"
                ],
                "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                "body": body,
            },
        )
        page.call("Fetch.disable")
        options = page.wait_for(
            "!document.getElementById('preset-field').hidden && Array.from("
            "document.querySelectorAll('#preset option, #language option'), (o) => o.value)",
            "the offered choices",
        )
        assert options == ["", "fast", "accurate", "", "en", "de"]
        assert not page.evaluate("document.getElementById('language-field').hidden")
        page.choose("#preset", "accurate")
        page.choose("#language", "de")
        page.set_files("#file", [audio_files[0]])
        start = wait_until(
            lambda: page.websocket_messages(sent=True), "the start message", 15.0, 0.1
        )[0]
        assert start["preset"] == "accurate" and start["language"] == "de", start
        page.wait_for(f"['idle', 'error'].includes({STATE}.state)", "the session to end")


# -- failures -----------------------------------------------------------------------------------

PROBLEM = f"{STATE}.failure"


def test_failures_say_what_to_do(
    browser: DevTools, fixture_export: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Microphone refused, token required, server full, shutting down, unreachable: each one
    named on the page with what to do, on a server with a token and room for one session."""
    server = ServerThread(server_config(fixture_export, auth_token=TOKEN, max_connections=1))
    server.start()
    stopped = False
    origin = page_url(server).rstrip("/")
    try:
        with open_page(browser, page_url(server)) as page:
            page.evaluate("sessionStorage.clear()")
            # microphone refused: the site's permission says no
            set_microphone(page, origin, "denied")
            page.click("#toggle")
            refused = page.wait_for(f"{PROBLEM} && {STATE}", "the refusal")
            assert refused["failure"] == "mic_refused", refused
            assert "Microphone access was refused" in refused["problem"]
            assert "Allow the microphone" in refused["problem"]
            set_microphone(page, origin, "granted")

            # token required: the page asks for it, keeps it for the tab, and goes on
            page.click("#toggle")
            asked = page.wait_for(f"{PROBLEM} && {STATE}", "the token question")
            assert asked["failure"] == "token_required", asked
            assert "needs an access token" in asked["problem"]
            assert page.evaluate("!document.getElementById('token-form').hidden")
            assert page.evaluate("document.activeElement.id") == "token"
            page.call("Input.insertText", {"text": TOKEN})
            page.key("Enter", "Enter", 13, "\r")
            page.wait_for(f"{STATE}.state === 'listening'", "the session with the token")
            assert page.evaluate("sessionStorage.getItem('streamasr.token')") == TOKEN

            # server full: a second tab finds the one session slot taken
            with open_page(browser, page_url(server, f"?token={TOKEN}")) as other:
                other.click("#toggle")
                busy = other.wait_for(f"{PROBLEM} && {STATE}", "the second tab's refusal")
                assert busy["failure"] == "overloaded", busy
                assert (
                    "The server is busy" in busy["problem"]
                    and "Wait a few seconds" in busy["problem"]
                )

            # shutting down: the session gets `shutting_down` and close 1001
            server.stop()
            stopped = True
            down = page.wait_for(f"{PROBLEM} && {STATE}", "the shutdown message")
            assert down["failure"] == "shutting_down", down
            assert "shutting down" in down["problem"] and down["state"] == "error"

            # unreachable: nothing answers any more
            page.click("#toggle")
            gone = page.wait_for(
                f"{PROBLEM} === 'unreachable' && {STATE}", "the unreachable server"
            )
            assert (
                "cannot be reached" in gone["problem"]
                and "asr-server is running" in gone["problem"]
            )
            check_contrast(page, "problem")
    finally:
        if not stopped:
            server.stop()


def set_microphone(page: Page, origin: str, setting: str) -> None:
    """The site's microphone permission, as its settings would set it."""
    permission = {"permission": {"name": "microphone"}, "setting": setting, "origin": origin}
    page.devtools.call("Browser.setPermission", permission)


def check_contrast(page: Page, where: str) -> None:
    """Every visible text's contrast in both themes is at least AA."""
    ratios: dict[str, float] = {}
    for theme in ("light", "dark"):
        page.choose("#theme", theme)
        ratios.update(contrast_ratios(page, f"{where}/{theme}"))
    page.choose("#theme", "system")
    assert_aa(ratios)
