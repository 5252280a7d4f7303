"""Export time, file sizes and offline CPU speed of random-weight models at true size.

    python -m bench export_bench [--configs NAME ...] [--out DIR] [--seconds S] [--repeats N]

For each architecture in ``../shared/models/configs``: build the model with seeded random
weights, save it as a checkpoint folder (weights, tokenizer, feature extractor), export it
with ``asr-export``'s pipeline (fp32, fp16, int8), then run one utterance through PyTorch,
optimum's ORTModelForCTC and our ONNX files on the CPU, all loaded side by side and timed
in turn, round after round (a run during which other processes took more than a tenth of
the CPUs is retaken), and split the int8 and fp32 run time over the parts of the network
with onnxruntime's profiler. Speed and size do not
depend on the weights; validation against PyTorch can (random models have no confident
transcripts), so a precision that fails it is still measured, from the same conversion,
and marked.

Raw figures go to ``DIR/export_bench.json``; Markdown tables go to stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.export.errors import ExportError
from streamasr.export.random_checkpoint import load_architecture, save_random_checkpoint
from streamasr.server.constants import SAMPLE_RATE
from streamasr.server.engine.frontend import model_input

from ..common.fixtures import DEFAULT_OUT, DEFAULT_SHARED, load_set
from ..common.proc import own_peak_rss_mib
from .profile import PROFILED, profile_split
from .results import BenchOptions, ConfigResult, Workload
from .speed import THREADS, load_torch_model, time_runtimes
from .step import export_all, optimum_export
from .tables import report

log = logging.getLogger("bench.export_bench")

CONFIG_DIR = DEFAULT_SHARED / "models" / "configs"
SPEECH_DIR = DEFAULT_SHARED / "speech" / "dev" / "human"
DEFAULT_CONFIGS = ("wav2vec2-base-960h", "wav2vec2-large-960h-lv60-self")
SEED = 0
NOISE_LEVEL = 0.05


# --- test signal -----------------------------------------------------------------------------


def test_signal(seconds: float, folder: Path = SPEECH_DIR) -> NDArray[np.float32]:
    """The dev set's human utterances end to end, tiled or cut to ``seconds`` (else noise)."""
    size = round(seconds * SAMPLE_RATE)
    speech = dev_speech(folder)
    if speech.size == 0:
        log.warning("no speech in %s: timing on seeded noise", folder)
        noise = np.random.default_rng(SEED).standard_normal(size)
        return (NOISE_LEVEL * noise).astype(np.float32)
    tiled: NDArray[np.float32] = np.resize(speech, size).astype(np.float32)
    return tiled


def dev_speech(folder: Path = SPEECH_DIR) -> NDArray[np.float32]:
    """The utterances of a dev set, concatenated in ``transcripts.tsv`` order (empty if absent)."""
    if not (folder / "transcripts.tsv").is_file():
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([s for s, _ in load_set(folder)])


# --- one configuration -----------------------------------------------------------------------


def bench_config(
    name: str,
    signal: NDArray[np.float32],
    repeats: int,
    arch: dict[str, Any] | None = None,
    profile: bool = True,
) -> ConfigResult:
    """Build, export, time and (with ``profile``) profile one architecture: ``arch``, or the
    file ``name`` of ``../shared/models/configs``."""
    arch = arch if arch is not None else load_architecture(CONFIG_DIR / f"{name}.json")
    with tempfile.TemporaryDirectory(prefix="export_bench.") as tmp:
        root = Path(tmp)
        checkpoint = root / name
        save_random_checkpoint(arch, checkpoint, seed=SEED)
        figures, files, spec = export_all(checkpoint, root)
        model = load_torch_model(checkpoint)
        rss = {"export": own_peak_rss_mib()}
        reference, optimum_s = optimum_export(checkpoint, root / "optimum")
        x = model_input(signal, spec)[None]
        work = Workload(spec.name, x, signal.size / SAMPLE_RATE, repeats, signal)
        speeds = time_runtimes(model, checkpoint, reference, files, work)
        gc.collect()
        rss["speed"] = own_peak_rss_mib()
        splits = {p: profile_split(files[p], work, root) for p in PROFILED} if profile else {}
        if profile:
            rss["profile"] = own_peak_rss_mib()
    params = sum(p.numel() for p in model.parameters())
    attention = str(model.config._attn_implementation)
    return ConfigResult(name, params, attention, figures, optimum_s, speeds, splits, rss)


# --- command line ----------------------------------------------------------------------------


def write_json(results: list[ConfigResult], opts: BenchOptions) -> Path:
    """All raw figures, with the settings and tool versions."""
    from streamasr.export.pipeline import tool_versions

    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / "export_bench.json"
    payload = {
        "settings": {**asdict(opts), "out": str(opts.out), "threads": THREADS, "seed": SEED},
        "signal": str(SPEECH_DIR) if SPEECH_DIR.is_dir() else "seeded noise",
        "tools": tool_versions(),
        "results": [r.to_dict() for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return path


def available_configs() -> list[str]:
    """Names of the architecture files in ../shared/models/configs."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def parse_args(argv: Sequence[str] | None) -> BenchOptions:
    parser = argparse.ArgumentParser(prog="python -m bench export_bench", description=__doc__)
    parser.add_argument(
        "--configs",
        nargs="+",
        metavar="NAME",
        choices=available_configs(),
        default=list(DEFAULT_CONFIGS),
        help=f"architectures in {CONFIG_DIR} (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON")
    parser.add_argument("--seconds", type=float, default=20.0, help="test audio length")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per runtime")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    return BenchOptions(tuple(args.configs), args.out, args.seconds, args.repeats)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for name in ("bench", "streamasr"):
        logging.getLogger(name).setLevel(logging.INFO)
    opts = parse_args(argv)
    signal = test_signal(opts.seconds)
    results: list[ConfigResult] = []
    for name in opts.configs:
        try:
            results.append(bench_config(name, signal, opts.repeats))
        except (ExportError, RuntimeError, OSError, ValueError):
            # One architecture failing must not lose the others' figures.
            log.exception("%s: benchmark failed", name)
    log.info("raw figures in %s", write_json(results, opts))
    print(report(results, opts))
    return 0 if len(results) == len(opts.configs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
