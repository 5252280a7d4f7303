"""Whether a Triton pool serves a model: the readiness probe and the outcome it records.

:class:`~.triton.TritonBackend` probes at start and every ``health_interval_s``; a request whose
retries ran out records its failure too. While the last outcome is a problem the backend
refuses windows (``inference_unavailable``); the first good probe clears it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Protocol

from tritonclient.utils import InferenceServerException

log = logging.getLogger(__name__)


class ReadinessClient(Protocol):
    """The readiness calls of a Triton client."""

    async def is_server_ready(self, *, client_timeout: float) -> bool: ...

    async def is_model_ready(self, model_name: str, *, client_timeout: float) -> bool: ...


async def probe(client: ReadinessClient | None, model: str, timeout: float) -> str | None:
    """server_ready and model_ready within ``timeout``: None when both answer yes, else what
    is wrong (never raises: the pool's failures must not stop the watcher)."""
    try:
        if client is None:
            return "no client"
        if not await asyncio.wait_for(client.is_server_ready(client_timeout=timeout), timeout):
            return "the server is not ready"
        if not await asyncio.wait_for(
            client.is_model_ready(model, client_timeout=timeout), timeout
        ):
            return f"model {model} is not ready"
    except TimeoutError:
        return f"no health reply within {timeout:g} s"
    except InferenceServerException as exc:
        return str(exc.message() or exc)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


class PoolHealth:
    """The last outcome for ``model`` at ``url``: available, or the problem; logs changes only."""

    def __init__(self, url: str, model: str) -> None:
        self.url = url
        self.model = model
        self._lock = threading.Lock()
        self._available = False
        self._problem: str | None = "not started"

    @property
    def available(self) -> bool:
        return self._available

    @property
    def problem(self) -> str | None:
        return self._problem

    def record(self, problem: str | None) -> None:
        with self._lock:
            was_available, was_problem = self._available, self._problem
            self._available = problem is None
            self._problem = problem
        if problem is None and not was_available:
            log.info("Triton at %s serves %s", self.url, self.model)
        elif problem is not None and (was_available or problem != was_problem):
            log.warning("Triton at %s is unavailable: %s", self.url, problem)
