"""Where a model's windows run, as settings: in this process or a Triton pool (``--inference``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from streamasr.server.errors import StreamConfigError
from streamasr.server.inference.runtime import CPU, RuntimeConfig
from streamasr.server.options.ranges import check_range

LOCAL = "local"


TRITON_SCHEME = "triton"


DEFAULT_TRITON_PORT = 8001
"""Triton's gRPC port."""


@dataclass(frozen=True)
class InferenceConfig:
    """Where the windows run, and how a remote pool's failures are handled."""

    url: str = LOCAL
    """``local`` (onnxruntime in this process) or ``triton://HOST[:PORT]`` (Triton's gRPC
    endpoint; port 8001 when omitted)."""
    triton_model: str | None = None
    """The Triton model; None: ``triton_contract.model_name(manifest name, precision)``."""
    timeout_s: float = 5.0
    """Deadline of one window's request, its retries included; also of each health probe."""
    retries: int = 2
    """Further attempts of a request the pool answered UNAVAILABLE (within the deadline)."""
    retry_backoff_s: float = 0.05
    """Wait before the first retry; it doubles for each next one."""
    health_interval_s: float = 1.0
    """Seconds between the health watcher's server_ready / model_ready probes."""

    def __post_init__(self) -> None:
        if self.remote:
            triton_address(self.url)
        check_range("triton_timeout_s", self.timeout_s, 0.01, 600.0)
        check_range("triton_retries", self.retries, 0, 10)
        check_range("triton_retry_backoff_s", self.retry_backoff_s, 0.0, 10.0)
        check_range("triton_health_interval_s", self.health_interval_s, 0.001, 3600.0)
        if self.triton_model is not None and not self.triton_model.strip():
            raise StreamConfigError("triton_model", self.triton_model, "a Triton model name")

    @property
    def remote(self) -> bool:
        return self.url != LOCAL

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the Triton endpoint, as gRPC takes it."""
        return triton_address(self.url)


def triton_address(url: str) -> str:
    """``triton://HOST[:PORT]`` -> ``HOST:PORT``; raises StreamConfigError."""
    allowed = f"{LOCAL} or {TRITON_SCHEME}://HOST[:PORT]"
    parts = urlsplit(url)
    try:
        port = parts.port or DEFAULT_TRITON_PORT
    except ValueError:
        raise StreamConfigError("inference", url, allowed) from None
    host = parts.hostname
    extra = parts.path not in ("", "/") or parts.query or parts.fragment or parts.username
    if parts.scheme != TRITON_SCHEME or not host or extra:
        raise StreamConfigError("inference", url, allowed)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def default_workers(runtime: RuntimeConfig, provider: str) -> int:
    """Scheduler workers that keep the cores busy without oversubscribing them."""
    if provider != CPU or runtime.intra_op_threads == 0:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(16, (cores or 1) // runtime.intra_op_threads))
