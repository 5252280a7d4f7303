"""The frontend benchmark's server side: ``asr-server`` with an instant model, and beside it
the real configurations the instant model stands for.

An instant-model setup's server runs ``python -m bench frontend_bench serve ASR-SERVER-ARGS...``
(see :func:`serve_main`), which wraps ``load_runner`` where the engine calls it so that the
engine's runner is an :class:`InstantRunner`, then runs the server's CLI. A ``local`` setup runs
the plain server with the model in its own process (onnxruntime, int8), a ``triton`` setup the
plain server with ``--inference triton://...`` in front of a local ``asr-triton`` (int8).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.inference.runtime import Runner
from streamasr.server.manifest import Manifest

from ..common import server_process
from ..common.server_process import SERVER_MODULE


class InstantRunner:
    """A ``Runner`` whose logits cost nothing: the first window goes through the real model,
    and its logits, repeated to the length each later window needs, answer every batch."""

    def __init__(self, real: Runner, manifest: Manifest) -> None:
        if manifest.input.kind != "waveform":
            raise ValueError(f"instant runner: waveform models only, not {manifest.input.kind}")
        self._real = real
        self._spec = manifest.input
        self.provider = real.provider
        self.precision = f"instant {real.precision}"
        self.batched = real.batched
        self._pattern: NDArray[np.float32] | None = None
        self._cache: dict[tuple[int, ...], NDArray[np.float32]] = {}

    def run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        logits = self._cache.get(batch.shape)
        if logits is None:
            if self._pattern is None:
                self._pattern = self._real.run(batch[:1])[0]
            frames = self._spec.num_frames(batch.shape[1])
            one = np.resize(self._pattern, (frames, self._pattern.shape[1]))
            logits = np.ascontiguousarray(np.broadcast_to(one, (batch.shape[0], *one.shape)))
            logits.flags.writeable = False
            self._cache[batch.shape] = logits
        return logits


def install_instant_runner() -> None:
    """Make every Engine of this process load an instant runner around the real one: wrap
    ``load_runner`` where the engine looks it up (``server.inference`` since the inference
    backends, ``server.engine`` before them)."""
    for name in ("streamasr.server.inference.backend", "streamasr.server.engine.engine"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        real_load = getattr(module, "load_runner", None)
        if real_load is not None:
            break
    else:
        raise RuntimeError(
            "no load_runner to wrap in streamasr.server.inference.backend or .engine"
        )

    def load(folder: Path, manifest: Manifest, config: Any) -> Runner:
        return InstantRunner(real_load(folder, manifest, config), manifest)

    setattr(module, "load_runner", load)  # noqa: B010  # the one seam the benchmark changes


def serve_main(argv: Sequence[str]) -> int:
    """``asr-server ARGV`` with the instant runner."""
    from streamasr.server.app import cli

    install_instant_runner()
    sys.argv[1:] = argv  # so that ``--workers`` restarts this command line, runner included
    return cli.main()


MODELS = {
    "instant": "instant model",
    "local": "in-process int8 model",
    "triton": "int8 model in a local Triton (frontend + gRPC client)",
}
"""Where a setup's model runs, and how its row names it."""
REAL_PRECISION = "int8"
"""The precision of the ``local`` and ``triton`` setups (the instant model's one window: fp32)."""


@dataclass(frozen=True)
class Setup:
    """One server configuration the levels run against."""

    tree: str
    """``after`` (this checkout) or ``before`` (the ``--before`` link tree)."""
    frame_ms: int
    workers: int
    links: Path | None = None
    model: str = "instant"
    """A key of :data:`MODELS`."""

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"setup model {self.model!r}: one of {', '.join(MODELS)}")

    @property
    def label(self) -> str:
        label = f"{self.tree}, {self.frame_ms} ms frames, {self.workers} worker(s)"
        return label if self.model == "instant" else f"{label}, {MODELS[self.model]}"

    @property
    def slug(self) -> str:
        return f"{self.tree}-{self.frame_ms}ms-w{self.workers}-{self.model}"

    def command(self, folder: Path, inference: str | None = None) -> list[str]:
        """The server's command line; ``inference`` is the Triton URL of a ``triton`` setup."""
        precision = "fp32" if self.model == "instant" else REAL_PRECISION
        args = ["--model", str(folder), "--port", "0", "--device", "cpu"]
        args += ["--precision", precision, "--max-connections", "4000", "--max-handshakes", "4000"]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if self.tree == "after":
            # The energy gate, as before this round: Silero VAD (the default when an export
            # carries it) is model-side work of its own, 2.4 ms CPU per audio s
            # (bench.stream.noise).
            args += ["--gate", "energy"]
        if (self.model == "triton") != (inference is not None):
            raise ValueError(f"setup {self.label!r}: a Triton URL for triton setups only")
        if inference is not None:
            args += ["--inference", inference]
        if self.model == "instant":
            python = [sys.executable, "-m", "bench", "frontend_bench", "serve", *args]
        else:
            python = [sys.executable, "-m", SERVER_MODULE, *args]
        if self.links is None:
            return python
        path = os.pathsep.join([str(self.links), os.environ.get("PYTHONPATH", "")])
        return ["env", f"PYTHONPATH={path}", *python]


def server(
    setup: Setup, folder: Path, work: Path, inference: str | None = None
) -> server_process.ServerProcess:
    """The setup's server, not started yet (a context manager)."""
    process = server_process.ServerProcess([], work / f"server-{setup.slug}.log")
    process.command = setup.command(folder, inference)
    return process
