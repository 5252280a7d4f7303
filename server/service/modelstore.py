"""Resolve ``--model`` to an export folder, exporting it on first start.

``--model`` is either an ``asr-export`` output folder (it has ``manifest.json``) or anything
``asr-export`` accepts: an alias, a Hugging Face id or a ``save_pretrained`` folder. The latter is
exported into ``models_dir/NAME`` by running the export CLI in a subprocess; the next start finds
it there. NAME comes from ``asr-export MODEL --print-name``, a subprocess too: the server never
imports the ``export`` wing (nor torch behind it), and the manifest is the only contract.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from streamasr.server.engine.engine import Engine
from streamasr.server.errors import ManifestError, ModelStoreError
from streamasr.server.inference.runtime import PREFERRED_PRECISION, resolve_device
from streamasr.server.manifest import MANIFEST_NAME, read_manifest

if TYPE_CHECKING:
    from streamasr.server.service.config import ServerConfig

log = logging.getLogger(__name__)

TAIL_LINES = 20
"""Lines of the export's output quoted when it fails."""
NAME_TIMEOUT_S = 120.0
"""Longest ``asr-export --print-name`` may take (it loads nothing; a cold start is slow)."""
_ERROR_PREFIX = "asr-export: error: "
_PROGRESS = re.compile(r"\[\d+/\d+\]|->| written$| kept$|error")
"""Export output worth an INFO line (steps, result table); the rest goes to DEBUG."""


def is_export_folder(path: Path) -> bool:
    return (path / MANIFEST_NAME).is_file()


def export_command(model: str, language: str | None = None) -> list[str]:
    """``asr-export MODEL`` (with ``--language``) as this interpreter runs it."""
    command = [sys.executable, "-m", "streamasr.export.cli", model]
    return [*command, "--language", language] if language else command


def export_name(model: str, language: str | None) -> str:
    """The folder name ``asr-export`` gives MODEL (raises ModelStoreError when it refuses)."""
    try:
        done = subprocess.run(
            [*export_command(model, language), "--print-name"],
            capture_output=True,
            text=True,
            timeout=NAME_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelStoreError(model, f"asr-export --print-name did not answer: {exc}") from None
    name = done.stdout.strip()
    if done.returncode == 0 and name:
        return name
    lines = done.stderr.strip().splitlines()
    errors = [line.removeprefix(_ERROR_PREFIX) for line in lines if line.startswith(_ERROR_PREFIX)]
    detail = errors[-1] if errors else "\n".join(lines[-TAIL_LINES:]) or "no output"
    raise ModelStoreError(model, detail)


def wanted_precision(precision: str | None, device: str) -> str:
    """The precision to export: the one asked for, else the device's preferred one."""
    return precision or PREFERRED_PRECISION[device][0]


def cached_precisions(folder: Path) -> set[str]:
    """Precisions of an export folder whose files are present (empty when unusable)."""
    if not is_export_folder(folder):
        return set()
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        log.warning("ignoring the cached export: %s", exc)
        return set()
    return {p for p, e in manifest.precisions.items() if (folder / e.file).is_file()}


class ModelStore:
    """Finds or makes the export folder for ``model``; :meth:`cancel` stops an export."""

    def __init__(self, model: str, models_dir: Path, *, language: str | None = None) -> None:
        self.model = model
        self.models_dir = models_dir
        self.language = language
        self._process: subprocess.Popen[str] | None = None
        self.last_command: list[str] | None = None
        """The export command run by :meth:`prepare`, if one ran."""
        self._cancelled = threading.Event()
        self._lock = threading.Lock()

    def prepare(self, precision: str | None, device: str) -> Path:
        """The export folder to load (blocking: an export can take minutes)."""
        given = Path(self.model).expanduser()
        if is_export_folder(given):
            return given
        folder = self.models_dir / export_name(self.model, self.language)
        wanted = wanted_precision(precision, device)
        if wanted in cached_precisions(folder):
            log.info("using the cached export %s (%s)", folder, wanted)
            return folder
        log.info("exporting %s (%s) into %s: this runs once", self.model, wanted, folder)
        self._export(wanted)
        if wanted not in cached_precisions(folder):
            raise ModelStoreError(self.model, f"asr-export did not write {wanted} into {folder}")
        return folder

    def command(self, precision: str) -> list[str]:
        command = export_command(self.model, self.language)
        return [*command, "--out", str(self.models_dir), "--precision", precision]

    def _export(self, precision: str) -> None:
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        with self._lock:
            if self._cancelled.is_set():
                raise ModelStoreError(self.model, "export cancelled")
            self.last_command = self.command(precision)
            self._process = subprocess.Popen(
                self.last_command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
        process = self._process
        if process.stdout is not None:
            for raw in process.stdout:
                line = raw.rstrip()
                tail.append(line)
                level = logging.INFO if _PROGRESS.search(line) else logging.DEBUG
                log.log(level, "asr-export: %s", line)
        code = process.wait()
        if self._cancelled.is_set():
            raise ModelStoreError(self.model, "export cancelled")
        if code != 0:
            text = "\n".join(tail)
            hint = ""
            if "No module named" in text:
                hint = " (exporting needs the export extra: pip install 'streamasr[export]')"
            raise ModelStoreError(self.model, f"asr-export exited with {code}{hint}:\n{text}")

    def cancel(self) -> None:
        """Stop a running export (the server is shutting down)."""
        with self._lock:
            self._cancelled.set()
            if self._process is not None and self._process.poll() is None:
                self._process.terminate()


def load_engine(config: ServerConfig, store: ModelStore) -> Engine:
    """Resolve (and maybe export) the model in ``store``, then load it (blocking)."""
    folder = store.prepare(config.runtime_config().precision, resolve_device(config.device))
    return Engine(folder, config.engine_config())
