"""The flags of ``asr-server`` and their ``ASR_*`` environment variables: which setting each
sets, how its text parses, its help line and allowed values (read by
:func:`~.config.load_config` and :func:`~.config.build_parser`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamasr.server.options.gate import GATE_KINDS
from streamasr.server.options.loop import LOOP_KINDS
from streamasr.server.options.presets import PRESET_NAMES

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ENV_PREFIX = "ASR_"


@dataclass(frozen=True)
class Option:
    """One setting's flag, how its text parses, its help line and its allowed values."""

    field: str
    flag: str
    parse: Callable[[str], Any]
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flag.lstrip("-").replace("-", "_").upper()


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip())


def _optional_path(text: str) -> Path | None:
    return Path(text).expanduser() if text else None


OPTIONS: tuple[Option, ...] = (
    Option("model", "--model", str, "asr-export folder, or alias / hub id / checkpoint folder"),
    Option("models_dir", "--models-dir", Path, "cache of exports made on first start"),
    Option("language", "--language", str, "language code when exporting MMS"),
    Option("precision", "--precision", str, "model file", ("auto", "fp32", "fp16", "int8")),
    Option("device", "--device", str, "inference device", ("auto", "cpu", "cuda")),
    Option("inference", "--inference", str, "local, or triton://HOST:PORT (a Triton pool)"),
    Option("triton_model", "--triton-model", str, "Triton model name (default NAME-PRECISION)"),
    Option("triton_timeout_s", "--triton-timeout", float, "seconds per Triton request"),
    Option("host", "--host", str, "interface to bind (0.0.0.0: all)"),
    Option("port", "--port", int, "TCP port (0: any free port)"),
    Option("left_s", "--left", float, "window left context, s (none: the model's)"),
    Option("hop_s", "--hop", float, "window hop, s: how often partials come (none: the model's)"),
    Option("lookahead_s", "--lookahead", float, "window lookahead, s (none: the model's)"),
    Option("preset", "--preset", str, "latency preset of the model's manifest", PRESET_NAMES),
    Option("gate", "--gate", str, "voice-activity gate (auto: silero if exported)", GATE_KINDS),
    Option("endpoint_ms", "--endpoint-ms", int, "silence that ends a segment, ms"),
    Option("max_segment_s", "--max-segment-s", float, "longest segment, seconds"),
    Option("threads", "--threads", int, "onnxruntime intra-op threads per worker"),
    Option("max_batch", "--max-batch", int, "most windows per inference call"),
    Option("max_wait_ms", "--max-wait-ms", float, "longest a window waits to fill a batch"),
    Option("max_queue", "--max-queue", int, "windows queued for inference, all sessions"),
    Option("max_connections", "--max-connections", int, "concurrent websocket sessions"),
    Option("max_message_bytes", "--max-message-bytes", int, "largest message (close 1009)"),
    Option("idle_timeout_s", "--idle-timeout", float, "seconds without a message (close 1001)"),
    Option("min_audio_s", "--min-audio", float, "audio seconds due per --min-audio-window (1001)"),
    Option("min_audio_window_s", "--min-audio-window", float, "seconds of wall time, see above"),
    Option("max_handshakes", "--max-handshakes", int, "connections still in their handshake"),
    Option("handshake_timeout_s", "--handshake-timeout", float, "seconds to finish the handshake"),
    Option("max_write_buffer_bytes", "--max-write-buffer", int, "outgoing bytes per peer (drop)"),
    Option("max_session_s", "--max-session-seconds", float, "audio seconds per session (1008)"),
    Option("max_upload_bytes", "--max-upload-bytes", int, "largest HTTP upload (413)"),
    Option("max_transcriptions", "--max-transcriptions", int, "HTTP jobs at once (429)"),
    Option("auth_token", "--auth-token", str, "required bearer token (prefer ASR_AUTH_TOKEN)"),
    Option("allowed_origins", "--allowed-origins", _origins, "comma-separated browser origins"),
    Option("tls_cert", "--tls-cert", _optional_path, "PEM certificate (serve wss://)"),
    Option("tls_key", "--tls-key", _optional_path, "PEM private key"),
    Option("shutdown_timeout_s", "--shutdown-timeout", float, "seconds to flush on SIGTERM"),
    Option("workers", "--workers", int, "frontend processes on the port (Linux)"),
    Option("lm", "--lm", _optional_path, "KenLM file (ARPA/binary): beam search with it"),
    Option("beam_width", "--beam-width", int, "beams of the LM/hotword search (1 to 128)"),
    Option("lm_weight", "--lm-weight", float, "weight of the LM's log probabilities"),
    Option("word_score", "--word-score", float, "score added per word (beam search)"),
    Option("hotwords", "--hotwords", _optional_path, "file of phrases to boost, one a line"),
    Option("punctuation", "--punctuation", _optional_path, "punctuation model folder (captions)"),
    Option("hotword_weight", "--hotword-weight", float, "bonus per letter of a hotword"),
    Option("log_level", "--log-level", str.upper, "log level", LOG_LEVELS),
    Option("log_format", "--log-format", str, "log line format", ("text", "json")),
    Option("loop", "--loop", str, "event loop (uvloop: less CPU per stream)", LOOP_KINDS),
    Option("io_tick_ms", "--io-tick-ms", float, "gather reads in loop turns of this many ms"),
)


def flag_name(field_name: str) -> str:
    """The flag that sets the field ``field_name`` (the field's own name if none does)."""
    for option in OPTIONS:
        if option.field == field_name:
            return option.flag
    return field_name
