"""``asr-triton``: serve an export through a real Triton server on this machine, on CPU.

The PyPI package ``nvidia-pytriton`` ships the Triton server binary with its Python backend only
(no onnxruntime backend), so each model is a pytriton inference callable that runs onnxruntime
(:mod:`.serve`), under the names, tensors and batch sizes of
:mod:`~streamasr.server.inference.triton_contract`: a frontend cannot tell it from the stock
Triton container serving the generated repository.

pytriton's Python-backend stub embeds the system's shared ``libpythonX.Y.so.1.0`` and then runs
the serving interpreter's standard library on it, so that interpreter must be the same Python
build: on Debian, ``/usr/bin/python3``. Another build of the same minor version (pyenv 3.11.7 on
Debian's libpython 3.11.2) fails at model load with ``'_thread.RLock' object has no attribute
'_recursion_count'``. This command runs under the project's Python, finds that interpreter
(``--python``, ``$ASR_TRITON_PYTHON``, ``.venv-triton`` here or in the checkout, or
``~/.cache/streamasr/triton-venv``), checks it, and replaces itself with the serving process, so
SIGTERM and SIGINT reach that process directly and stop Triton cleanly.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from streamasr.server.errors import AsrError
from streamasr.server.inference import triton_contract as tc
from streamasr.server.manifest import PRECISIONS, Manifest, model_path, read_manifest
from streamasr.server.triton.serve import ModelSpec, ServeSpec

log = logging.getLogger("streamasr.triton")

PYTHON_ENV = "ASR_TRITON_PYTHON"
"""Environment variable naming the interpreter that runs the serving process."""
VENV_NAME = ".venv-triton"
SERVE_SCRIPT = Path(__file__).with_name("serve.py")
REQUIRED_MODULES = ("numpy", "onnxruntime", "pytriton")
CPU_PREFERRED_BATCH = (4, 8, 16)
"""fp32 preferred batch sizes (the generated repository's CPU figures)."""
CPU_QUEUE_DELAY_US = 5000
INT8_INSTANCES = 2
"""int8 runs one window per execution, so its concurrency comes from instances."""

_PREFLIGHT = """
import ctypes, importlib.util, json, sys
v = sys.version_info
lib = f"libpython{v.major}.{v.minor}.so.1.0"
try:
    f = ctypes.CDLL(lib).Py_GetVersion
    f.restype = ctypes.c_char_p
    libversion = f().decode().split()[0]
except (OSError, AttributeError):
    libversion = None
missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]
print(json.dumps({"version": sys.version.split()[0], "lib": lib, "libversion": libversion,
                  "missing": missing}))
"""


class TritonPythonError(AsrError):
    """No interpreter that can run pytriton: absent, lacking packages, or the wrong build."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(f"{problem}\n{how_to_create()}")


def default_venv() -> Path:
    """``$XDG_CACHE_HOME/streamasr/triton-venv`` (``~/.cache/...`` by default)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "streamasr" / "triton-venv"


def how_to_create(venv: Path | None = None) -> str:
    where = venv or default_venv()
    return (
        f"Create it with Debian's own Python (first, if needed: apt-get install python3-venv "
        f"libpython3.X, X its minor version):\n  /usr/bin/python3 -m venv {where} && "
        f"{where}/bin/pip install nvidia-pytriton onnxruntime numpy\n"
        f"or name another interpreter with --python or ${PYTHON_ENV}."
    )


def candidate_pythons() -> list[Path]:
    """Where the interpreter is looked for when none is named, first match wins."""
    places = [Path.cwd() / VENV_NAME]
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        places.append(checkout / VENV_NAME)
    places.append(default_venv())
    found: list[Path] = []
    for place in places:
        python = place / "bin" / "python"
        if python not in found:
            found.append(python)
    return found


def find_python(explicit: str | None, environ: Mapping[str, str] = os.environ) -> Path:
    """The serving interpreter: ``explicit``, then ``$ASR_TRITON_PYTHON``, then the defaults."""
    named = explicit or environ.get(PYTHON_ENV)
    if named:
        path = Path(shutil.which(named) or named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise TritonPythonError(f"Triton interpreter {named}: not an executable file")
        return path
    for python in candidate_pythons():
        if python.is_file() and os.access(python, os.X_OK):
            return python
    looked = ", ".join(str(p) for p in candidate_pythons())
    raise TritonPythonError(f"no Triton interpreter found (looked at {looked})")


def check_python(python: Path) -> str:
    """Check the interpreter has the packages and the matching libpython; its version."""
    try:
        done = subprocess.run(
            [str(python), "-I", "-c", _PREFLIGHT, *REQUIRED_MODULES],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        raise TritonPythonError(f"Triton interpreter {python} does not run ({exc})") from None
    if found["missing"]:
        missing = ", ".join(found["missing"])
        raise TritonPythonError(
            f"Triton interpreter {python} lacks {missing}: "
            f"{python} -m pip install nvidia-pytriton onnxruntime numpy"
        )
    if found["libversion"] is None:
        raise TritonPythonError(
            f"{found['lib']}, which pytriton's Python-backend stub loads, is not installed "
            f"(Debian: apt-get install {found['lib'].removesuffix('.so.1.0')})"
        )
    if found["libversion"] != found["version"]:
        log.warning(
            "%s is Python %s but the system %s is %s: pytriton's Python backend usually fails "
            "at model load with such a pair; use the system's own python3",
            python,
            found["version"],
            found["lib"],
            found["libversion"],
        )
    return str(found["version"])


def choose_precisions(manifest: Manifest, wanted: str | None) -> tuple[str, ...]:
    """``--precision`` as given (comma-separated, or ``all``); default: the CPU ones present."""
    if wanted == "all":
        return tuple(manifest.precisions)
    if wanted:
        chosen = tuple(p.strip() for p in wanted.split(",") if p.strip())
        for precision in chosen:
            manifest.entry(precision)  # raises ManifestError when absent
        return chosen
    cpu = tuple(p for p in manifest.precisions if tc.DEVICE.get(p) == "cpu")
    return cpu or tuple(manifest.precisions)


def model_spec(folder: Path, manifest: Manifest, precision: str, instances: int) -> ModelSpec:
    """One precision of the export as a Triton model, by the contract's rules."""
    model = tc.contract(manifest, precision)
    int8 = precision == "int8"
    return ModelSpec(
        name=model.name,
        file=str(model_path(folder, manifest, precision).resolve()),
        input_name=model.input.name,
        input_dims=model.input.dims,
        output_name=model.output.name,
        output_dims=model.output.dims,
        max_batch_size=model.max_batch_size,
        dynamic_batching=model.batched,
        split_batches=int8,
        instances=INT8_INSTANCES if int8 else instances,
        preferred_batch_sizes=tuple(s for s in CPU_PREFERRED_BATCH if s <= model.max_batch_size),
        max_queue_delay_us=CPU_QUEUE_DELAY_US if model.batched else 0,
    )


def build_spec(args: argparse.Namespace) -> ServeSpec:
    folder = Path(args.model_dir)
    manifest = read_manifest(folder)
    precisions = choose_precisions(manifest, args.precision)
    return ServeSpec(
        models=tuple(model_spec(folder, manifest, p, args.instances) for p in precisions),
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        metrics_port=args.metrics_port,
        intra_op_threads=args.threads,
        log_level=args.log_level,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="asr-triton",
        description="Serve an asr-export folder through a local Triton server (pytriton, CPU).",
    )
    parser.add_argument("model_dir", help="export folder (manifest.json + model.*.onnx)")
    parser.add_argument("--grpc-port", type=_port, default=8001)
    parser.add_argument("--http-port", type=_port, default=8000)
    parser.add_argument("--metrics-port", type=_port, default=8002)
    parser.add_argument(
        "--precision",
        help=f"comma-separated {', '.join(PRECISIONS)}, or all (default: fp32 and int8 present)",
    )
    parser.add_argument("--python", help=f"serving interpreter (default: ${PYTHON_ENV}, venv)")
    parser.add_argument("--instances", type=_positive, default=1, help="fp32/fp16 instances")
    parser.add_argument("--threads", type=_positive, default=1, help="onnxruntime intra-op")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return parser.parse_args(argv)


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"port {value}: 1 to 65535")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        spec = build_spec(args)
        python = find_python(args.python)
        version = check_python(python)
    except AsrError as exc:
        print(f"asr-triton: {exc}", file=sys.stderr)
        return 2
    log.info("starting Triton under %s (Python %s)", python, version)
    logging.shutdown()
    command = [str(python), "-I", str(SERVE_SCRIPT), "--spec", spec.to_json()]
    os.execv(python, command)


if __name__ == "__main__":
    sys.exit(main())
