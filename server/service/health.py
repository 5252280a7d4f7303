"""What ``/healthz`` says: the service's state, the model and its presets, as one JSON payload.

Pure: the service passes its state in (:class:`HealthState`), so the payload's rules (which
status wins, when the default preset is none) are unit-tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamasr.server.constants import PROTOCOL_VERSION
from streamasr.server.engine.engine import Engine
from streamasr.server.options.presets import PRESET_NAMES
from streamasr.server.service.config import ServerConfig


@dataclass(frozen=True)
class HealthState:
    """The service's state at the moment ``/healthz`` is asked."""

    engine: Engine | None
    load_error: BaseException | None
    draining: bool
    sessions: int


def health_payload(state: HealthState, config: ServerConfig) -> dict[str, Any]:
    """The ``/healthz`` JSON of one service."""
    engine = state.engine
    status = "ok"
    if state.draining:
        status = "draining"
    elif engine is None:
        status = "error" if state.load_error else "loading"
    elif not engine.available:
        status = "inference_unavailable"
    payload: dict[str, Any] = {
        "status": status,
        "protocol": PROTOCOL_VERSION,
        "sessions": state.sessions,
        "max_connections": config.max_connections,
        "model": engine.manifest.name if engine else None,
        "precision": engine.scheduler.precision if engine else None,
        "provider": engine.scheduler.provider if engine else None,
        **presets(engine, config),
    }
    if state.load_error is not None:
        payload["error"] = str(state.load_error)
    elif engine is not None and engine.scheduler.problem is not None:
        payload["error"] = engine.scheduler.problem
    return payload


def presets(engine: Engine | None, config: ServerConfig) -> dict[str, Any]:
    """``presets``: the model's latency preset names (a session's ``start.preset``);
    ``preset``: the one sessions get by default (``--preset``, else the manifest's; none
    with explicit window flags); ``presets_tuned``: false while they are the export's rule
    presets, not yet measured by ``python -m bench tune``."""
    streaming = engine.manifest.streaming if engine else None
    names = [n for n in PRESET_NAMES if streaming and n in streaming.presets]
    default = config.preset or (streaming.default_preset if streaming else None)
    if {config.left_s, config.hop_s, config.lookahead_s} != {None}:
        default = None
    tuned = streaming.presets_tuned if streaming else None
    return {"presets": names, "preset": default, "presets_tuned": tuned}
