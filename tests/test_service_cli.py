"""``asr-server`` as a process (graceful shutdown on SIGTERM and SIGINT), its settings, and
``--model`` resolution with the export run in a subprocess on first start."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from streamasr.server.app import loop
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import stream_array
from streamasr.server.errors import ModelStoreError, ServerConfigError
from streamasr.server.inference.runtime import RuntimeConfig
from streamasr.server.options.loop import LOOP_KINDS
from streamasr.server.service import config as config_module
from streamasr.server.service.config import ServerConfig, load_config
from streamasr.server.service.modelstore import ModelStore, cached_precisions, export_name

from .service_util import (
    Outcome,
    as_received,
    encode,
    http_get,
    read_mono,
    start_text,
)
from .timeouts import timeout

LISTENING = re.compile(r"listening on (wss?)://([^\s:]+|\[[^\]]+\]):(\d+)")


def server_command() -> list[str]:
    script = Path(sys.executable).with_name("asr-server")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "streamasr.server.app.cli"]


class ServerProcess:
    """``asr-server`` in a subprocess; collects its log lines and the port it logs."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [*server_command(), *args],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            match = LISTENING.search(line)
            if match and self.port is None:
                self.port = int(match.group(3))
                self._listening.set()
        self._listening.set()

    def wait_listening(self, seconds: float = 60) -> int:
        if not self._listening.wait(timeout(seconds)) or self.port is None:
            raise AssertionError("no 'listening on' line:\n" + "\n".join(self.lines))
        return self.port

    def wait_ready(self, seconds: float = 60) -> int:
        port = self.wait_listening(seconds)
        deadline = time.monotonic() + timeout(seconds)
        while time.monotonic() < deadline:
            if http_get(port, "/healthz").status == 200:
                return port
            time.sleep(0.05)
        raise AssertionError("the model did not load:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout(60))
        self._reader.join(timeout(10))
        return code


@pytest.fixture
def server_process(fixture_export: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(
        ["--port", "0", "--device", "cpu", "--log-level", "INFO"],
        env={"ASR_MODEL": str(fixture_export)},
    )
    try:
        yield process
    finally:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(timeout(30))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_flushes_finals_and_exits_0(
    server_process: ServerProcess, fixture_export: Path, shared_dir: Path, signum: signal.Signals
) -> None:
    samples, rate = read_mono(shared_dir / "speech" / "dev" / "tts" / "tts-001.flac")
    pcm = encode(samples, "s16le")
    port = server_process.wait_ready()

    async def session() -> Outcome:
        outcome = Outcome()
        async with connect(f"ws://127.0.0.1:{port}/v1/stream") as ws:
            await ws.send(start_text(rate))
            await ws.send(pcm)  # all of it, no stop
            try:
                async for message in ws:
                    outcome.messages.append(json.loads(message))
                    if message_type(outcome) == "partial" and len(outcome.of("partial")) == 1:
                        server_process.process.send_signal(signum)
            except ConnectionClosed:
                pass
            outcome.code, outcome.reason = ws.close_code, ws.close_reason or ""
        return outcome

    outcome = asyncio.run(session())
    code = server_process.stop()
    log = "\n".join(server_process.lines)
    assert code == 0, log
    assert outcome.code == 1001, outcome.messages
    assert [m["type"] for m in outcome.messages][-2:] == ["final", "error"]
    assert outcome.error is not None and outcome.error["code"] == "shutting_down"
    with Engine(fixture_export, EngineConfig(RuntimeConfig(device="cpu"))) as engine:
        expected = stream_array(engine, as_received(samples, "s16le"), rate).text
    assert outcome.text == expected, "the finals cover all the audio sent before the signal"
    assert "server stopped" in log


def message_type(outcome: Outcome) -> str:
    return str(outcome.messages[-1].get("type"))


def test_json_logs_and_a_bad_model_exit_1(tmp_path: Path) -> None:
    process = ServerProcess(
        ["--model", str(tmp_path / "missing"), "--port", "0", "--log-format", "json"]
    )
    code = process.process.wait(timeout(120))
    process._reader.join(timeout(10))
    assert code == 1, process.lines
    records = [json.loads(line) for line in process.lines]
    assert any(LISTENING.search(r["message"]) for r in records)
    assert any(r["level"] == "ERROR" and "missing" in r["message"] for r in records)


def test_bad_setting_exits_2() -> None:
    result = subprocess.run(
        [*server_command(), "--model", "x", "--port", "70000"],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout(120),
    )
    assert result.returncode == 2
    assert "--port=70000" in result.stderr


def imported_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    code += "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout(120),
        check=True,
    )
    return set(result.stdout.split())


SERVING = (
    "import importlib, pkgutil\n"
    "import streamasr.server\n"
    "for info in pkgutil.iter_modules(streamasr.server.__path__, 'streamasr.server.'):\n"
    "    try:\n"
    "        importlib.import_module(info.name)\n"
    "    except ImportError as exc:  # an optional extra (Triton) that is not installed\n"
    "        assert not (exc.name or '').startswith('streamasr'), exc\n"
    "from streamasr.server.service.modelstore import export_name\n"
    "assert export_name('base', None) == 'base'\n"
)
"""Every module of the serving wing, and resolving an alias as ``--model base`` does."""


def test_serving_side_never_imports_torch() -> None:
    heavy = {m.split(".")[0] for m in imported_after(SERVING)}
    assert heavy.isdisjoint({"torch", "transformers", "optimum"})


def test_serving_side_never_imports_the_export_wing() -> None:
    """The manifest is the only contract: ``asr-export`` runs as a subprocess."""
    assert not {m for m in imported_after(SERVING) if m.startswith("streamasr.export")}


def test_clients_import_no_inference_stack() -> None:
    """The clients share the wire constants, not the server's numpy/soxr/onnxruntime."""
    code = "import streamasr.client.cli, streamasr.client.ws, streamasr.client.messages"
    heavy = {m.split(".")[0] for m in imported_after(code)}
    assert heavy.isdisjoint({"onnxruntime", "soxr", "numpy", "torch"})


# -- settings -------------------------------------------------------------------------------------


def test_flags_win_over_environment() -> None:
    env = {"ASR_MODEL": "models/a", "ASR_PORT": "9000", "ASR_HOP": "0.64", "ASR_MAX_BATCH": "4"}
    config = load_config(["--port", "9100", "--allowed-origins", "http://a, http://b"], env)
    assert config.model == "models/a"
    assert config.port == 9100
    assert config.hop_s == 0.64 and config.stream_options.hop_s == 0.64
    assert config.max_batch == 4
    assert config.allowed_origins == ("http://a", "http://b")
    assert load_config(["--model", "m"], {}).port == 2700


@pytest.mark.parametrize(
    ("argv", "env", "option"),
    [
        ([], {}, "--model"),
        (["--model", "m", "--port", "-1"], {}, "--port"),
        (["--model", "m"], {"ASR_PORT": "eighty"}, "ASR_PORT"),
        (["--model", "m", "--precision", "int4"], {}, "--precision"),
        (["--model", "m"], {"ASR_LOG_FORMAT": "xml"}, "ASR_LOG_FORMAT"),
        (["--model", "m", "--hop", "0.05"], {}, "--hop"),
        (["--model", "m", "--endpoint-ms", "20"], {}, "--endpoint-ms"),
        (["--model", "m", "--max-batch", "0"], {}, "--max-batch"),
        (["--model", "m", "--tls-cert", "c.pem"], {}, "--tls-cert"),
        (["--model", "m", "--idle-timeout", "0"], {}, "--idle-timeout"),
        (["--model", "m", "--max-connections", "0"], {}, "--max-connections"),
        (["--model", "m", "--auth-token", " "], {}, "--auth-token"),
        (["--model", "m", "--loop", "tornado"], {}, "--loop"),
    ],
)
def test_bad_settings_are_refused(argv: list[str], env: dict[str, str], option: str) -> None:
    with pytest.raises(ServerConfigError) as info:
        load_config(argv, env)
    assert info.value.option == option


async def _running_loop() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_loop_setting_picks_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    kinds = {k: load_config(["--model", "m", "--loop", k], {}).loop for k in LOOP_KINDS}
    assert load_config(["--model", "m"], {}).loop == "asyncio"
    assert load_config(["--model", "m"], {"ASR_LOOP": "uvloop"}).loop == "uvloop"
    assert loop.run(_running_loop(), kinds["asyncio"]).startswith("asyncio")
    assert loop.run(_running_loop(), kinds["uvloop"]).startswith("uvloop")
    # Without uvloop installed, naming it is a bad setting (exit 2), not a failure at start.
    monkeypatch.setattr(config_module, "uvloop_installed", lambda: False)
    with pytest.raises(ServerConfigError) as info:
        load_config(["--model", "m", "--loop", "uvloop"], {})
    assert info.value.option == "--loop" and "not installed" in str(info.value)


def test_config_is_frozen() -> None:
    config = ServerConfig(model="m")
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]


