"""``ServerConfig``: every setting of ``asr-server`` in one frozen, validated object.

Each setting is a flag and an environment variable (``--max-batch`` / ``ASR_MAX_BATCH``); the flag
wins over the variable, the variable over the default (the table of flags is
:mod:`.flags`). :func:`load_config` reads both and :class:`ServerConfig` checks every value,
raising :class:`~.errors.ServerConfigError`.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from streamasr.server.constants import DEFAULT_PORT
from streamasr.server.engine.engine import EngineConfig
from streamasr.server.errors import ServerConfigError, StreamConfigError
from streamasr.server.inference.config import InferenceConfig, default_workers
from streamasr.server.inference.runtime import CPU, CUDA, Device, RuntimeConfig, resolve_device
from streamasr.server.inference.scheduler import SchedulerConfig
from streamasr.server.options.decoding import DEFAULT_HOTWORD_WEIGHT, DecoderSettings
from streamasr.server.options.gate import GATE_KINDS, gate_config
from streamasr.server.options.loop import LOOP_KINDS, uvloop_installed
from streamasr.server.options.presets import PRESET_NAMES
from streamasr.server.options.stream import (
    DEFAULT_ENDPOINT_MS,
    DEFAULT_HOP_S,
    DEFAULT_LEFT_S,
    DEFAULT_LOOKAHEAD_S,
    DEFAULT_MAX_SEGMENT_S,
    StreamOptions,
)
from streamasr.server.service.flags import LOG_LEVELS, OPTIONS, flag_name

Precision = Literal["auto", "fp32", "fp16", "int8"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True)
class ServerConfig:
    """How the server runs: model, network, engine and limits."""

    model: str
    """An ``asr-export`` folder (with manifest.json), or an alias, hub id or checkpoint folder
    exported on first start into ``models_dir``."""
    models_dir: Path = Path("models")
    """Where exports made on first start are cached."""
    language: str | None = None
    """Language code for multilingual adapters (exporting MMS)."""
    precision: Precision = "auto"
    """``auto``: fp16 on a GPU, int8 on CPU (and with ``inference`` on Triton: int8)."""
    device: Device = "auto"
    inference: str = "local"
    """``local`` (onnxruntime in this process) or ``triton://HOST:PORT`` (a Triton pool over
    gRPC; the model folder then needs only its manifest.json)."""
    triton_model: str | None = None
    """The Triton model; None: ``NAME-PRECISION`` of the manifest (see docs/triton.md)."""
    triton_timeout_s: float = 5.0
    """Deadline of one window's request to Triton, retries included."""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    """0 picks a free port (logged as ``listening on ws://HOST:PORT``)."""
    left_s: float | None = None
    hop_s: float | None = None
    lookahead_s: float | None = None
    """Window flags; None: the model's manifest defaults, else the built-in ones (precedence:
    a session's preset > these flags or ``preset`` > the manifest > built-in;
    server/options/presets.py)."""
    preset: str | None = None
    """A latency preset of the model's manifest for sessions that name none (not together with
    the window flags)."""
    gate: str = "auto"
    """``none``, ``energy``, ``silero`` or ``auto`` (Silero when the export has its VAD file)."""
    endpoint_ms: int = DEFAULT_ENDPOINT_MS
    max_segment_s: float = DEFAULT_MAX_SEGMENT_S
    threads: int = 1
    """onnxruntime intra-op threads per scheduler worker (0: all cores, one worker)."""
    max_batch: int = 8
    max_wait_ms: float = 5.0
    max_queue: int = 512
    """Windows waiting for inference, over all sessions; past it sessions end ``overloaded``."""
    max_connections: int = 64
    max_message_bytes: int = 1 << 20
    idle_timeout_s: float = 30.0
    min_audio_s: float = 0.5
    """A session must deliver at least this much audio (seconds) in every ``min_audio_window_s``
    of wall time after its first message, or it is closed like an idle one (0: no check)."""
    min_audio_window_s: float = 10.0
    max_handshakes: int = 32
    """Connections that have not finished the websocket handshake; a new one past it aborts the
    oldest (see server/service/wire/transport.py)."""
    handshake_timeout_s: float = 10.0
    """Longest a connection may take to finish the websocket handshake."""
    max_write_buffer_bytes: int = 1 << 20
    """Outgoing bytes (messages and control frames) buffered for one peer; a peer that lets it
    grow past this (it does not read) is disconnected."""
    max_session_s: float = 3600.0
    max_upload_bytes: int = 200 << 20
    """Largest body of ``POST /v1/audio/transcriptions`` (413 past it)."""
    max_transcriptions: int = 4
    """Transcriptions of the HTTP API running at once (429 past it)."""
    """Longest audio one session may stream (seconds of audio, not of wall clock)."""
    auth_token: str | None = None
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to open a websocket; empty: any. Requests without an Origin
    header (non-browser clients) are always allowed."""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    shutdown_timeout_s: float = 10.0
    """On SIGTERM, how long sessions get to flush their finals before they are cut."""
    workers: int = 1
    """Frontend processes sharing the port, each with its own event loop and model session
    (1: this process serves; see server/app/workers.py)."""
    lm: Path | None = None
    """KenLM file (ARPA or binary): beam search with it (docs/lm.md); None: the manifest's
    ``decoder`` LM, else greedy decoding (or hotword-only beam search with ``hotwords``)."""
    beam_width: int | None = None
    lm_weight: float | None = None
    word_score: float | None = None
    """Beam search settings; None: the manifest's ``decoder`` section, else the defaults."""
    hotwords: Path | None = None
    """File of phrases to boost, one a line (``PHRASE<TAB>WEIGHT`` sets its own weight)."""
    hotword_weight: float = DEFAULT_HOTWORD_WEIGHT
    punctuation: Path | None = None
    """A punctuation model (``asr-export --punctuation`` output): captions with case and
    punctuation; None: the model export's own ``punctuation/`` folder if it has one. Vosk
    sessions are punctuated only when this is given (docs/protocol.md)."""
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    loop: str = "asyncio"
    """The event loop: ``asyncio``'s own or ``uvloop`` (libuv; its transports and scheduling cost
    less CPU per message, see :data:`~streamasr.server.options.loop.LOOP_KINDS`)."""
    io_tick_ms: float = 0.0
    """Shortest turn of the event loop while 8 or more sessions are open, in ms (0: off):
    reads of many streams gathered per turn, for at most this much more latency
    (:mod:`~streamasr.server.service.pacing`)."""
    stream_options: StreamOptions = field(init=False, repr=False, compare=False)
    """The per-stream defaults built from the window and endpoint settings."""

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of ``tls_cert`` and ``tls_key`` (TLS 1.2 at least); None: plain."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls_cert, self.tls_key)
        return context

    def __post_init__(self) -> None:
        if not self.model:
            _fail("model", self.model, "required (--model or ASR_MODEL)")
        _choice("precision", self.precision, ("auto", "fp32", "fp16", "int8"))
        _choice("device", self.device, ("auto", "cpu", "cuda"))
        _choice("log_level", self.log_level, LOG_LEVELS)
        _choice("log_format", self.log_format, ("text", "json"))
        _choice("loop", self.loop, LOOP_KINDS)
        if self.loop == "uvloop" and not uvloop_installed():
            _fail("loop", self.loop, "uvloop is not installed (pip install uvloop)")
        _within("io_tick_ms", self.io_tick_ms, 0.0, 50.0)
        _within("port", self.port, 0, 65535)
        _within("threads", self.threads, 0, 256)
        _within("max_connections", self.max_connections, 1, 100_000)
        _within("max_message_bytes", self.max_message_bytes, 1024, 64 << 20)
        _within("idle_timeout_s", self.idle_timeout_s, 0.1, 86_400)
        _within("min_audio_s", self.min_audio_s, 0.0, 3600)
        _within("min_audio_window_s", self.min_audio_window_s, 0.1, 86_400)
        _within("max_handshakes", self.max_handshakes, 1, 100_000)
        _within("handshake_timeout_s", self.handshake_timeout_s, 0.1, 3600)
        _within("max_write_buffer_bytes", self.max_write_buffer_bytes, 64 << 10, 1 << 30)
        _within("max_session_s", self.max_session_s, 1.0, 7 * 86_400)
        _within("max_upload_bytes", self.max_upload_bytes, 1024, 1 << 40)
        _within("max_transcriptions", self.max_transcriptions, 1, 10_000)
        _within("shutdown_timeout_s", self.shutdown_timeout_s, 0.0, 3600)
        _within("workers", self.workers, 1, 256)
        if (self.tls_cert is None) != (self.tls_key is None):
            _fail("tls_cert", self.tls_cert, "--tls-cert and --tls-key go together")
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                _fail(name, str(path), "no such file")
        if self.auth_token is not None and not self.auth_token.strip():
            _fail("auth_token", "", "empty token")
        _choice("gate", self.gate, GATE_KINDS)
        if self.preset is not None:
            _choice("preset", self.preset, PRESET_NAMES)
        for name in ("lm", "hotwords"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                _fail(name, str(path), "no such file")
        if (
            self.punctuation is not None
            and not (Path(self.punctuation) / "punctuation.json").is_file()
        ):
            _fail(
                "punctuation",
                str(self.punctuation),
                "no punctuation.json: not an asr-export --punctuation folder",
            )
        try:
            options = self._stream_options()
            self._scheduler_config()
            self.inference_config()
            self.decoder_settings()
        except StreamConfigError as exc:
            raise ServerConfigError(flag_name(exc.option), exc.value, str(exc)) from None
        object.__setattr__(self, "stream_options", options)

    def _stream_options(self) -> StreamOptions:
        windows = {"left_s": self.left_s, "hop_s": self.hop_s, "lookahead_s": self.lookahead_s}
        given = {name: value for name, value in windows.items() if value is not None}
        if given and self.preset is not None:
            _fail(
                "preset", self.preset, "a preset names whole windows: drop --left/--hop/--lookahead"
            )
        return StreamOptions(
            left_s=DEFAULT_LEFT_S if self.left_s is None else self.left_s,
            hop_s=DEFAULT_HOP_S if self.hop_s is None else self.hop_s,
            lookahead_s=DEFAULT_LOOKAHEAD_S if self.lookahead_s is None else self.lookahead_s,
            endpoint_ms=self.endpoint_ms,
            max_segment_s=self.max_segment_s,
            gate=gate_config(self.gate),
            preset=self.preset,
            from_model=frozenset(windows) - set(given),
        )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def runtime_config(self) -> RuntimeConfig:
        return RuntimeConfig(
            device=self.device,
            precision=None if self.precision == "auto" else self.precision,
            intra_op_threads=self.threads,
        )

    def engine_config(self) -> EngineConfig:
        """The engine settings; the scheduler's worker count is the engine's default for the
        device (needs onnxruntime to resolve ``auto``)."""
        runtime = self.runtime_config()
        provider = CUDA if resolve_device(self.device) == "cuda" else CPU
        return EngineConfig(
            runtime=runtime,
            scheduler=self._scheduler_config(provider),
            inference=self.inference_config(),
            stream=self.stream_options,
            decoding=self.decoder_settings(),
            punctuation=self.punctuation,
        )

    def decoder_settings(self) -> DecoderSettings:
        return DecoderSettings(
            self.lm,
            self.beam_width,
            self.lm_weight,
            self.word_score,
            self.hotwords,
            self.hotword_weight,
        )

    def inference_config(self) -> InferenceConfig:
        return InferenceConfig(
            url=self.inference, triton_model=self.triton_model, timeout_s=self.triton_timeout_s
        )

    def _scheduler_config(self, provider: str = CPU) -> SchedulerConfig:
        return SchedulerConfig(
            max_batch=self.max_batch,
            max_wait_ms=self.max_wait_ms,
            max_queue=self.max_queue,
            workers=default_workers(self.runtime_config(), provider),
        )


def _fail(name: str, value: object, problem: str) -> None:
    raise ServerConfigError(flag_name(name), value, problem)


def _choice(name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        _fail(name, value, f"one of {', '.join(allowed)}")


def _within(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        _fail(name, value, f"allowed: {low:g} to {high:g}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-server",
        description="Streaming speech recognition over websockets (protocol v1 at /v1/stream, "
        "Vosk clients at / and /vosk, /healthz, /metrics and a browser page at /). Every flag "
        "has an ASR_* environment variable; the flag wins.",
    )
    defaults = {f.name: f.default for f in fields(ServerConfig) if f.init}
    for option in OPTIONS:
        default = defaults.get(option.field, MISSING)
        if default is MISSING:
            shown = "required"
        elif isinstance(default, tuple):
            shown = ",".join(default) or "any"
        else:
            shown = "none" if default is None else str(default)
        choices = f" {{{','.join(option.choices)}}}" if option.choices else ""
        parser.add_argument(
            option.flag,
            dest=option.field,
            default=None,
            metavar=option.flag.lstrip("-").replace("-", "_").upper(),
            help=f"{option.help}{choices} [{option.env}; default: {shown}]",
        )
    return parser


def load_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> ServerConfig:
    """Flags, then ``ASR_*`` variables, then defaults; raises ServerConfigError."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw: str | None = getattr(args, option.field)
        source = option.flag
        if raw is None and option.env in env:
            raw, source = env[option.env], option.env
        if raw is None:
            continue
        try:
            value = option.parse(raw)
        except ValueError:
            raise ServerConfigError(source, raw, f"not a valid {option.parse.__name__}") from None
        if option.choices is not None and value not in option.choices:
            raise ServerConfigError(source, raw, f"one of {', '.join(option.choices)}")
        values[option.field] = value
    if "model" not in values:
        raise ServerConfigError("--model", None, "required (or set ASR_MODEL)")
    return ServerConfig(**values)
