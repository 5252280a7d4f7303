"""What the benchmarks share: the dev speech sets, the models they export, the engine they open.

* ``dev_set``/``load_set``: a ``../shared/speech/dev/*`` folder (``transcripts.tsv`` order), as
  file names or as 16 kHz mono samples with their references (:data:`Utterance`).
* ``export_fixture``: the fixture checkpoint (``../shared/models/tts-en-ctc-small``) exported;
  ``export_random``: an architecture of ``../shared/models/configs`` (or :data:`TINY`) with
  seeded random weights, exported. Both cache their exports under ``work/models``.
* ``engine``: the engine on CPU (or a GPU), :data:`THREADS` intra-op threads, no batching wait
  unless asked; ``plan_options``: stream options from a (hop, left, lookahead) point.
* ``ExportFolder``: the ``--model`` argument of every benchmark that takes an export.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from streamasr.server.constants import SAMPLE_RATE as RATE
from streamasr.server.engine.engine import Engine, EngineConfig
from streamasr.server.engine.offline import read_audio
from streamasr.server.errors import ManifestError
from streamasr.server.inference.runtime import Device, RuntimeConfig
from streamasr.server.inference.scheduler import SchedulerConfig
from streamasr.server.manifest import read_manifest
from streamasr.server.options.stream import StreamOptions

DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "out"
THREADS = 2


def write_figures(out: Path, name: str, figures: Mapping[str, object]) -> None:
    """A benchmark's raw figures as ``out/name`` (JSON, other values as text), said on stdout."""
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nraw figures: {out / name}")


class ExportFolder(argparse.Action):
    """``--model FOLDER`` of a benchmark that takes an ``asr-export`` folder: a :class:`Path` once
    the folder's manifest reads; otherwise the reason in one line and exit status 2, before any
    work (argparse's usage is left out: the reason is the whole answer)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        folder = Path(str(values))
        try:
            read_manifest(folder)
        except ManifestError as exc:
            reason = " ".join(str(exc).split())
            parser.exit(2, f"{parser.prog}: error: {option_string} {folder}: {reason}\n")
        setattr(namespace, self.dest, folder)


Utterance = tuple[NDArray[np.float32], str]


def dev_set(folder: Path) -> list[tuple[Path, str]]:
    """(audio file, reference) of a ``speech/dev`` folder, in ``transcripts.tsv`` order."""
    rows = (folder / "transcripts.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [(folder / name, ref) for name, ref, *_ in (r.split("\t") for r in rows if r.strip())]


def load_set(folder: Path) -> list[Utterance]:
    """(16 kHz mono samples, reference) of a ``speech/dev`` folder."""
    out = []
    for path, reference in dev_set(folder):
        samples, rate = read_audio(path)
        if rate != RATE:
            raise SystemExit(f"{path}: {rate} Hz, expected {RATE}")
        out.append((np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32), reference))
    return out


def export_fixture(
    shared: Path, work: Path, precisions: tuple[str, ...] = ("fp32", "int8")
) -> Path:
    """The fixture checkpoint exported into ``work/models`` (kept there between runs)."""
    from streamasr.export.pipeline import ExportConfig, run_export

    checkpoint = shared / "models" / "tts-en-ctc-small"
    config = ExportConfig(str(checkpoint), work / "models", precisions=precisions)
    return run_export(config).folder


TINY_ARCHITECTURE: dict[str, Any] = {
    "model_type": "wav2vec2",
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "conv_dim": [64] * 7,
    "conv_kernel": [10, 3, 3, 3, 3, 2, 2],
    "conv_stride": [5, 2, 2, 2, 2, 2, 2],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "vocab_size": 32,
    "_feature_extractor": {"do_normalize": True, "return_attention_mask": False},
}
"""A tiny wav2vec2 (base-960h layout, 2 layers of 64): mechanics of the benchmarks in seconds."""
TINY = "tiny"


def architecture(shared: Path, name: str) -> dict[str, Any]:
    """An architecture of ``../shared/models/configs`` by file stem, or ``tiny``."""
    from streamasr.export.random_checkpoint import load_architecture

    if name == TINY:
        return dict(TINY_ARCHITECTURE)
    return load_architecture(shared / "models" / "configs" / f"{name}.json")


def random_checkpoint(shared: Path, work: Path, name: str) -> Path:
    """Architecture ``name`` with seeded random weights, saved once in ``work/checkpoints``."""
    from streamasr.export.random_checkpoint import save_random_checkpoint

    checkpoint = work / "checkpoints" / f"{name}-random"
    if not (checkpoint / "config.json").is_file():
        save_random_checkpoint(architecture(shared, name), checkpoint)
    return checkpoint


def export_random(
    shared: Path, work: Path, name: str, precisions: tuple[str, ...] = ("fp32", "int8")
) -> Path:
    """:func:`random_checkpoint` exported into ``work/models`` (cached there)."""
    from streamasr.export.pipeline import ExportConfig, run_export

    checkpoint = random_checkpoint(shared, work, name)
    config = ExportConfig(str(checkpoint), work / "models", precisions=precisions)
    return run_export(config).folder


@contextmanager
def engine(
    folder: Path,
    precision: str,
    threads: int = THREADS,
    split: bool = True,
    device: Device = "cpu",
    **scheduler: Any,
) -> Iterator[Engine]:
    runtime = RuntimeConfig(
        device=device, precision=precision, intra_op_threads=threads, split_int8_batches=split
    )
    config = EngineConfig(runtime, SchedulerConfig(**{"max_wait_ms": 0.0, **scheduler}))
    with Engine(folder, config) as e:
        yield e


def plan_options(hop: float, left: float, lookahead: float, **kw: Any) -> StreamOptions:
    return StreamOptions(left_s=left, hop_s=hop, lookahead_s=lookahead, **kw)