def test_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_config(["--help"], {})
    text = capsys.readouterr().out
    for variable in ("ASR_MODEL", "ASR_MAX_SESSION_SECONDS", "ASR_AUTH_TOKEN", "ASR_LOG_FORMAT"):
        assert variable in text


# -- --model resolution ---------------------------------------------------------------------------


def test_an_export_folder_is_used_as_is(fixture_export: Path, tmp_path: Path) -> None:
    store = ModelStore(str(fixture_export), tmp_path / "models")
    assert store.prepare(None, "cpu") == fixture_export
    assert store.last_command is None


def test_a_cached_export_is_reused(
    fixture_export: Path, fixture_checkpoint: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / export_name(str(fixture_checkpoint), None)).symlink_to(fixture_export)
    store = ModelStore(str(fixture_checkpoint), models)
    assert store.prepare("int8", "cpu") == models / fixture_checkpoint.name
    assert store.last_command is None


def test_a_checkpoint_is_exported_once_in_a_subprocess(
    fixture_checkpoint: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    store = ModelStore(str(fixture_checkpoint), models)
    folder = store.prepare(None, "cpu")
    assert folder == models / fixture_checkpoint.name
    assert store.last_command is not None
    assert store.last_command[:3] == [sys.executable, "-m", "streamasr.export.cli"]
    assert cached_precisions(folder) == {"int8"}
    again = ModelStore(str(fixture_checkpoint), models)
    assert again.prepare(None, "cpu") == folder and again.last_command is None


def test_a_failed_export_reports_its_output(tmp_path: Path) -> None:
    checkpoint = tmp_path / "broken"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text('{"model_type": "nonsense"}', encoding="utf-8")
    store = ModelStore(str(checkpoint), tmp_path / "models")
    with pytest.raises(ModelStoreError, match="asr-export exited with 1") as info:
        store.prepare("int8", "cpu")
    assert "nonsense" in str(info.value)


def test_an_unknown_model_is_refused_without_exporting(tmp_path: Path) -> None:
    store = ModelStore(str(tmp_path / "nothing-here"), tmp_path / "models")
    with pytest.raises(ModelStoreError, match="no such folder"):
        store.prepare(None, "cpu")
    assert store.last_command is None
